"""The SCTP association on a fake clock: handshake and cookie, loss, reordering, duplication,
retransmission timing, partial reliability, fragmentation, and the bounds a hostile peer meets."""

from __future__ import annotations

import random
import struct

import pytest

from sfu.protocol import sctp_send
from sfu.protocol.sctp import (
    MAX_QUEUED_CHUNKS,
    MAX_RETRANSMISSIONS,
    RECEIVE_BUFFER,
    Association,
    AssociationClosed,
    AssociationState,
    AssociationUp,
    StreamsReset,
)
from sfu.protocol.sctp_receive import MAX_TSN_AHEAD
from sfu.protocol.sctp_reconfig import OUTGOING_RESET_REQUEST
from sfu.wire import sctp
from tests.unit.sctp_pair import Pair

# -- wire codec ---------------------------------------------------------------------------------


def test_chunks_round_trip_and_checksum_is_checked() -> None:
    data = sctp.data_chunk(sctp.FLAG_BEGIN | sctp.FLAG_END, 7, 3, 2, 51, b"hello")
    sack = sctp.sack_chunk(6, 1000, [(2, 3)], [5])
    forward = sctp.forward_tsn_chunk(9, [(3, 4)])
    packet = sctp.encode_packet(5000, 5000, 0xABCD, [data, sack, forward])
    parsed = sctp.parse_packet(packet)
    assert (parsed.source_port, parsed.verification_tag) == (5000, 0xABCD)
    (k1, f1, b1), (k2, _, b2), (k3, _, b3) = parsed.chunks
    assert k1 == sctp.DATA and sctp.parse_data(f1, b1) == sctp.DataChunk(f1, 7, 3, 2, 51, b"hello")
    assert k2 == sctp.SACK and sctp.parse_sack(b2) == sctp.Sack(6, 1000, [(2, 3)], 1)
    assert k3 == sctp.FORWARD_TSN and sctp.parse_forward_tsn(b3) == (9, [(3, 4)])
    corrupt = bytearray(packet)
    corrupt[20] ^= 1
    with pytest.raises(sctp.SctpError, match="CRC32c"):
        sctp.parse_packet(bytes(corrupt))


def with_crc(packet: bytes) -> bytes:
    """A packet whose checksum is made right again after its bytes were changed."""
    body = packet[:8] + b"\x00\x00\x00\x00" + packet[12:]
    return sctp.encode_packet(*struct.unpack_from("!HHI", body), [body[12:]])


def test_bad_lengths_are_errors() -> None:
    good = sctp.encode_packet(1, 2, 3, [sctp.chunk(sctp.COOKIE_ACK)])
    too_long = bytearray(good)
    too_long[15] = 200  # the chunk claims more bytes than the packet has
    with pytest.raises(sctp.SctpError, match="bad length"):
        sctp.parse_packet(with_crc(bytes(too_long)))
    with pytest.raises(sctp.SctpError):
        sctp.parse_sack(struct.pack("!IIHH", 1, 2, 100, 0))  # 100 gap blocks, none there
    with pytest.raises(sctp.SctpError):
        sctp.parse_init(b"\x00" * 16)


# -- the handshake ------------------------------------------------------------------------------


def init_packet(tag: int = 77) -> bytes:
    init = sctp.Init(tag, 100000, 10, 10, 1000, {})
    return sctp.encode_packet(5000, 5000, 0, [sctp.init_chunk(sctp.INIT, init)])


def test_init_is_answered_without_state_and_a_forged_cookie_creates_nothing() -> None:
    server = Association(random.Random(2))
    (ack_packet,) = server.receive(init_packet(), 0.0)
    assert server.state is AssociationState.LISTEN
    assert server.inbound is None and server.outbound is None and server.local_tag == 0
    ack = sctp.parse_init(sctp.parse_packet(ack_packet).chunks[0][2])
    cookie = ack.params[sctp.PARAM_STATE_COOKIE]

    def echo(body: bytes, tag: int = ack.tag, at: float = 1.0) -> list[bytes]:
        packet = sctp.encode_packet(5000, 5000, tag, [sctp.chunk(sctp.COOKIE_ECHO, 0, body)])
        return server.receive(packet, at)

    forged = bytearray(cookie)
    forged[3] ^= 0xFF  # another peer tag: the MAC no longer fits
    assert echo(bytes(forged)) == [] and server.drops["sctp_bad_cookie"] == 1
    assert echo(cookie[:-1]) == [] and server.drops["sctp_bad_cookie"] == 2
    assert echo(cookie, at=61.0) == [] and server.drops["sctp_stale_cookie"] == 1
    assert echo(cookie, tag=ack.tag ^ 1) == [] and server.drops["sctp_bad_tag"] == 1
    assert server.state is AssociationState.LISTEN and server.inbound is None
    (cookie_ack,) = echo(cookie)
    assert sctp.parse_packet(cookie_ack).chunks[0][0] == sctp.COOKIE_ACK
    assert server.state is AssociationState.ESTABLISHED
    assert server.poll_events() == [AssociationUp()]


def test_packets_with_a_wrong_tag_are_dropped() -> None:
    pair = Pair()
    pair.connect()
    data = sctp.data_chunk(3, pair.server.inbound.cumulative_tsn + 1, 1, 0, 53, b"x")  # type: ignore[union-attr]
    wrong = sctp.encode_packet(5000, 5000, pair.server.local_tag ^ 1, [data])
    assert pair.server.receive(wrong, pair.now) == []
    assert pair.server.drops["sctp_bad_tag"] == 1 and pair.delivered() == []


# -- delivery under loss, reordering, duplication -----------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
def test_every_message_arrives_intact_through_a_bad_link(ordered: bool) -> None:
    pair = Pair()
    pair.connect()
    for path in (pair.up, pair.down):
        path.loss, path.duplicate, path.delay, path.jitter = 0.1, 0.05, 0.02, 0.04
    messages = [bytes([i % 256]) * (1 + (i * 37) % 3000) for i in range(300)]
    for message in messages:
        assert pair.send(message, ordered=ordered)
        pair.run(0.01)
    pair.run(30)
    delivered = pair.delivered()
    if ordered:
        assert delivered == messages
    else:
        assert sorted(delivered) == sorted(messages)
    assert pair.client.buffered == 0
    assert pair.client.outbound.retransmissions > 0  # type: ignore[union-attr]
    assert pair.server.drops["sctp_duplicate_tsn"] > 0


def test_retransmission_backs_off_from_the_rto() -> None:
    pair = Pair()
    pair.connect()
    pair.up.blocked = True
    start = pair.now
    pair.sent.clear()
    assert pair.send(b"lost")
    pair.run(8)
    times = [round(t - start, 2) for t, d, p in pair.sent if d == "up" and _has_data(p)]
    rto = sctp_send.RTO_INITIAL
    assert times == [0.0, rto, 3 * rto, 7 * rto]  # the RTO doubles after each expiry


def _has_data(packet: bytes) -> bool:
    return any(kind == sctp.DATA for kind, _, _ in sctp.parse_packet(packet).chunks)


def test_a_peer_that_stops_acknowledging_costs_a_bounded_queue_then_the_association() -> None:
    pair = Pair()
    pair.connect()
    pair.down.blocked = True  # the server's SACKs never arrive
    accepted = sum(pair.send(b"x" * 100) for _ in range(MAX_QUEUED_CHUNKS + 100))
    assert accepted == MAX_QUEUED_CHUNKS
    assert pair.client.drops["sctp_send_queue_full"] == 100
    assert pair.client.buffered == MAX_QUEUED_CHUNKS * 100
    pair.run(sum(min(60, 2**i) for i in range(MAX_RETRANSMISSIONS + 1)) + 5)
    assert pair.client.state is AssociationState.CLOSED
    assert AssociationClosed("the peer stopped acknowledging data") in pair.client_events
    assert pair.client.buffered == 0 and pair.client.next_timer() is None


def test_a_silent_peer_is_found_by_heartbeats() -> None:
    pair = Pair()
    pair.connect()
    pair.run(40)
    assert pair.client.state is AssociationState.ESTABLISHED  # heartbeats answered
    pair.up.blocked = pair.down.blocked = True
    pair.run(400)
    assert AssociationClosed("the peer stopped answering heartbeats") in pair.client_events


# -- partial reliability (RFC 3758) -------------------------------------------------------------


@pytest.mark.parametrize("ordered", [True, False])
def test_abandoned_messages_are_skipped_without_stalling_the_rest(ordered: bool) -> None:
    pair = Pair()
    pair.connect()
    pair.up.loss = 0.3
    sent = [f"m{i}".encode() for i in range(200)]
    for message in sent:
        assert pair.send(message, ordered=ordered, max_retransmits=0)
        pair.run(0.02)
    pair.up.loss = 0.0
    pair.send(b"last", ordered=ordered, max_retransmits=0)
    pair.run(10)
    delivered = pair.delivered()
    assert b"last" in delivered and 100 < len(delivered) < 200
    if ordered:
        assert delivered == sorted(delivered, key=lambda m: sent.index(m) if m in sent else 999)
    assert pair.client.outbound.abandoned > 0  # type: ignore[union-attr]
    assert pair.client.buffered == 0  # FORWARD-TSN moved the peer's cumulative TSN past them
    assert pair.server.inbound.cumulative_tsn == pair.client.outbound.cumulative_ack  # type: ignore[union-attr]


def test_a_lifetime_abandons_what_was_not_delivered_in_time() -> None:
    pair = Pair()
    pair.connect()
    pair.up.blocked = True
    assert pair.send(b"stale", lifetime=0.5)
    pair.run(2)
    pair.up.blocked = False
    assert pair.send(b"fresh", lifetime=0.5)
    pair.run(3)
    assert pair.delivered() == [b"fresh"]


# -- fragmentation and the size bounds ----------------------------------------------------------


def test_largest_message_is_fragmented_and_reassembled_and_larger_is_refused() -> None:
    pair = Pair()
    pair.connect()
    pair.up.loss, pair.up.jitter = 0.05, 0.03
    largest = random.Random(3).randbytes(pair.client.max_message_size)
    assert pair.send(largest)
    assert not pair.send(largest + b"!")
    assert pair.client.drops["sctp_message_too_large"] == 1
    pair.run(20)
    assert pair.delivered() == [largest]


def test_a_message_past_our_limit_is_dropped_as_it_arrives_and_the_next_gets_through() -> None:
    client = Association(random.Random(1), max_message_size=1024 * 1024)
    pair = Pair(client=client)
    pair.connect()
    assert pair.send(b"x" * (300 * 1024))
    assert pair.send(b"after")
    pair.run(5)
    assert pair.delivered() == [b"after"]
    assert pair.server.drops["sctp_message_too_large"] == 1
    assert pair.server.inbound.buffered == 0  # type: ignore[union-attr]


def test_data_beyond_the_window_is_not_held() -> None:
    pair = Pair()
    pair.connect()
    server = pair.server
    base = server.inbound.cumulative_tsn  # type: ignore[union-attr]

    def fragment(offset: int, flags: int = 0) -> bytes:
        chunk = sctp.data_chunk(flags, (base + offset) & 0xFFFFFFFF, 1, 0, 53, b"y" * 1000)
        return sctp.encode_packet(5000, 5000, server.local_tag, [chunk])

    server.receive(fragment(MAX_TSN_AHEAD + 1), pair.now)
    assert server.drops["sctp_beyond_window"] == 1
    for offset in range(2, MAX_TSN_AHEAD):  # middles of a message whose first never comes
        server.receive(fragment(offset), pair.now)
    assert server.inbound.buffered <= RECEIVE_BUFFER  # type: ignore[union-attr]
    assert server.drops["sctp_receive_buffer_full"] > 0


# -- stream reset -------------------------------------------------------------------------------


def test_a_stream_reset_is_answered_and_reported() -> None:
    pair = Pair()
    pair.connect()
    request = struct.pack("!IIIHH", 5, 0, pair.client.outbound.next_tsn - 1, 1, 3)  # type: ignore[union-attr]
    chunk = sctp.chunk(sctp.RECONFIG, 0, sctp.param(OUTGOING_RESET_REQUEST, request))
    pair.carry("up", [pair.client._packet(pair.client.peer_tag, [chunk])])
    pair.sent.clear()
    pair.run(0.5)
    assert StreamsReset((1, 3)) in pair.server_events
    answers = [p for _, d, p in pair.sent if d == "down"]
    kinds = [k for p in answers for k, _, _ in sctp.parse_packet(p).chunks]
    assert sctp.RECONFIG in kinds
