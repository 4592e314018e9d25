"""A peer that sends under a new SSRC at every packet gets no SRTP stream for any of them.

libsrtp keeps a stream per SSRC that ever authenticated and searches them one by one, so these
floods used to grow the server's memory and the cost of every packet for the session's life.
Each test runs a real publisher and player through the harness and floods from the
publisher's (or player's) own keys, so every junk packet would authenticate.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Callable

import pylibsrtp
import pytest

from bench.sdp import AUDIO_PT, VIDEO_PT
from sfu.protocol.srtp import SrtpContext
from sfu.protocol.srtp_streams import InboundStreams
from sfu.routing.publisher import Publisher
from sfu.session.peer import RTCP_SENDERS_PER_MLINE, PeerSession
from sfu.wire import rtp
from tests.harness import TICK, Harness, Peer
from tests.unit.test_scenarios_publish_play import assert_continuous

JUNK_PER_TICK = 10  # 2,000 packets a second on the 5 ms clock
FLOOD_TICKS = 300  # 1.5 s: 3,000 new SSRCs
JUNK_SSRC = 0x40000000  # the first junk SSRC; they count up from here
TIMED_PACKETS = 2000


def junk_rtp(peer: Peer, ssrc: int, payload_type: int = VIDEO_PT) -> bytes:
    plain = struct.pack("!BBHII", 0x80, payload_type, ssrc & 0xFFFF, ssrc, ssrc) + b"\0" * 200
    return peer.transport.srtp.protect_rtp(plain)  # type: ignore[union-attr]


def junk_rtcp(peer: Peer, ssrc: int) -> bytes:
    return peer.transport.srtp.protect_rtcp(rtp.receiver_report(ssrc, []))  # type: ignore[union-attr]


def flood(h: Harness, peer: Peer, make: Callable[[Peer, int], bytes]) -> int:
    """Send JUNK_PER_TICK packets from `peer`, each under a new SSRC, at every tick for
    FLOOD_TICKS ticks while the media flows; return how many were sent."""
    ssrcs = itertools.count(JUNK_SSRC)
    for _ in range(FLOOD_TICKS):
        for _ in range(JUNK_PER_TICK):
            peer.send(make(peer, next(ssrcs)))
        h.step(h.now + TICK)
    return FLOOD_TICKS * JUNK_PER_TICK


def has_stream(session: PeerSession, ssrc: int) -> bool:
    """Asks libsrtp itself; only for SSRCs the test is done with, as it removes the stream."""
    try:
        session.srtp.remove_inbound(ssrc)  # type: ignore[union-attr]
    except pylibsrtp.Error:
        return False
    return True


def unprotect_cost(publisher: Peer) -> float:
    """Microseconds the server's SRTP takes for one of the publisher's own video packets, once
    the publisher has stopped (the packets continue its numbering), over TIMED_PACKETS."""
    publisher.sending = False
    media = publisher.media
    assert media is not None
    plain = [
        struct.pack("!BBHII", 0x80, VIDEO_PT, (media.video_seq + i) & 0xFFFF, 0, media.video_ssrc)
        + b"\0" * 1000
        for i in range(TIMED_PACKETS)
    ]
    protected = [publisher.transport.srtp.protect_rtp(p) for p in plain]  # type: ignore[union-attr]
    unprotect = publisher.session.srtp.unprotect_rtp  # type: ignore[union-attr]
    started = time.process_time()
    for packet in protected:
        unprotect(packet)
    return (time.process_time() - started) / TIMED_PACKETS * 1e6


def inbound(session: PeerSession) -> InboundStreams:
    assert session.streams is not None
    return session.streams


def bound(session: PeerSession) -> int:
    tracks = session.peer.tracks
    return sum(len(t.rids) or 1 for t in tracks) + RTCP_SENDERS_PER_MLINE * len(tracks)


def test_new_ssrc_on_every_rtp_packet_is_dropped_undecrypted() -> None:
    baseline = Harness()
    quiet, _ = baseline.pair()
    baseline.run(0.5)
    cost_before = unprotect_cost(quiet)

    h = Harness()
    publisher, player = h.pair()
    h.run(0.5)
    mark = len(player.media_packets(VIDEO_PT))
    sent = flood(h, publisher, junk_rtp)
    h.run(0.2)
    session = publisher.session
    drops = h.router.sessions.drops
    assert drops["unknown_ssrc"] == sent  # each one, before it was decrypted
    assert session.srtp_errors == 0
    assert len(inbound(session)) <= bound(session)
    assert inbound(session).rtp == {
        publisher.media.video_ssrc.to_bytes(4, "big"),  # type: ignore[union-attr]
        publisher.media.audio_ssrc.to_bytes(4, "big"),  # type: ignore[union-attr]
    }
    assert not any(has_stream(session, JUNK_SSRC + i) for i in range(0, sent, 97))
    video = player.media_packets(VIDEO_PT)[mark:]
    assert len(video) > 60 * 1.5  # the publisher's own video went on through the flood
    assert_continuous(video, 90000)

    cost_after = unprotect_cost(publisher)
    print(f"unprotect: {cost_before:.1f} µs before, {cost_after:.1f} µs after {sent} SSRCs")
    assert cost_after < 3 * cost_before + 20  # it was ~40 µs after 3,000 SSRCs, and linear


def test_new_rtcp_sender_on_every_packet_is_dropped_undecrypted() -> None:
    h = Harness()
    publisher, player = h.pair()
    h.run(1.5)  # the publisher's first Sender Reports are in
    mark = len(player.media_packets(AUDIO_PT))
    sent = flood(h, publisher, junk_rtcp)
    session = publisher.session
    streams = inbound(session)
    limit = RTCP_SENDERS_PER_MLINE * len(session.peer.tracks)
    assert h.router.sessions.drops["rtcp_sender_limit"] == sent - limit  # the first took room
    assert len(streams) <= bound(session)
    assert not any(has_stream(session, JUNK_SSRC + i) for i in range(limit, sent, 97))
    handler: Publisher = session.handler  # type: ignore[assignment]
    reports_at = [t.sender_info[2] for t in handler.tracks]  # type: ignore[index]
    h.run(1.5)
    assert all(t.sender_info[2] > at for t, at in zip(handler.tracks, reports_at, strict=True))  # type: ignore[index]
    assert len(player.media_packets(AUDIO_PT)) - mark > 50 * 2.5
    assert_continuous(player.media_packets(AUDIO_PT)[mark:], 48000)


def test_a_players_rtcp_senders_and_rtp_are_bounded_too() -> None:
    h = Harness()
    publisher, player = h.pair()
    h.run(1.0)
    rtcp_sent = flood(h, player, junk_rtcp)
    rtp_sent = flood(h, player, junk_rtp)
    session = player.session
    drops = h.router.sessions.drops
    assert drops["rtp_from_player"] == rtp_sent
    # Its own receiver SSRC holds one of the places; the flood took the others.
    assert drops["rtcp_sender_limit"] == rtcp_sent - (RTCP_SENDERS_PER_MLINE * 2 - 1)
    assert inbound(session).rtp == set()
    assert len(inbound(session)) <= bound(session)
    plis = publisher.stats.plis
    player.send_pli(player.media_packets(VIDEO_PT)[-1].ssrc)  # its own sender still gets in
    h.run(0.2)
    assert publisher.stats.plis > plis


def test_an_ssrc_change_removes_the_old_stream_and_refuses_its_replays() -> None:
    h = Harness()
    publisher, _ = h.pair()
    h.run(1.0)
    media = publisher.media
    assert media is not None
    old = media.video_ssrc
    # Authentic, the next packet of the old SSRC, kept by someone on the path to send later.
    plain = struct.pack("!BBHII", 0x80, VIDEO_PT, media.video_seq, 0, old) + b"\0" * 200
    replay = publisher.transport.srtp.protect_rtp(plain)  # type: ignore[union-attr]
    media.restart_ssrcs()
    h.run(1.0)
    session = publisher.session
    assert media.video_ssrc.to_bytes(4, "big") in inbound(session).rtp
    assert not has_stream(session, old)
    assert len(inbound(session).rtp) == 2
    publisher.send(replay)
    h.run(0.1)
    assert h.router.sessions.drops["retired_ssrc"] == 1


def test_simulcast_layers_keep_their_ssrcs_against_new_ones_with_their_rid() -> None:
    h = Harness()
    publisher, player = h.simulcast_pair()
    h.run(1.0)
    own = publisher.media.layers[0].ssrc  # type: ignore[union-attr]
    before = len(player.media_packets(VIDEO_PT))
    for ssrc in range(JUNK_SSRC, JUNK_SSRC + 1000):  # new SSRCs that name the lowest layer
        plain = struct.pack("!BBHII", 0x80, VIDEO_PT, ssrc & 0xFFFF, 0, ssrc) + b"\0" * 200
        publisher._send_rtp(plain, b"q")
        if ssrc % 5 == 0:
            h.step(h.now + TICK)
    h.run(0.1)
    session = publisher.session
    assert len(inbound(session).rtp) == 4  # three layers and the audio
    assert own.to_bytes(4, "big") in inbound(session).rtp
    assert h.router.sessions.drops["unknown_ssrc"] == 1000
    assert len(player.media_packets(VIDEO_PT)) > before + 30


def test_no_slot_left_removes_the_new_stream() -> None:
    """The backstop under the handler: a slot past media_limit is refused after the packet
    authenticated, and the stream libsrtp made for it goes at once."""
    h = Harness()
    publisher, _ = h.pair()
    h.run(0.5)
    server = SrtpContext(publisher.session.dtls.keys)  # type: ignore[arg-type]
    streams = InboundStreams(server.remove_inbound, media_limit=1, rtcp_limit=0)
    for slot, ssrc in enumerate((7, 8)):
        server.unprotect_rtp(junk_rtp(publisher, ssrc))
        assert streams.adopt(slot, ssrc.to_bytes(4, "big")) is (slot == 0)
    assert len(streams) == 1
    with pytest.raises(pylibsrtp.Error):
        server.remove_inbound(8)
    assert not streams.may_try_sender(b"\0\0\0\1")


def test_a_datagram_longer_than_srtp_takes_is_dropped_and_counted() -> None:
    """pylibsrtp raises ValueError past 1,500 bytes; such a datagram is no media and must
    neither reach it nor count as a handler error."""
    h = Harness()
    publisher, _player = h.pair()
    h.run(0.5)
    media = publisher.media
    assert media is not None
    plain = struct.pack("!BBHII", 0x80, VIDEO_PT, 1, 0, media.video_ssrc) + b"\0" * 1600
    publisher.send(plain)
    h.run(0.1)
    drops = h.router.sessions.drops
    assert drops["srtp_too_large"] == 1
    assert drops["handler_error"] == 0
    assert publisher.session.srtp_errors == 0
