"""VP9 SVC in Chromium: publish.html sends one VP9 encoding with scalabilityMode L3T3_KEY over
WHIP; a player pinned to spatial layer 0 (play.html?spatial=0, the WHEP layer extension's
spatialLayerId) decodes at most half the width (a quarter at full capture) of one pinned to
layer 2, from the same RTP stream. (Automatic choice follows each player's estimate, which a
busy machine's delays make noisy; the unit tests check it.)"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.test_pages import FIRST_MEDIA_S, assert_grows, start_publishing
from tests.conftest import shared_server

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(180)

STREAM = "live/svc"
sfu_server = shared_server()


def stream_stats(base: str) -> dict[str, Any]:
    """The test stream's entry of /api/v1/streams, {} before it is there."""
    with urllib.request.urlopen(f"{base}/api/v1/streams", timeout=2) as response:
        streams = json.load(response)["streams"]
    return next((s for s in streams if s["name"] == STREAM), {})


def video_track(base: str) -> dict[str, Any]:
    return next((t for t in stream_stats(base).get("tracks", []) if t["kind"] == "video"), {})


def player_svc(base: str) -> list[list[int]]:
    """Each player's VP9 layers as /api/v1/streams reports them."""
    players = stream_stats(base).get("player_sessions", [])
    return [t["svc"] for p in players for t in p["tracks"] if "svc" in t]


def test_l3t3_key_players_get_the_spatial_layer_they_ask_for(
    browsing: Browsing, sfu_server: Any
) -> None:
    base = sfu_server.http_url
    start_publishing(browsing, base, f"{STREAM}&codec=VP9&svc=L3T3_KEY", "publisher")
    track, took = browsing.wait_for(
        "VP9 to flow",
        lambda: video_track(base),
        lambda t: t.get("codec") == "VP9" and t.get("packets", 0) > 100,
        30,
        interval=1.0,
    )
    print(f"VP9 at {track['bitrate']} bit/s after {took:.1f} s")

    low = browsing.open(f"{base}/play.html?stream={STREAM}&spatial=0", "low")
    top = browsing.open(f"{base}/play.html?stream={STREAM}&spatial=2", "top")
    # The page rewrites its address on play; the pin must survive that (it once did not, and
    # the layer-0 player got the top layer whenever its estimate allowed it).
    assert "spatial=0" in low.url and "spatial=2" in top.url
    widths = {}
    for name, page, wanted in [
        ("low", low, lambda w: 0 < w <= 400),
        ("top", top, lambda w: w >= 640),  # Chromium scales its capture down when busy
    ]:
        snapshot, took = browsing.wait_for(
            f"{name} to decode its layer",
            lambda page=page: browsing.stats(page),
            lambda s, wanted=wanted: s["framesDecoded"] > 0 and wanted(s["videoWidth"]),
            FIRST_MEDIA_S + 20,
        )
        widths[name] = (snapshot["videoWidth"], snapshot["videoHeight"])
        print(f"{name}: {widths[name]} after {took:.1f} s")
        assert_grows(
            browsing, f"{name} framesDecoded", lambda p=page: browsing.stats(p)["framesDecoded"]
        )
    low_now, top_now = browsing.stats(low)["videoWidth"], browsing.stats(top)["videoWidth"]
    svc = player_svc(base)
    print(f"server svc (current s, t, target s, t): {svc}")
    print(f"now: low {low_now}, top {top_now}")
    # Both pins reached the server: layer 0 (or the smallest sent) and layer 2.
    targets = sorted(layers[2] for layers in svc)
    assert len(targets) == 2 and targets[0] < targets[1] == 2
    # A quarter (320 of 1280) at full capture; half (320 of 640) when Chromium, busy, scales
    # its capture down and stops its smallest layer.
    assert 0 < low_now * 2 <= top_now
    assert low.text_content("#error") == "" and top.text_content("#error") == ""
