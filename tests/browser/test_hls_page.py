"""HLS in Chromium: publish.html sends H264, play.html plays it as LL-HLS through hls.js, and
its currentTime advances; how far behind the live edge it plays is printed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.test_pages import start_publishing
from tests.conftest import shared_server

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(120)

sfu_server = shared_server()


def test_play_page_plays_an_h264_stream_as_hls(browsing: Browsing, sfu_server) -> None:
    base = sfu_server.http_url
    publisher = start_publishing(browsing, base, "live/hls&codec=H264", "publisher")
    assert browsing.stats(publisher)["codec"].lower().endswith("h264")
    page = browsing.open(f"{base}/play.html?stream=live/hls&via=hls", "hls player")
    first, waited = browsing.wait_for(
        "HLS playback to start",
        lambda: browsing.stats(page)["currentTime"],
        lambda at: at > 0.5,
        30,
    )
    browsing.wait_for(
        "currentTime to advance",
        lambda: browsing.stats(page)["currentTime"],
        lambda at: at >= first + 2,
        15,
    )
    latency = browsing.stats(page)["hlsLatency"]
    edge = page.evaluate("() => document.getElementById('endpoint').textContent")
    assert edge.endswith("/hls/live/hls/index.m3u8")
    print(f"\nHLS in Chromium: playing {waited:.1f} s after opening the page; "
          f"{latency:.2f} s behind the live edge (hls.js)")  # fmt: skip
    browsing.screenshot(page, "hls")
