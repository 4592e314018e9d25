"""dashboard.html while a stream plays: its charts fill with real, moving figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.test_pages import start_playing, start_publishing

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(120)


def test_dashboard_charts_have_data(browsing: Browsing, sfu_server: Any) -> None:
    base = sfu_server.http_url
    start_publishing(browsing, base, "live/dash", "publisher")
    start_playing(browsing, base, "live/dash")
    dashboard = browsing.open(f"{base}/dashboard.html", "dashboard")
    stats, _ = browsing.wait_for(
        "five seconds of charts with media flowing",
        lambda: browsing.stats(dashboard),
        lambda s: (
            s["charts"]["bitrate"]["points"] >= 5
            and s["charts"]["bitrate"]["latest"].get("out", 0) > 0
        ),
        30,
    )
    charts = stats["charts"]
    assert charts["bitrate"]["latest"]["in"] > 0
    assert charts["packets"]["latest"]["out"] > 0
    assert charts["sessions"]["latest"] == {"publishers": 1, "players": 1}
    assert charts["cpu"]["points"] >= 5
    assert charts["streamBitrate"]["latest"]["live/dash"] > 0
    assert charts["players"]["latest"]["live/dash"] == 1
    assert [p["stream"] for p in stats["players"]] == ["live/dash"]
    assert stats["players"][0]["state"] == "connected"
    assert "live/dash" in dashboard.text_content("#players")
    assert dashboard.text_content("#error") == ""
    assert_charts_explain_themselves(dashboard, charts)
    browsing.screenshot(dashboard, "dashboard")


def assert_charts_explain_themselves(dashboard: Any, charts: dict[str, Any]) -> None:
    """Every chart: a unit in its caption, a time axis ending at now, y labels, and a legend
    naming each series in a colour of its own, shown on the page beside the chart."""
    for key, chart in charts.items():
        assert chart["caption"].endswith(")"), (key, chart["caption"])  # "Title (unit)"
        assert chart["axis"]["time"][-1] == "now" and "\u221260 s" in chart["axis"]["time"], key
        assert len(chart["axis"]["y"]) == 3, key
        names = [entry["name"] for entry in chart["legend"]]
        assert names == list(chart["latest"]), key
        colors = [entry["color"] for entry in chart["legend"]]
        assert len(set(colors)) == len(colors), f"{key}: two series share a colour"
    assert [e["label"] for e in charts["bitrate"]["legend"]] == [
        "in, from publishers",
        "out, to players",
    ]
    shown = dashboard.eval_on_selector_all(
        "figure.chart",
        """figures => figures.map(f => [...f.querySelectorAll('.legend li[data-series]')]
            .map(li => [li.dataset.series, li.querySelector('.swatch').style.background]))""",
    )
    assert len(shown) == len(charts) and all(shown), shown
