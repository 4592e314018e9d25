"""The web pages in headless Chromium against the real server: publish, play, list, room.

Each test drives pages only through their UI and reads numbers from the read-only
`window.litesfu.stats()` hook (getStats summaries), so what passes here is what a person
would see: frames encoded by the fake camera, forwarded, and decoded by other pages.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import shared_server

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(120)

FIRST_MEDIA_S = 25  # ICE + DTLS + first keyframe, generous for 2 busy cores
GROW_S = 10  # a running stream must show new frames well within this


# One server for this module: every test here uses stream names of its own and closes
# its pages at its end, so none sees another's sessions (a server start and stop saved
# per test).
sfu_server = shared_server()


def start_publishing(browsing: Browsing, base: str, stream: str, name: str) -> Any:
    """Open publish.html, press Start, wait until frames are being encoded and sent."""
    page = browsing.open(f"{base}/publish.html?stream={stream}", name)
    page.click("#start")
    browsing.wait_for(
        f"{name} connected and encoding",
        lambda: browsing.stats(page),
        lambda s: s["state"] == "connected" and s["framesEncoded"] > 0,
        FIRST_MEDIA_S,
    )
    return page


def start_playing(browsing: Browsing, base: str, stream: str, name: str = "player") -> Any:
    """Open play.html and wait until it has decoded a frame."""
    page = browsing.open(f"{base}/play.html?stream={stream}", name)
    browsing.wait_for(
        f"{name} to decode",
        lambda: browsing.stats(page)["framesDecoded"],
        lambda frames: frames > 0,
        FIRST_MEDIA_S,
    )
    return page


def assert_grows(browsing: Browsing, what: str, probe: Any, by: int = 10) -> tuple[int, int]:
    """`probe()` is a frame counter; it must gain `by` frames within GROW_S.

    Ten frames is half a second of the fake camera: a flowing stream, not a stray frame.
    Returns (before, after).
    """
    before = probe()
    after, _ = browsing.wait_for(what, probe, lambda v: v >= before + by, GROW_S)
    return before, after


def test_publish_and_two_players(browsing: Browsing, sfu_server: Any) -> None:
    """A fake camera published from one page is decoded by two independent players."""
    base = sfu_server.http_url
    publisher = start_publishing(browsing, base, "live/cam1", "publisher")
    encoded = assert_grows(
        browsing, "framesEncoded to grow", lambda: browsing.stats(publisher)["framesEncoded"]
    )

    players = [browsing.open(f"{base}/play.html?stream=live/cam1", f"player{i}") for i in (1, 2)]
    measured = []
    for index, page in enumerate(players, 1):
        first, _ = browsing.wait_for(
            f"player{index} to decode video",
            lambda page=page: browsing.stats(page),
            lambda s: s["framesDecoded"] > 0 and s["videoWidth"] > 0,
            FIRST_MEDIA_S,
        )
        decoded = assert_grows(
            browsing,
            f"player{index} framesDecoded to grow",
            lambda page=page: browsing.stats(page)["framesDecoded"],
        )
        measured.append((index, first["firstFrameMs"], first["videoWidth"], decoded))
        assert "playing" in page.text_content("#status")
        assert page.text_content("#error") == ""
        assert not page.is_visible("#layer")  # no simulcast, no layer picker

    print(f"publisher framesEncoded {encoded[0]} -> {encoded[1]}")
    for index, first_ms, width, decoded in measured:
        print(
            f"player{index}: first frame {first_ms:.0f} ms after start, width {width}, "
            f"framesDecoded {decoded[0]} -> {decoded[1]}"
        )

    # The stats panels show the same numbers a person would read.
    assert "frames encoded" in publisher.text_content("#stats")
    assert "frames decoded" in players[0].text_content("#stats")
    browsing.screenshot(publisher, "publish")
    browsing.screenshot(players[0], "play")


def test_index_lists_the_stream(browsing: Browsing, sfu_server: Any) -> None:
    """The home page's live list shows a published stream, its codec, and its player."""
    base = sfu_server.http_url
    start_publishing(browsing, base, "live/listed", "publisher")
    start_playing(browsing, base, "live/listed")

    index = browsing.open(f"{base}/", "index")
    row = 'tr[data-stream="live/listed"]'
    cells, took = browsing.wait_for(
        "the stream row with one player",
        lambda: index.evaluate(
            "sel => [...(document.querySelector(sel)?.cells ?? [])].map(c => c.textContent)", row
        ),
        # columns: name, publisher state, codecs, players, in, out, link
        lambda c: len(c) == 7 and c[0] == "live/listed" and "VP8" in c[2] and c[3] == "1",
        6,  # the list refreshes every 2 s
    )
    print(f"index row after {took:.1f} s: {cells!r}")
    assert index.get_attribute(f"{row} a", "href") == "play.html?stream=live%2Flisted"
    assert index.is_hidden("#no-streams")
    browsing.screenshot(index, "index")


def test_second_publisher_sees_409(browsing: Browsing, sfu_server: Any) -> None:
    """Publishing a stream that already has a publisher shows the server's 409 on the page."""
    base = sfu_server.http_url
    browsing.expected_console_errors.append(r"status of 409")  # the refused POST itself
    first = start_publishing(browsing, base, "live/dup", "first")

    second = browsing.open(f"{base}/publish.html?stream=live/dup", "second")
    second.click("#start")
    message, _ = browsing.wait_for(
        "an error message on the second page",
        lambda: second.text_content("#error") or "",
        lambda text: text != "",
        10,
    )
    print(f"second publisher's error: {message!r}")
    assert "409" in message, message
    assert browsing.stats(second)["publishing"] is False
    assert second.is_enabled("#start") and second.is_disabled("#stop")
    # The refused attempt must not disturb the stream that was there first.
    assert_grows(
        browsing, "first publisher still encoding", lambda: browsing.stats(first)["framesEncoded"]
    )
    assert browsing.stats(first)["state"] == "connected"
    browsing.screenshot(second, "publish-409")


def test_room_of_three(browsing: Browsing, sfu_server: Any) -> None:
    """Three co-hosts each decode the other two; whoever goes, closing or leaving, goes."""
    base = sfu_server.http_url
    names = ["alice", "bob", "carol"]
    pages = {name: browsing.open(f"{base}/room.html?room=r1&name={name}", name) for name in names}

    def tiles(name: str) -> dict[str, dict[str, Any]]:
        return {t["name"]: t for t in browsing.stats(pages[name])["tiles"]}

    for name in names:
        others = sorted(set(names) - {name})
        _, took = browsing.wait_for(
            f"{name} to decode {others}",
            lambda name=name: tiles(name),
            lambda ts, others=others: (
                sorted(ts) == others
                and all(t["framesDecoded"] > 0 and t["videoWidth"] > 0 for t in ts.values())
            ),
            FIRST_MEDIA_S,
        )
        print(f"{name}: both remote tiles decoding after {took:.1f} s")
    for name in names:
        assert browsing.stats(pages[name])["publisher"]["framesEncoded"] > 0
        for other in sorted(set(names) - {name}):
            before, after = assert_grows(
                browsing,
                f"{name}'s tile of {other} to keep decoding",
                lambda name=name, other=other: tiles(name)[other]["framesDecoded"],
            )
            print(f"{name} sees {other}: framesDecoded {before} -> {after}")
        labels = pages[name].eval_on_selector_all(
            ".tile[data-participant] .name", "els => els.map(e => e.textContent)"
        )
        assert sorted(labels) == sorted(set(names) - {name})
    browsing.screenshot(pages["alice"], "room-three")

    # Carol closes her tab: her tile must go from the other two pages.
    pages["carol"].close()
    for name in ("alice", "bob"):
        _, took = browsing.wait_for(
            f"carol's tile to leave {name}'s page",
            lambda name=name: sorted(tiles(name)),
            lambda ts, name=name: ts == sorted({"alice", "bob"} - {name}),
            20,
        )
        print(f"{name}: carol's tile gone {took:.1f} s after she closed the page")
        assert pages[name].query_selector('.tile[data-participant="carol"]') is None
    browsing.screenshot(pages["alice"], "room-after-close")

    # Bob presses Leave: his sessions are DELETEd, so the server and alice's page drop him.
    pages["bob"].click("#leave")
    _, took = browsing.wait_for(
        "bob's tile to leave alice's page",
        lambda: sorted(tiles("alice")),
        lambda ts: ts == [],
        10,
    )
    print(f"alice: bob's tile gone {took:.1f} s after he pressed Leave")
    bob = browsing.stats(pages["bob"])
    assert not bob["joined"] and bob["tiles"] == [], bob
    with urllib.request.urlopen(base + "/api/v1/streams", timeout=5) as response:
        listed = {s["name"]: s for s in json.load(response)["streams"]}
    assert not listed.get("r1/bob", {}).get("publishing"), listed
    assert listed["r1/alice"]["publishing"], listed
    assert pages["alice"].is_visible("#alone")


def test_h264_publish_and_play(browsing: Browsing, sfu_server: Any) -> None:
    """The codec picker's H264 choice is what is sent, forwarded and decoded."""
    base = sfu_server.http_url
    publisher = browsing.open(f"{base}/publish.html?stream=live/h264&codec=H264", "publisher")
    assert publisher.input_value("#codec") == "H264"
    publisher.click("#start")
    sent, _ = browsing.wait_for(
        "H264 frames encoded",
        lambda: browsing.stats(publisher),
        lambda s: s["framesEncoded"] > 0 and s["codec"] is not None,
        FIRST_MEDIA_S,
    )
    assert sent["codec"] == "H264", sent
    player = browsing.open(f"{base}/play.html?stream=live/h264", "player")
    got, _ = browsing.wait_for(
        "the player to decode H264",
        lambda: browsing.stats(player),
        lambda s: s["framesDecoded"] > 0 and s["videoWidth"] > 0 and s["codec"] is not None,
        FIRST_MEDIA_S,
    )
    assert got["codec"] == "H264", got
    before, after = assert_grows(
        browsing, "H264 framesDecoded to grow", lambda: browsing.stats(player)["framesDecoded"]
    )
    print(f"H264: first frame {got['firstFrameMs']:.0f} ms, framesDecoded {before} -> {after}")


def test_player_recovers_when_stream_returns(browsing: Browsing, sfu_server: Any) -> None:
    """A player keeps trying while the publisher is gone and plays again when it is back."""
    base = sfu_server.http_url
    publisher = start_publishing(browsing, base, "live/flaky", "publisher")
    player = start_playing(browsing, base, "live/flaky")

    publisher.click("#stop")
    status, stalled_after = browsing.wait_for(
        "the player to notice the stream stopped",
        lambda: player.text_content("#status") or "",
        lambda text: "waiting for the publisher" in text,  # told by the WHEP events
        15,
    )
    assert "waiting for the publisher" in player.text_content("#publisher")
    print(f"player noticed after {stalled_after:.1f} s: {status!r}")
    frames_before = browsing.stats(player)["framesDecoded"]

    publisher.click("#start")
    after, recovered_in = browsing.wait_for(
        "the player to decode the returned stream",
        lambda: browsing.stats(player),
        lambda s: s["framesDecoded"] > frames_before and s["state"] == "connected",
        30,  # publisher reconnect + at most one 8 s backoff + first keyframe
    )
    browsing.wait_for(
        "the WHEP events to say the publisher is back",
        lambda: player.text_content("#publisher") or "",
        lambda text: text.startswith("live"),
        5,
    )
    print(
        f"player playing again {recovered_in:.1f} s after the publisher restarted, "
        f"WHEP sessions used: {after['sessions']}"
    )
    browsing.wait_for(
        "the status to say playing",
        lambda: player.text_content("#status") or "",
        lambda text: text.endswith("playing"),
        5,
    )
    browsing.screenshot(player, "play-recovered")


def test_pages_load_cleanly(browsing: Browsing, sfu_server: Any) -> None:
    """Every page loads from the server with no uncaught error and no console error."""
    base = sfu_server.http_url
    pages = ("/", "/publish.html", "/play.html?autoplay=0", "/room.html", "/dashboard.html")
    for path in pages:
        page = browsing.open(base + path, path)
        page.wait_for_timeout(300)
        assert page.title().endswith("LiteSFU"), page.title()
        if path == "/publish.html":
            # The Simulcast checkbox sits by its word: the label is about as wide as both.
            box = page.locator("#simulcast").bounding_box()
            label = page.locator("label.check").bounding_box()
            assert box is not None and label is not None
            assert label["width"] < box["width"] + 100, (box, label)
    errors = [f"{log.name}: {line}" for log in browsing.logs for line in log.console_errors()]
    assert not errors, "\n".join(errors)


def test_publisher_bandwidth_estimate_ramps_up(browsing: Browsing, sfu_server: Any) -> None:
    """With the server's transport-cc feedback, Chromium's send-side estimate climbs past
    1 Mbit/s within 15 s of connecting. (With the feedback switched off, it was seen to sink
    to about 80 kbit/s here, and the encoder to 30 kbit/s at 320x240.)"""
    publisher = start_publishing(browsing, sfu_server.http_url, "live/bwe", "publisher")
    stats, seconds = browsing.wait_for(
        "availableOutgoingBitrate above 1 Mbit/s",
        lambda: browsing.stats(publisher),
        lambda s: s["availableOutgoingBitrate"] > 1_000_000,
        15,
        interval=0.5,
    )
    print(
        f"bandwidth estimate {stats['availableOutgoingBitrate'] / 1e6:.2f} Mbit/s after "
        f"{seconds:.1f} s, encoder target {stats['targetBitrate'] / 1e6:.2f} Mbit/s"
    )
    browsing.screenshot(publisher, "bandwidth")
