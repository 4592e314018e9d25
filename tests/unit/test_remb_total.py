"""A receiver's REMBs add up over the streams they name: aiortc sends one per video stream,
and the latest alone is one stream's share of the link, not the link."""

from __future__ import annotations

import struct

from sfu.protocol.remb import RembTotal
from sfu.routing.player import Player
from sfu.wire import rtp
from tests.harness import Harness


def remb(bitrate: int, ssrcs: list[int]) -> bytes:
    """A REMB naming `ssrcs` (exponent and 18-bit mantissa)."""
    exponent = max(0, bitrate.bit_length() - 18)
    value = exponent << 18 | bitrate >> exponent
    body = struct.pack("!II", 0x1234, 0) + b"REMB" + bytes([len(ssrcs)]) + value.to_bytes(3, "big")
    body += b"".join(struct.pack("!I", s) for s in ssrcs)
    return struct.pack("!BBH", 0x80 | 15, rtp.RTCP_PSFB, (len(body) + 4) // 4 - 1) + body


def test_the_latest_rembs_of_disjoint_streams_add_up() -> None:
    total, own = RembTotal(), {1, 2, 3}
    assert total.update(100, [1], own) == 100
    assert total.update(300, [2], own) == 400
    assert total.update(200, [1], own) == 500  # stream 1's newer figure replaces its older
    assert total.update(700, [1, 2], own) == 700  # regrouped: the overlapping sets go
    assert total.update(50, [3], own) == 750
    assert total.update(900, [99], own) == 900  # names none of ours: the whole link


def test_remb_ssrcs_are_bounded_by_the_body() -> None:
    (packet,) = rtp.split_rtcp(remb(1000, [5, 6]))
    assert rtp.remb_ssrcs(packet) == (5, 6)
    truncated = packet._replace(body=packet.body[:16])
    assert rtp.remb_ssrcs(truncated) == (5,)  # claims 2, holds 1
    assert rtp.remb_ssrcs(rtp.RtcpPacket(packet.packet_type, 15, 0, b"REMB")) == ()


def test_a_player_sums_a_rembs_per_stream() -> None:
    h = Harness()
    _, player = h.pair(transport_cc=False)
    h.run(0.5)
    handler = player.session.handler
    assert isinstance(handler, Player)
    audio, video = (t.ssrc for t in handler.tracks)
    player.send_rtcp(remb(64_000, [audio]))
    player.send_rtcp(remb(500_000, [video]))
    h.run(0.1)
    assert handler.remb == 564_000
    assert handler.bwe.remb == 564_000.0
    player.send_rtcp(remb(400_000, [audio, video]))  # Chromium's and Firefox's way: one for all
    h.run(0.1)
    assert handler.remb == 400_000
