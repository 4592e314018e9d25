"""Property tests over hostile input: every parser fails only with its own error, never crashes.

Random bytes find the shallow bugs; mutations of real packets and offers (bit flips, truncation,
junk appended, lines dropped or repeated) get past the first checks and find the deep ones.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.io.udp import UdpEndpoint
from sfu.media import PeerParams
from sfu.protocol import ice
from sfu.protocol.certificate import Certificate
from sfu.protocol.datachannel import (
    MAX_LABEL_BYTES,
    ChannelOptions,
    DcepError,
    encode_open,
    parse_open,
)
from sfu.protocol.dtls import DtlsEndpoint, DtlsState
from sfu.protocol.sctp import RECEIVE_BUFFER, Association, AssociationState
from sfu.protocol.sctp_reconfig import parse_reset_request
from sfu.session.peer import PeerSession
from sfu.session.table import SessionTable
from sfu.wire import rtp, sctp
from signaling.sdp.answer import render_answer
from signaling.sdp.negotiate import NegotiationError, negotiate_play, negotiate_publish
from signaling.sdp.parse import SdpError, parse_offer
from tests.unit.dtls_pair import connect, make_pair

OFFERS = Path(__file__).parent / "offers"
CERT = Certificate.generate()
PEER_CERT = Certificate.generate()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- mutations -----------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with at least one real change: bytes flipped, cut short or extended."""
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 4))):
        if data:
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        del data[draw(st.integers(0, len(data))) :]
    data += draw(st.binary(max_size=8))
    if bytes(data) == original:
        data += b"\x00"
    return bytes(data)


# -- RTP and RTCP --------------------------------------------------------------------------------


@st.composite
def rtp_packets(draw: st.DrawFn) -> bytes:
    """RTP-shaped packets: right version, any CSRC count, extension and padding bits."""
    csrc_count = draw(st.integers(0, 15))
    extension = draw(st.booleans())
    padding = draw(st.booleans())
    first = 0x80 | padding << 5 | extension << 4 | csrc_count
    header = bytes([first, draw(st.integers(0, 255))]) + draw(st.binary(min_size=10, max_size=10))
    header += draw(st.binary(min_size=4 * csrc_count, max_size=4 * csrc_count))
    if extension:
        profile = draw(st.sampled_from([0xBEDE, 0x1000, 0x100F, draw(st.integers(0, 0xFFFF))]))
        words = draw(st.integers(0, 6))
        header += struct.pack("!HH", profile, draw(st.sampled_from([words, words + 1, 0xFFFF])))
        header += draw(st.binary(min_size=4 * words, max_size=4 * words))
    packet = header + draw(st.binary(max_size=40))
    if padding:
        packet += bytes([draw(st.integers(0, 255))])
    return packet[: draw(st.integers(0, len(packet)))] if draw(st.booleans()) else packet


def rtp_calls(packet: bytes) -> Iterator[Callable[[], object]]:
    yield lambda: rtp.header_length(packet)
    yield lambda: rtp.payload_bounds(packet)
    yield lambda: rtp.strip_extensions(packet)
    yield lambda: rtp.parse_extensions(packet)


@FUZZ
@given(st.one_of(st.binary(max_size=120), rtp_packets()))
def test_rtp_parsers_raise_only_rtp_error(packet: bytes) -> None:
    for call in rtp_calls(packet):
        with contextlib.suppress(rtp.RtpError):
            call()


@FUZZ
@given(rtp_packets())
def test_strip_extensions_keeps_the_payload(packet: bytes) -> None:
    try:
        start, _ = rtp.payload_bounds(packet)
    except rtp.RtpError:
        return
    stripped = rtp.strip_extensions(packet)
    assert not stripped[0] & 0x10
    assert rtp.header_length(stripped) == 12 + 4 * (packet[0] & 0x0F)
    assert stripped[rtp.header_length(stripped) :] == packet[start:]
    assert stripped[1:12] == packet[1:12]


@st.composite
def rtcp_datagrams(draw: st.DrawFn) -> bytes:
    """Compound RTCP: packets of common types whose length words may lie."""
    datagram = b""
    for _ in range(draw(st.integers(1, 4))):
        packet_type = draw(st.sampled_from([200, 201, 202, 203, 205, 206, 192, 223]))
        fmt = draw(st.sampled_from([1, 4, 15, draw(st.integers(0, 31))]))
        words = draw(st.integers(1, 8))
        body = draw(st.binary(min_size=4 * words, max_size=4 * words))
        length = draw(st.sampled_from([words, words - 1, words + 1]))
        datagram += struct.pack("!BBH", 0x80 | fmt, packet_type, length) + body
    return datagram[: draw(st.integers(0, len(datagram)))] if draw(st.booleans()) else datagram


FEEDBACK_HELPERS = (
    rtp.feedback_media_ssrc,
    rtp.fir_targets,
    rtp.nack_sequence_numbers,
    rtp.parse_sender_info,
)


@FUZZ
@given(st.one_of(st.binary(max_size=120), rtcp_datagrams()))
def test_rtcp_parsers_raise_only_rtp_error(datagram: bytes) -> None:
    try:
        packets = rtp.split_rtcp(datagram)
    except rtp.RtpError:
        return
    assert sum(8 + len(p.body) for p in packets) == len(datagram)
    for packet in packets:
        for helper in FEEDBACK_HELPERS:
            with contextlib.suppress(rtp.RtpError):
                helper(packet)


@FUZZ
@given(st.integers(0, 255), st.integers(0, 31), st.binary(max_size=64))
def test_feedback_helpers_on_any_body(packet_type: int, fmt: int, body: bytes) -> None:
    packet = rtp.RtcpPacket(packet_type, fmt, 1, body)
    for helper in FEEDBACK_HELPERS:
        with contextlib.suppress(rtp.RtpError):
            helper(packet)


# -- DTLS ----------------------------------------------------------------------------------------


def dtls_pair() -> tuple[DtlsEndpoint, DtlsEndpoint]:
    return make_pair(CERT, PEER_CERT)


CLIENT_HELLO = dtls_pair()[1].start(0.0)[0]
DTLS_DATAGRAMS = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda tail: b"\x16\xfe\xfd" + tail),
    mutated(CLIENT_HELLO),
)


def assert_datagrams(out: object) -> None:
    assert isinstance(out, list) and all(isinstance(d, bytes) for d in out)


@settings(FUZZ, max_examples=150)
@given(st.lists(DTLS_DATAGRAMS, min_size=1, max_size=4))
def test_dtls_server_survives_hostile_datagrams(datagrams: list[bytes]) -> None:
    server, _ = dtls_pair()
    for now, datagram in enumerate(datagrams):
        assert_datagrams(server.receive(datagram, float(now)))
        assert_datagrams(server.handle_timer(float(now) + 0.5))
    assert server.state is not DtlsState.CONNECTED


@settings(FUZZ, max_examples=40)
@given(st.lists(DTLS_DATAGRAMS, max_size=5))
def test_connected_dtls_survives_hostile_datagrams(datagrams: list[bytes]) -> None:
    server, client = dtls_pair()
    connect(server, client)
    for datagram in datagrams:
        assert_datagrams(server.receive(datagram, 1.0))
    assert server.state in (DtlsState.CONNECTED, DtlsState.CLOSED, DtlsState.FAILED)
    assert server.keys is not None


# -- SDP -----------------------------------------------------------------------------------------


def offer_lines(name: str) -> list[str]:
    return (OFFERS / name).read_text().splitlines()


REAL_OFFERS = [offer_lines(p.name) for p in sorted(OFFERS.glob("*.sdp"))]


@st.composite
def mutated_offers(draw: st.DrawFn) -> str:
    """A real offer with lines dropped, repeated, swapped or cut, and sendonly made recvonly."""
    lines = list(draw(st.sampled_from(REAL_OFFERS)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "repeat", "swap", "cut", "junk", "flip"]))
        if action == "drop" and len(lines) > 1:
            del lines[pos]
        elif action == "repeat":
            lines.insert(pos, lines[pos])
        elif action == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[pos], lines[other] = lines[other], lines[pos]
        elif action == "cut":
            lines[pos] = lines[pos][: draw(st.integers(0, len(lines[pos])))]
        elif action == "junk":
            lines.insert(pos, draw(st.text(max_size=30)))
        else:
            lines = [line.replace("sendonly", "recvonly") for line in lines]
    return "\r\n".join(lines) + "\r\n"


@FUZZ
@given(mutated_offers())
def test_mutated_real_offers_fail_only_cleanly(text: str) -> None:
    try:
        offer = parse_offer(text)
    except SdpError as error:
        assert str(error) and "\n" not in str(error)
        return
    for negotiate, direction in ((negotiate_publish, "recvonly"), (negotiate_play, "sendonly")):
        try:
            peer = negotiate(offer)
        except NegotiationError as error:
            assert str(error) and "\n" not in str(error)
            continue
        answer = render_answer(
            offer,
            peer,
            direction=direction,
            ice_ufrag="abcd",
            ice_pwd="a" * 22,
            fingerprint=CERT.fingerprint,
            candidates=[("127.0.0.1", 8000)],
        )
        assert answer.startswith("v=0\r\n")
        assert len(parse_offer(answer).media) == len(offer.media)


# -- the UDP endpoint ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sink() -> Iterator[socket.socket]:
    """Where the endpoint's error responses go: a socket of ours on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


@pytest.fixture(scope="module")
def endpoint_socket() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock


def new_endpoint(sock: socket.socket) -> UdpEndpoint:
    endpoint = UdpEndpoint(SessionTable())
    endpoint.sock = sock
    return endpoint


def counted_drops(endpoint: UdpEndpoint) -> int:
    """Drops of received datagrams (send failures are counted separately)."""
    return sum(n for reason, n in endpoint.drops.items() if not reason.startswith("send_"))


ANY_DATAGRAM = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda tail: b"\x00\x01" + tail),
    rtp_packets(),
    rtcp_datagrams(),
    DTLS_DATAGRAMS,
)


@FUZZ
@given(st.lists(ANY_DATAGRAM, min_size=1, max_size=8))
def test_unauthenticated_datagrams_are_dropped_and_counted(
    sink: socket.socket, endpoint_socket: socket.socket, datagrams: list[bytes]
) -> None:
    endpoint = new_endpoint(endpoint_socket)
    addr = sink.getsockname()
    for datagram in datagrams:
        endpoint.datagram_received(datagram, addr, 0.0)
    assert endpoint.datagrams_in == len(datagrams)
    assert counted_drops(endpoint) == len(datagrams)
    assert not endpoint.sessions.by_addr and not endpoint.sessions.by_id


def session_and_request() -> tuple[PeerSession, bytes]:
    """A session waiting for ICE, and a valid nominating Binding Request for it."""
    peer = PeerParams("cliu", "c" * 22, [("sha-256", PEER_CERT.fingerprint)], [])
    session = PeerSession("play", "live/x", peer, CERT, lambda data, addr: None, 0.0)
    request = ice.binding_request(
        b"0123456789ab",
        f"{session.ice.local_ufrag}:cliu",
        session.ice.local_pwd,
        controlling=True,
        tie_breaker=7,
        priority=1,
        use_candidate=True,
    )
    return session, request


def test_valid_binding_request_binds(sink: socket.socket, endpoint_socket: socket.socket) -> None:
    """The control for the test below: an intact request does bind the address."""
    endpoint = new_endpoint(endpoint_socket)
    session, request = session_and_request()
    endpoint.sessions.add(session)
    endpoint.datagram_received(request, sink.getsockname(), 0.0)
    assert endpoint.sessions.by_addr == {sink.getsockname(): session}


@FUZZ
@given(st.data())
def test_mutated_binding_requests_never_bind(
    sink: socket.socket, endpoint_socket: socket.socket, data: st.DataObject
) -> None:
    endpoint = new_endpoint(endpoint_socket)
    session, request = session_and_request()
    endpoint.sessions.add(session)
    for _ in range(data.draw(st.integers(1, 4))):
        endpoint.datagram_received(data.draw(mutated(request)), sink.getsockname(), 0.0)
    assert not endpoint.sessions.by_addr
    assert session.addr is None
    assert list(endpoint.sessions.by_id.values()) == [session]


# -- SCTP and DCEP (data channels) ---------------------------------------------------------------


def sctp_chunk_calls(packet: bytes) -> Iterator[Callable[[], object]]:
    """Every typed reader over every chunk of a packet that parses."""
    parsed = sctp.parse_packet(packet)
    for _, flags, body in parsed.chunks:
        yield lambda body=body, flags=flags: sctp.parse_data(flags, body)
        yield lambda body=body: sctp.parse_init(body)
        yield lambda body=body: sctp.parse_sack(body)
        yield lambda body=body: sctp.parse_forward_tsn(body)
        yield lambda body=body: parse_reset_request(body)


def sctp_samples() -> list[bytes]:
    """Real packets of each chunk type the association reads, for mutation."""
    chunks = [
        sctp.data_chunk(3, 10, 1, 0, 51, b"hello"),
        sctp.sack_chunk(9, 65536, [(2, 4), (6, 6)], [3]),
        sctp.forward_tsn_chunk(12, [(1, 3)]),
        sctp.init_chunk(sctp.INIT, sctp.Init(5, 1000, 3, 3, 100, {0xC000: b""})),
        sctp.chunk(sctp.HEARTBEAT, 0, struct.pack("!HHd", 1, 12, 1.0)),
        sctp.chunk(sctp.RECONFIG, 0, sctp.param(13, struct.pack("!IIIHH", 1, 0, 9, 1, 3))),
    ]
    return [sctp.encode_packet(5000, 5000, 1, [c]) for c in chunks]


def with_crc(packet: bytes) -> bytes:
    """`packet` with its checksum made right again, so mutations reach the chunk readers."""
    if len(packet) < 12:
        return packet
    header = struct.unpack_from("!HHI", packet)
    return sctp.encode_packet(*header, [packet[12:]])


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.sampled_from(sctp_samples()).flatmap(mutated)))
def test_sctp_readers_raise_only_sctp_error(data: bytes) -> None:
    for packet in (data, with_crc(data)):
        try:
            calls = list(sctp_chunk_calls(packet))
        except sctp.SctpError:
            continue
        for call in calls:
            with contextlib.suppress(sctp.SctpError):
                call()


def established_association() -> Association:
    """A server association that has accepted a client's cookie."""
    server, client = Association(random.Random(2)), Association(random.Random(1))
    (ack,) = server.receive(client.connect(0.0)[0], 0.0)
    (echo,) = client.receive(ack, 0.0)
    server.receive(echo, 0.0)
    assert server.state is AssociationState.ESTABLISHED
    return server


@FUZZ
@given(st.data())
def test_an_association_takes_any_packet_within_its_bounds(data: st.DataObject) -> None:
    server = established_association()
    for _ in range(data.draw(st.integers(1, 6))):
        sample = data.draw(st.sampled_from(sctp_samples()))
        packet = bytearray(data.draw(mutated(sample)))
        if len(packet) >= 8 and data.draw(st.booleans()):
            packet[4:8] = server.local_tag.to_bytes(4, "big")  # past the tag check
        server.receive(with_crc(bytes(packet)), 0.0)  # never raises
        if server.inbound is not None:
            assert 0 <= server.inbound.buffered <= RECEIVE_BUFFER
        assert server.buffered == 0


@FUZZ
@given(
    st.one_of(st.binary(max_size=64), st.just(encode_open(ChannelOptions("chat"))).flatmap(mutated))
)
def test_dcep_open_raises_only_dcep_error(data: bytes) -> None:
    with contextlib.suppress(DcepError):
        options = parse_open(data)
        assert len(options.label.encode()) <= MAX_LABEL_BYTES
