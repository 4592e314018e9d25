"""Simulcast in Chromium: publish.html sends three layers, play.html players each get the one
they ask for (?layer= and the picker) or the best one on "auto"."""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.test_pages import FIRST_MEDIA_S, assert_grows

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(180)

STREAM = "live/simul"


def stream_stats(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/api/v1/streams", timeout=2) as response:
        streams = json.load(response)["streams"]
    return next((s for s in streams if s["name"] == STREAM), {})


def layers(base: str) -> dict[str, dict[str, Any]]:
    return {t["rid"]: t for t in stream_stats(base).get("tracks", []) if t.get("rid")}


def test_three_layers_and_a_player_on_each(browsing: Browsing, sfu_server: Any) -> None:
    base = sfu_server.http_url
    publisher = browsing.open(f"{base}/publish.html?stream={STREAM}&simulcast=1", "publisher")
    assert publisher.is_checked("#simulcast")
    publisher.click("#start")
    browsing.wait_for(
        "publisher connected and encoding",
        lambda: browsing.stats(publisher),
        lambda s: s["state"] == "connected" and s["framesEncoded"] > 0,
        FIRST_MEDIA_S,
    )
    # Chromium turns layers on as its send estimate grows: wait for all three to flow.
    seen, took = browsing.wait_for(
        "three layers with packets",
        lambda: layers(base),
        lambda by_rid: len(by_rid) == 3 and all(t["packets"] > 50 for t in by_rid.values()),
        45,
        interval=1.0,
    )
    assert set(seen) == {"q", "h", "f"}
    print(
        f"3 layers after {took:.1f} s: " + ", ".join(f"{r} {t['bitrate']}" for r, t in seen.items())
    )

    low = browsing.open(f"{base}/play.html?stream={STREAM}&layer=q", "low")
    top = browsing.open(f"{base}/play.html?stream={STREAM}&layer=f", "top")
    auto = browsing.open(f"{base}/play.html?stream={STREAM}", "auto")
    widths = {}
    for name, page, wanted in [
        ("low", low, lambda w: 0 < w <= 400),
        ("top", top, lambda w: w >= 960),
        ("auto", auto, lambda w: w >= 960),
    ]:
        snapshot, took = browsing.wait_for(
            f"{name} to decode its layer",
            lambda page=page: browsing.stats(page),
            lambda s, wanted=wanted: s["framesDecoded"] > 0 and wanted(s["videoWidth"]),
            FIRST_MEDIA_S + 15,
        )
        widths[name] = (snapshot["videoWidth"], snapshot["videoHeight"])
        assert_grows(
            browsing, f"{name} framesDecoded", lambda p=page: browsing.stats(p)["framesDecoded"]
        )
    print(f"decoded sizes: {widths}")
    assert widths["low"][0] * 2 < widths["top"][0]

    # The picker moves a player at once, through the WHEP layer extension.
    low.select_option("#layer", "h")
    snapshot, took = browsing.wait_for(
        "the picker's h layer",
        lambda: browsing.stats(low),
        lambda s: widths["low"][0] < s["videoWidth"] < widths["top"][0],
        20,
    )
    print(f"picker to h: {snapshot['videoWidth']}x{snapshot['videoHeight']} after {took:.1f} s")
    assert low.text_content("#error") == ""
    assert snapshot["sessions"] == 1  # the same session: switched, not reconnected
    players = stream_stats(base)["player_sessions"]
    video_tracks = [t for p in players for t in p["tracks"] if t.get("layer")]
    assert sorted(t["choice"] for t in video_tracks) == ["auto", "f", "h"]
    assert all(p["estimate"] is not None for p in players)
    browsing.screenshot(publisher, "publish-simulcast")
    browsing.screenshot(low, "play-layer-h")
