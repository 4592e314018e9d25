"""PublisherTrack.forward and SubscriberTrack: per-player rewriting, NACK answers, SR and RTT.

Every test runs on both forwarding paths. On the Python path players are fed through a fake
session (an address and an identity SRTP protect) and a list that collects what would go on
the wire. On the compiled path (sfu.protocol._fanout) each player has DTLS-SRTP keys and real
sockets on 127.0.0.1; what it receives is unprotected with pylibsrtp before the test looks at it.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from pylibsrtp import Policy, Session

from sfu.media import AUDIO, VIDEO, Codec, TrackSpec
from sfu.protocol import fastpath
from sfu.protocol.dtls import SrtpKeys
from sfu.protocol.receiver import MissingPackets
from sfu.routing.publisher_track import KeyframeNeeded, NackNeeded, PublisherTrack
from sfu.routing.rewrite import CACHE_SIZE
from sfu.routing.subscriber_track import MAX_RESENDS_PER_RTCP, SubscriberTrack
from sfu.wire import rtp

PLAYER_ADDR = ("198.51.100.7", 50000)
FEEDBACK = ("nack", "nack pli", "ccm fir", "goog-remb")

VP8_KEY_START = b"\x90\x80\x81\x23" + b"\x50\x02\x00\x9d\x01\x2a"  # X, I, 15-bit picture ID
VP8_INTER_START = b"\x10" + b"\x31\x05\x00"
VP8_CONTINUATION = b"\x00" + b"\x77" * 20


class KnownRandom(random.Random):
    """Distinct, known 'random' SSRCs and bases, so offsets differ by construction."""

    def __init__(self) -> None:
        super().__init__(0)
        self._values = iter(range(0x1111, 0x1111 + 1000 * 0x3333, 0x3333))

    def getrandbits(self, k: int) -> int:
        return next(self._values) & ((1 << k) - 1)


RNG = [KnownRandom()]  # what the players' tracks draw from: a fresh one for every test


@pytest.fixture(autouse=True)
def deterministic_random() -> Iterator[None]:
    RNG[0] = KnownRandom()
    yield


@pytest.fixture(autouse=True, params=["python", "compiled"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The forwarding path under test; the compiled one needs the extension built."""
    if request.param == "python":
        monkeypatch.setattr(fastpath, "fanout", None)
    elif fastpath.fanout is None:
        pytest.skip(f"no compiled path: {fastpath.WHY}")
    return request.param


def packet(
    seq: int,
    ts: int,
    payload: bytes,
    *,
    ssrc: int = 0xA1A1A1A1,
    pt: int = 96,
    marker: bool = False,
    ext: bool = True,
    padding: int = 0,
) -> bytes:
    """A publisher's RTP packet, with a one-byte header extension (abs-send-time, twcc)."""
    first = 0x80 | (0x10 if ext else 0) | (0x20 if padding else 0)
    out = bytes([first, (0x80 if marker else 0) | pt])
    out += struct.pack("!HII", seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    if ext:
        out += b"\xbe\xde\x00\x02" + b"\x32\x01\x02\x03" + b"\x51\x00\x07\x00"
    out += payload
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return out


def publisher(ssrc: int = 0xA1A1A1A1, kind: str = VIDEO, name: str = "VP8") -> PublisherTrack:
    clock = 48000 if kind == AUDIO else 90000
    codec = Codec(name, 111 if kind == AUDIO else 96, clock, rtcp_fb=FEEDBACK)
    return PublisherTrack(TrackSpec("0", kind, [codec], ssrc=ssrc), keyframe_interval=1.0)


class Player:
    """A SubscriberTrack with its session and the datagrams it sent (as plaintext RTP)."""

    def __init__(self, rtx: bool = False, payload_type: int = 102) -> None:
        self._sent: list[bytes] = []
        self.session = SimpleNamespace(
            addr=PLAYER_ADDR,
            srtp=SimpleNamespace(protect_rtp=bytes),  # like SRTP, a new bytes object
        )
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        if fastpath.fanout is not None:
            self._key = os.urandom(28)
            keys = SrtpKeys(Policy.SRTP_PROFILE_AEAD_AES_128_GCM, self._key, self._key)
            self.session.dtls = SimpleNamespace(keys=keys)
            receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            receiver.bind(("127.0.0.1", 0))
            receiver.setblocking(False)
            sender.setblocking(False)
            self._sockets = (receiver, sender)
            self.session.addr = receiver.getsockname()
        codec = Codec(
            "VP8",
            payload_type,
            90000,
            rtcp_fb=FEEDBACK,
            rtx_payload_type=payload_type + 1 if rtx else None,
        )
        self.track = SubscriberTrack(self.session, TrackSpec("0", VIDEO, [codec]), RNG[0])  # type: ignore[arg-type]

    def __del__(self) -> None:
        for sock in self._sockets or ():
            sock.close()

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        assert addr == PLAYER_ADDR
        self._sent.append(data)

    @property
    def sent(self) -> list[bytes]:
        if self._sockets is not None:  # loopback has delivered by the time the send returned
            for _ in range(10_000):
                try:
                    datagram = self._sockets[0].recv(2048)
                except BlockingIOError:
                    break
                # A fresh receiver each time: NACK answers repeat sequence numbers.
                inbound = Policy(
                    key=self._key,
                    ssrc_type=Policy.SSRC_ANY_INBOUND,
                    srtp_profile=Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
                )
                self._sent.append(Session(inbound).unprotect(datagram))
        return self._sent

    def attach(self, source: PublisherTrack) -> None:
        codec = self.track.codec_for(source.codec)
        assert codec is not None
        sendto = self._sockets[1].sendto if self._sockets is not None else self.sendto
        self.track.attach(source, codec, sendto)
        on_compiled_path = getattr(self.track, "_fd", -1) >= 0
        assert on_compiled_path == (self._sockets is not None)

    def take(self) -> list[bytes]:
        sent, self._sent = self.sent, []
        return sent


def seq_of(data: bytes) -> int:
    return struct.unpack_from("!H", data, 2)[0]


def ts_of(data: bytes) -> int:
    return struct.unpack_from("!I", data, 4)[0]


def ssrc_of(data: bytes) -> int:
    return struct.unpack_from("!I", data, 8)[0]


def payload_of(data: bytes) -> bytes:
    start, end = rtp.payload_bounds(data)
    return data[start:end]


def frame(seq: int, ts: int, key: bool, size: int = 3, **kwargs) -> list[bytes]:
    """One video frame of `size` packets from seq on; marker on its last packet."""
    first = VP8_KEY_START if key else VP8_INTER_START
    return [
        packet(seq + i, ts, first if i == 0 else VP8_CONTINUATION, marker=i == size - 1, **kwargs)
        for i in range(size)
    ]


def forward_all(source: PublisherTrack, packets: list[bytes], now: float) -> None:
    for data in packets:
        source.forward(data, now)


def test_player_starts_on_a_keyframe() -> None:
    source = publisher()
    player = Player()
    player.attach(source)
    forward_all(source, frame(1000, 3000, key=False), 0.0)
    forward_all(source, frame(1003, 6000, key=False), 0.033)
    assert player.sent == []
    assert not player.track.started
    assert source.waiting_players()
    forward_all(source, frame(1006, 9000, key=True), 0.066)
    forward_all(source, frame(1009, 12000, key=False), 0.1)
    sent = player.take()
    assert len(sent) == 6
    assert payload_of(sent[0]) == VP8_KEY_START
    assert player.track.started
    assert not source.waiting_players()


def test_rewrites_ssrc_pt_seq_ts_and_strips_extensions() -> None:
    source = publisher()
    player = Player(payload_type=102)
    player.attach(source)
    published = frame(65533, 0xFFFFF000, key=True)  # seq and ts both wrap
    published += frame(65536, 0xFFFFF000 + 3000, key=False)
    published += frame(65539, 0xFFFFF000 + 6000, key=False)
    forward_all(source, published, 0.0)
    sent = player.take()
    assert len(sent) == len(published)
    first_seq, first_ts = seq_of(sent[0]), ts_of(sent[0])
    for index, (inp, out) in enumerate(zip(published, sent, strict=True)):
        assert ssrc_of(out) == player.track.ssrc
        assert out[1] & 0x7F == 102
        assert out[1] & 0x80 == inp[1] & 0x80  # marker kept
        assert seq_of(out) == (first_seq + index) & 0xFFFF
        assert (ts_of(out) - first_ts) & 0xFFFFFFFF == (ts_of(inp) - 0xFFFFF000) & 0xFFFFFFFF
        assert not out[0] & 0x10  # header extension removed
        assert rtp.header_length(out) == 12
        assert payload_of(out) == payload_of(inp)
        assert len(out) == len(inp) - 12
    assert [out[1] >> 7 for out in sent] == [0, 0, 1] * 3


def test_publisher_gap_is_kept_and_padding_passes() -> None:
    source = publisher()
    player = Player()
    player.attach(source)
    forward_all(source, frame(10, 0, key=True), 0.0)
    source.forward(packet(20, 3000, VP8_INTER_START, padding=4), 0.05)
    sent = player.take()
    assert seq_of(sent[3]) - seq_of(sent[2]) == 20 - 12
    assert payload_of(sent[3]) == VP8_INTER_START
    assert sent[3][0] & 0x20 and sent[3][-1] == 4


def test_second_player_has_independent_offsets() -> None:
    source = publisher()
    one, two = Player(), Player()
    one.attach(source)
    forward_all(source, frame(500, 90_000, key=True), 0.0)
    forward_all(source, frame(503, 93_000, key=False), 0.033)
    two.attach(source)
    forward_all(source, frame(506, 96_000, key=False), 0.066)
    assert len(two.sent) == 0
    forward_all(source, frame(509, 99_000, key=True), 0.1)
    a, b = one.take(), two.take()
    assert len(a) == 12 and len(b) == 3
    assert ssrc_of(a[0]) != ssrc_of(b[0])
    # the same publisher packets (509..511) under each player's own numbering
    assert [payload_of(p) for p in a[9:]] == [payload_of(p) for p in b]
    assert seq_of(a[9]) != seq_of(b[0])
    assert ts_of(a[9]) != ts_of(b[0])
    assert [seq_of(p) for p in b] == [(seq_of(b[0]) + i) & 0xFFFF for i in range(3)]
    assert [seq_of(p) for p in a] == [(seq_of(a[0]) + i) & 0xFFFF for i in range(12)]


def test_detach_and_attach_to_new_publisher_continues() -> None:
    first = publisher(ssrc=0xA1A1A1A1)
    player = Player()
    player.attach(first)
    forward_all(first, frame(100, 50_000, key=True), 1.0)
    forward_all(first, frame(103, 53_000, key=False), 1.033)
    before = player.take()
    player.track.detach()
    assert player.track not in first.subscribers
    forward_all(first, frame(106, 56_000, key=True), 1.066)
    assert player.sent == []
    second = publisher(ssrc=0xB2B2B2B2)
    player.attach(second)
    published = frame(40_000, 7, key=False, ssrc=0xB2B2B2B2)
    forward_all(second, published, 1.3)
    assert player.sent == []  # still waits for a keyframe of the new source
    published = frame(40_003, 7 + 3000, key=True, ssrc=0xB2B2B2B2)
    forward_all(second, published, 1.5)
    after = player.take()
    assert len(after) == 3
    assert ssrc_of(after[0]) == ssrc_of(before[0]) == player.track.ssrc
    assert seq_of(after[0]) == (seq_of(before[-1]) + 1) & 0xFFFF
    assert [seq_of(p) for p in after] == [(seq_of(after[0]) + i) & 0xFFFF for i in range(3)]
    jump = (ts_of(after[0]) - ts_of(before[-1])) & 0xFFFFFFFF
    assert 0 < jump < 0x80000000
    assert jump == pytest.approx((1.5 - 1.033) * 90000, rel=0.01)


def test_resume_after_reordered_last_packet_does_not_reuse_sequence_numbers() -> None:
    first = publisher(ssrc=0xA1A1A1A1)
    player = Player()
    player.attach(first)
    published = frame(100, 50_000, key=True, size=4)
    forward_all(first, [published[0], published[1], published[3], published[2]], 1.0)
    before = player.take()
    player.track.detach()
    second = publisher(ssrc=0xB2B2B2B2)
    player.attach(second)
    forward_all(second, frame(9000, 0, key=True, ssrc=0xB2B2B2B2), 1.2)
    after = player.take()
    highest = max(seq_of(p) for p in before)
    assert seq_of(after[0]) == (highest + 1) & 0xFFFF


def test_retransmit_plain() -> None:
    source = publisher()
    player = Player(rtx=False)
    player.attach(source)
    forward_all(source, frame(300, 1000, key=True) + frame(303, 4000, key=False), 0.0)
    sent = player.take()
    wanted = [seq_of(sent[2]), seq_of(sent[4])]
    player.track.retransmit(wanted, 1.0, MAX_RESENDS_PER_RTCP)
    resent = player.take()
    assert resent == [sent[2], sent[4]]  # byte for byte what the player first got
    assert player.track.retransmissions == 2
    assert player.track.nacks_received == 1
    assert player.track.retransmit_misses == 0


def test_retransmit_as_rtx() -> None:
    source = publisher()
    player = Player(rtx=True, payload_type=102)
    player.attach(source)
    published = frame(300, 1000, key=True)
    published.append(packet(303, 4000, VP8_INTER_START, padding=3, marker=True))
    forward_all(source, published, 0.0)
    sent = player.take()
    track = player.track
    assert track.rtx_ssrc is not None and track.rtx_ssrc != track.ssrc
    track.retransmit([seq_of(sent[2]), seq_of(sent[3])], 1.0, MAX_RESENDS_PER_RTCP)
    resent = player.take()
    assert len(resent) == 2
    for original, rtx_packet in zip([sent[2], sent[3]], resent, strict=True):
        assert ssrc_of(rtx_packet) == track.rtx_ssrc
        assert rtx_packet[1] & 0x7F == 103
        assert rtx_packet[1] & 0x80 == original[1] & 0x80
        assert ts_of(rtx_packet) == ts_of(original)
        assert not rtx_packet[0] & 0x20  # no padding
        body = payload_of(rtx_packet)
        assert body[:2] == seq_of(original).to_bytes(2, "big")  # OSN
        assert body[2:] == payload_of(original)
    assert seq_of(resent[1]) == (seq_of(resent[0]) + 1) & 0xFFFF
    assert track.retransmissions == 2


def test_nack_for_uncached_packet_is_a_miss() -> None:
    source = publisher()
    player = Player()
    player.attach(source)
    forward_all(source, frame(0, 0, key=True), 0.0)
    first = player.take()[0]
    for seq in range(3, CACHE_SIZE + 10):
        source.forward(packet(seq, 3000, VP8_CONTINUATION), 0.1)
    player.take()
    player.track.retransmit(
        [seq_of(first), (seq_of(first) - 5) & 0xFFFF], 1.0, MAX_RESENDS_PER_RTCP
    )
    assert player.sent == []
    assert player.track.retransmit_misses == 2
    assert player.track.retransmissions == 0


def test_nack_before_start_or_without_address_sends_nothing() -> None:
    source = publisher()
    player = Player()
    player.attach(source)
    forward_all(source, frame(0, 0, key=False), 0.0)
    player.track.retransmit([1, 2], 1.0, MAX_RESENDS_PER_RTCP)
    assert player.sent == []
    forward_all(source, frame(3, 0, key=True), 0.0)
    sent = player.take()
    assert len(sent) == 3
    player.session.addr = None
    player.track.retransmit([seq_of(p) for p in sent], 1.0, MAX_RESENDS_PER_RTCP)
    source.forward(packet(6, 3000, VP8_CONTINUATION), 0.1)
    assert player.sent == []


def test_nack_from_previous_source_is_not_answered_with_new_source_data() -> None:
    first = publisher(ssrc=0xA1A1A1A1)
    player = Player()
    player.attach(first)
    forward_all(first, frame(100, 0, key=True, size=10), 1.0)
    old = player.take()
    player.track.detach()
    second = publisher(ssrc=0xB2B2B2B2)
    player.attach(second)
    other = b"\x00" + b"\x55" * 20  # payload only the new source ever sent
    for seq in range(2000, 2020):
        second.forward(packet(seq, 0, other, ssrc=0xB2B2B2B2), 1.1)
    forward_all(second, frame(2020, 3000, key=True, ssrc=0xB2B2B2B2), 1.2)
    player.take()
    player.track.retransmit([seq_of(old[5])], 1.0, MAX_RESENDS_PER_RTCP)
    for resent in player.sent:
        assert payload_of(resent) == payload_of(old[5])


def test_sender_report_maps_publisher_clock() -> None:
    source = publisher()
    player = Player()
    player.attach(source)
    assert player.track.sender_report(0.0) is None  # not started
    forward_all(source, frame(7, 123_456, key=True), 10.0)
    assert player.track.sender_report(10.0) is None  # no SR from the publisher yet
    sent = player.take()
    ts_offset = (ts_of(sent[0]) - 123_456) & 0xFFFFFFFF
    ntp = 0xE5000000_40000000
    source.on_sender_report(ntp, 123_000, now=10.0)
    data = player.track.sender_report(10.5)
    assert data is not None
    (report,) = rtp.split_rtcp(data)
    assert report.packet_type == rtp.RTCP_SR
    assert report.ssrc == player.track.ssrc
    ntp_out, rtp_out = rtp.parse_sender_info(report)
    assert ntp_out == ntp + (1 << 31)  # half a second later
    assert rtp_out == (123_000 + 45_000 + ts_offset) & 0xFFFFFFFF
    packets, octets = struct.unpack_from("!II", report.body, 12)
    assert packets == 3 == player.track.packets
    assert octets == sum(len(p) for p in sent)


def test_report_block_gives_rtt() -> None:
    source = publisher()
    player = Player()
    player.attach(source)
    forward_all(source, frame(7, 0, key=True), 20.0)
    source.on_sender_report(0x12345678_9ABCDEF0, 0, now=20.0)
    data = player.track.sender_report(20.0)
    assert data is not None
    (report,) = rtp.split_rtcp(data)
    ntp, _ = rtp.parse_sender_info(report)
    lsr = (ntp >> 16) & 0xFFFFFFFF
    track = player.track
    stale = rtp.ReportBlock(track.ssrc, 64, 3, 0, 17, lsr ^ 1, 0)
    track.on_report_block(stale, now=20.3)
    assert track.rtt is None  # LSR of no SR of ours
    assert (track.fraction_lost, track.packets_lost, track.jitter) == (0.25, 3, 17)
    block = rtp.ReportBlock(track.ssrc, 0, 3, 0, 17, lsr, int(0.1 * 65536))
    track.on_report_block(block, now=20.25)
    assert track.rtt == pytest.approx(0.15, abs=1e-4)


def test_publisher_nacks_a_gap_and_counts_recovery() -> None:
    source = publisher()
    source.forward(packet(1, 0, VP8_KEY_START), 0.0)
    source.forward(packet(2, 0, VP8_CONTINUATION), 0.001)
    source.forward(packet(5, 0, VP8_CONTINUATION), 0.002)
    assert source.poll_requests() == []  # within the reorder wait
    source.forward(packet(6, 0, VP8_CONTINUATION), 0.002 + MissingPackets.REORDER_WAIT)
    assert source.poll_requests() == [NackNeeded(0xA1A1A1A1, [3, 4])]
    assert source.poll_requests() == []  # taken once
    source.forward(packet(3, 0, VP8_CONTINUATION), 0.05)
    assert source.missing is not None and source.missing.recovered == 1
    assert source.cached(3) is not None and source.cached(4) is None
    assert source.stats().packets_lost == 1


def test_keyframe_requests_are_rate_limited() -> None:
    source = publisher()
    for step in range(30):
        source.request_keyframe(step * 0.1)
    # At 0.0, 1.0 and 2.0 with a 1 s interval.
    assert source.poll_requests() == [KeyframeNeeded(0xA1A1A1A1)] * 3
    audio = publisher(kind=AUDIO, name="opus")
    audio.request_keyframe(10.0)
    assert audio.poll_requests() == []


def test_audio_starts_at_once_and_is_not_cached() -> None:
    source = publisher(kind=AUDIO, name="opus")
    player = Player()
    player.track.spec.codecs.append(Codec("opus", 111, 48000, channels=2))
    player.attach(source)
    source.forward(packet(9, 960, b"\xfc\xff\xfe", pt=111), 0.0)
    (sent,) = player.take()
    assert sent[1] & 0x7F == 111 and payload_of(sent) == b"\xfc\xff\xfe"
    assert source.cached(9) is None


def test_player_extensions_carry_its_own_ids_and_transport_sequence() -> None:
    """A player that agreed to mid/abs-send-time/transport-cc gets them with its IDs; the
    publisher's elements (IDs 3 and 5 here) never reach it; the transport-wide number counts
    per player session."""
    source = publisher()
    player = Player()
    player.session.transport_seq = 0xFFFE
    extensions = {9: rtp.MID_URI, 12: rtp.TRANSPORT_CC_URI, 1: rtp.ABS_SEND_TIME_URI}
    player.track = SubscriberTrack(
        player.session,  # type: ignore[arg-type]
        TrackSpec("v1", VIDEO, [Codec("VP8", 102, 90000)], extensions=extensions),
        RNG[0],
    )
    player.attach(source)
    plain = Player()
    plain.attach(source)
    for seq, data in enumerate(frame(100, 9000, key=True)):
        source.forward(data, now=10.0 + seq / 1000)
    sent = player.take()
    assert len(sent) == 3 and len(plain.take()) == 3
    transport_seqs = []
    for data in sent:
        elements = rtp.parse_extensions(data)
        assert set(elements) == {1, 9, 12}
        assert elements[9] == b"v1"
        assert len(elements[1]) == 3
        transport_seqs.append(int.from_bytes(elements[12], "big"))
        assert payload_of(data).startswith((VP8_KEY_START[:1], b"\x00"))
    assert transport_seqs == [0xFFFE, 0xFFFF, 0]
    assert player.session.transport_seq == 1


def simulcast_layer(rid: str = "f", ssrc: int = 0xA1A1A1A1) -> PublisherTrack:
    codec = Codec("VP8", 96, 90000, rtcp_fb=FEEDBACK)
    spec = TrackSpec("0", VIDEO, [codec], ssrc=ssrc, rids=(rid,))
    return PublisherTrack(spec, keyframe_interval=1.0, rid=rid)


def vp8_start(picture: int, tl0: int, key: bool = False) -> bytes:
    """A first packet of a VP8 frame with a 15-bit picture ID and a TL0PICIDX."""
    descriptor = bytes([0x90, 0xC0, 0x80 | picture >> 8, picture & 0xFF, tl0])
    return descriptor + (b"\x50\x02\x00\x9d\x01\x2a" if key else b"\x31\x05\x00")


def vp8_ids_of(data: bytes) -> tuple[int, int]:
    payload = payload_of(data)
    return (payload[2] & 0x7F) << 8 | payload[3], payload[4]


def test_players_of_one_simulcast_layer_each_get_their_own_vp8_ids() -> None:
    """Players sharing a layer (and an extension layout, so one buffer) but not their VP8
    offsets: each gets the publisher's ids plus its own offsets, whatever came before it."""
    source = simulcast_layer()
    one, plain, two = Player(), Player(), Player()
    for player in (one, plain, two):
        player.attach(source)
    source.forward(packet(10, 0, vp8_start(0x0123, 5, key=True), marker=True), 0.0)
    offsets = {one: (10, 3), plain: (0, 0), two: (0x7F00, 250)}
    for player, (picture_offset, tl0_offset) in offsets.items():
        player.take()
        player.track.picture_offset = picture_offset
        player.track.tl0_offset = tl0_offset
    for index in range(1, 4):
        data = vp8_start(0x0123 + index, 5 + index)
        source.forward(packet(10 + index, 3000 * index, data, marker=True), index / 30)
    for player, (picture_offset, tl0_offset) in offsets.items():
        expected = [
            ((0x0123 + i + picture_offset) & 0x7FFF, (5 + i + tl0_offset) & 0xFF)
            for i in range(1, 4)
        ]
        assert [vp8_ids_of(data) for data in player.take()] == expected
