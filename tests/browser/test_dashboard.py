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
    browsing.screenshot(dashboard, "dashboard")
