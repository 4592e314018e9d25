"""Simulcast in Chromium: publish.html sends three layers, play.html players each get the one
they ask for (?layer= and the picker) or the best one on "auto"."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.test_pages import FIRST_MEDIA_S, assert_grows
from tests.conftest import shared_server
from tests.integration.relay import Relay, through_relay

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(180)

# One server for the module (see sfu_server below), a stream per test.
LAYERS_STREAM = "live/simul"
BOTTLENECK_STREAM = "live/simul-bottleneck"


# One server for this module: its tests publish streams of their own.
sfu_server = shared_server()


def stream_stats(base: str, stream: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/api/v1/streams", timeout=2) as response:
        streams = json.load(response)["streams"]
    return next((s for s in streams if s["name"] == stream), {})


def layers(base: str, stream: str) -> dict[str, dict[str, Any]]:
    return {t["rid"]: t for t in stream_stats(base, stream).get("tracks", []) if t.get("rid")}


def start_simulcast(browsing: Browsing, base: str, stream: str) -> Any:
    """publish.html with simulcast ticked, started, until all three layers flow."""
    publisher = browsing.open(f"{base}/publish.html?stream={stream}&simulcast=1", "publisher")
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
        lambda: layers(base, stream),
        lambda by_rid: len(by_rid) == 3 and all(t["packets"] > 50 for t in by_rid.values()),
        45,
        interval=1.0,
    )
    assert set(seen) == {"q", "h", "f"}
    print(
        f"3 layers after {took:.1f} s: " + ", ".join(f"{r} {t['bitrate']}" for r, t in seen.items())
    )
    return publisher


def test_three_layers_and_a_player_on_each(browsing: Browsing, sfu_server: Any) -> None:
    base = sfu_server.http_url
    publisher = start_simulcast(browsing, base, LAYERS_STREAM)

    low = browsing.open(f"{base}/play.html?stream={LAYERS_STREAM}&layer=q", "low")
    top = browsing.open(f"{base}/play.html?stream={LAYERS_STREAM}&layer=f", "top")
    auto = browsing.open(f"{base}/play.html?stream={LAYERS_STREAM}", "auto")
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

    # The picker shows for a simulcast stream (its layers event names three layers) and
    # moves a player at once, through the WHEP layer extension.
    browsing.wait_for("the layer picker", lambda: low.is_visible("#layer"), bool, 10)
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
    players = stream_stats(base, LAYERS_STREAM)["player_sessions"]
    video_tracks = [t for p in players for t in p["tracks"] if t.get("layer")]
    assert sorted(t["choice"] for t in video_tracks) == ["auto", "f", "h"]
    assert all(p["estimate"] is not None for p in players)
    browsing.screenshot(publisher, "publish-simulcast")
    browsing.screenshot(low, "play-layer-h")


class RelayThread:
    """The test relay (tests/integration/relay.py) on its own thread and event loop, since
    the browser tests drive Playwright synchronously; its bottleneck is set from here."""

    def __init__(self, udp_port: int) -> None:
        self.relay = Relay(("127.0.0.1", udp_port))
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise AssertionError("the relay did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.port = self.loop.run_until_complete(self.relay.start())
        self._ready.set()
        self.loop.run_forever()

    def set_rate(self, bits_per_second: float) -> None:
        self.loop.call_soon_threadsafe(setattr, self.relay, "rate_to_client", bits_per_second)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.relay.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def player_layer(base: str, stream: str) -> str | None:
    """The layer the one player gets (printed with its estimate, to follow a failure)."""
    players = stream_stats(base, stream).get("player_sessions", [])
    tracks = [t for p in players for t in p["tracks"]]
    layer = next((t["layer"] for t in tracks if t.get("layer")), None)
    print(f"layer {layer}, estimate {[p['estimate'] for p in players]}")
    return layer


def test_a_bottleneck_moves_a_player_down_and_back(browsing: Browsing, sfu_server: Any) -> None:
    """play.html behind a 400 kbit/s bottleneck (its WHEP answer rewritten to the relay's
    port) settles on a lower layer and keeps decoding, then climbs back once it is lifted."""
    base = sfu_server.http_url
    start_simulcast(browsing, base, BOTTLENECK_STREAM)
    relay = RelayThread(sfu_server.udp_port)
    try:
        page = browsing.open(f"{base}/play.html?stream={BOTTLENECK_STREAM}&autoplay=0", "player")

        def via_relay(route: Any) -> None:
            """Send the WHEP POST ourselves and hand the page the answer pointing at the relay;
            anything else (the OPTIONS asking for ICE servers) goes to the server as it is."""
            request = route.request
            if request.method != "POST":
                route.continue_()
                return
            forwarded = urllib.request.Request(
                request.url,
                data=request.post_data_buffer,
                headers={"Content-Type": "application/sdp"},
                method="POST",
            )
            with urllib.request.urlopen(forwarded, timeout=10) as response:
                answer = response.read().decode()
                headers = {
                    k: v for k, v in response.headers.items() if k.lower() != "content-length"
                }
                route.fulfill(
                    status=response.status, headers=headers, body=through_relay(answer, relay.port)
                )

        page.route("**/whep/**", via_relay)
        page.click("#play")
        frames = lambda: browsing.stats(page)["framesDecoded"]  # noqa: E731

        def layer() -> str | None:
            page.wait_for_timeout(50)  # lets Playwright run the route handler meanwhile
            return player_layer(base, BOTTLENECK_STREAM)

        browsing.wait_for("the player on the top layer", layer, lambda layer: layer == "f", 40)
        assert_grows(browsing, "frames decoded on the free link", frames)
        relay.set_rate(400_000)
        limited = time.monotonic()
        _, took = browsing.wait_for("a lower layer", layer, lambda layer: layer in ("q", "h"), 15)
        print(f"down after {took:.1f} s on a 400 kbit/s link")
        assert_grows(browsing, "frames decoded behind the bottleneck", frames)
        width = browsing.stats(page)["videoWidth"]
        assert width < 1280, width
        relay.set_rate(0)
        _, took = browsing.wait_for("the top layer again", layer, lambda layer: layer == "f", 30)
        print(f"back up after {took:.1f} s, {time.monotonic() - limited:.0f} s after the limit")
        assert_grows(browsing, "frames decoded after", frames)
        stats = browsing.stats(page)
        assert stats["sessions"] == 1  # switched in place, never reconnected
        print(f"relay: {relay.relay.forwarded}, {relay.relay.over_rate} dropped at the bottleneck")
    finally:
        relay.stop()
