"""sfu.protocol._fanout: SRTP byte-identical to pylibsrtp, and the sendmmsg fan-out on real sockets.

Every protected packet is compared with what pylibsrtp (libsrtp) makes of the same packet
with the same master key, for both profiles the server negotiates; fan-out datagrams are
received on 127.0.0.1 (and on an AF_UNIX socket, where a peer that never reads fills up).
"""

from __future__ import annotations

import os
import random
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pylibsrtp
import pytest
from pylibsrtp import Policy, Session

from sfu.routing import rewrite as tracks
from sfu.wire import rtp

if os.environ.get("SFU_NO_EXTENSION"):
    pytest.skip("SFU_NO_EXTENSION forces the Python path", allow_module_level=True)
from sfu.protocol import _fanout  # the build must have made it

CM, GCM = Policy.SRTP_PROFILE_AES128_CM_SHA1_80, Policy.SRTP_PROFILE_AEAD_AES_128_GCM
MASTER_LENGTH = {CM: 30, GCM: 28}
PROFILES = pytest.mark.parametrize("profile", [CM, GCM], ids=["AES-CM-SHA1-80", "AES-GCM"])
# Every AES engine this CPU runs (always "openssl", the EVP one), each checked on its own.
ENGINES = pytest.mark.parametrize("engine", _fanout.AES_ENGINES)
MAX_ROUNDS = 50


def master(profile: int) -> bytes:
    return os.urandom(MASTER_LENGTH[profile])


def libsrtp(profile: int, key: bytes, inbound: bool = False) -> Session:
    """pylibsrtp as sfu.protocol.srtp sets it up: any SSRC, repeats allowed when sending."""
    kind = Policy.SSRC_ANY_INBOUND if inbound else Policy.SSRC_ANY_OUTBOUND
    policy = Policy(key=key, ssrc_type=kind, srtp_profile=profile)
    if inbound:
        policy.window_size = 1024
    else:
        policy.allow_repeat_tx = True
    return Session(policy)


def rtp_packet(
    seq: int,
    ssrc: int = 0x11223344,
    *,
    size: int = 200,
    csrcs: int = 0,
    extension: bool = False,
    padding: int = 0,
) -> bytes:
    first = 0x80 | csrcs | (0x10 if extension else 0) | (0x20 if padding else 0)
    out = struct.pack("!BBHII", first, 96, seq & 0xFFFF, (seq * 3000) & 0xFFFFFFFF, ssrc)
    out += b"".join(struct.pack("!I", 0xC0000000 + i) for i in range(csrcs))
    if extension:
        out += b"\xbe\xde\x00\x02" + b"\x32\x01\x02\x03" + b"\x51\x00\x07\x00"
    out += os.urandom(size)
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return out


@ENGINES
@PROFILES
def test_protect_matches_libsrtp_across_rollover_repeats_and_ssrcs(
    profile: int, engine: str
) -> None:
    key = master(profile)
    ours, theirs = _fanout.SrtpSender(profile, key, engine), libsrtp(profile, key)
    shapes = [
        {},
        {"extension": True},
        {"padding": 4},
        {"csrcs": 2, "extension": True, "padding": 1},
        {"size": 1100},
        {"size": 0},
    ]
    ssrcs = [0x11223344, 0xDEADBEEF, 1]
    # A player following one stream from before the wrap authenticates it only with ROC 1.
    receiver = libsrtp(profile, key, inbound=True)
    checked = 0
    for step in range(400):  # 65300 .. 65535, then 0 .. 163 with ROC 1
        seq = (65300 + step) & 0xFFFF
        for n, ssrc in enumerate(ssrcs):
            packet = rtp_packet(seq, ssrc, **shapes[(step + n) % len(shapes)])
            protected = ours.protect(packet)
            assert protected == theirs.protect(packet)
            if ssrc == ssrcs[1]:
                assert receiver.unprotect(protected) == packet
            checked += 1
        if step % 7 == 3:  # a NACK answer: an earlier sequence number sent again
            again = rtp_packet((seq - step % 50) & 0xFFFF, ssrcs[0], extension=True)
            assert ours.protect(again) == theirs.protect(again)
            checked += 1
    assert checked > 1200


@ENGINES
@PROFILES
def test_protect_matches_libsrtp_on_reordering_and_old_packets(profile: int, engine: str) -> None:
    """A random walk of sequence numbers, forward and back: the same bytes, and the same
    refusals for packets too far behind the newest."""
    key = master(profile)
    ours, theirs = _fanout.SrtpSender(profile, key, engine), libsrtp(profile, key)
    rng = random.Random(7)
    seq = rng.randrange(0x10000)
    refused = 0
    for _ in range(3000):
        seq = (seq + rng.choice([1, 1, 1, 2, 30, -1, -5, -127, -128, -200, 3000])) & 0xFFFF
        packet = rtp_packet(seq, size=40)
        try:
            expected = theirs.protect(packet)
        except pylibsrtp.Error:
            with pytest.raises(pylibsrtp.Error):
                ours.protect(packet)
            refused += 1
            continue
        assert ours.protect(packet) == expected
    assert refused > 0


@ENGINES
@PROFILES
def test_protect_matches_libsrtp_for_every_payload_length(profile: int, engine: str) -> None:
    """Each length from empty to the largest packet: every partial last block and every path
    through an engine's wide and narrow loops."""
    key = master(profile)
    ours, theirs = _fanout.SrtpSender(profile, key, engine), libsrtp(profile, key)
    assert ours.engine == engine
    for size in range(1300):  # pylibsrtp takes at most 1356 bytes with AES-CM's trailer room
        packet = rtp_packet(size, size=size, extension=size % 2 == 1)
        assert ours.protect(packet) == theirs.protect(packet), size


def test_engines_are_named_and_checked() -> None:
    assert _fanout.AES_ENGINES[-1] == "openssl"
    assert _fanout.SrtpSender(GCM, master(GCM)).engine == _fanout.AES_ENGINES[0]
    with pytest.raises(ValueError, match="AES engine sse9 is not available"):
        _fanout.SrtpSender(GCM, master(GCM), "sse9")
    with pytest.raises(TypeError):
        _fanout.SrtpSender(GCM, master(GCM), 7)


def test_keys_and_packets_it_refuses() -> None:
    with pytest.raises(ValueError, match="30 bytes"):
        _fanout.SrtpSender(CM, bytes(28))
    with pytest.raises(ValueError, match="unsupported SRTP profile"):
        _fanout.SrtpSender(2, bytes(30))
    sender = _fanout.SrtpSender(GCM, master(GCM))
    good = rtp_packet(1, csrcs=1, extension=True)
    bad = {
        "short": good[:11],
        "CSRCs past the end": bytes([0x8F]) + good[1:20],
        "extension past the end": bytes([0x90]) + good[1:12] + b"\xbe\xde\x00\x09" + bytes(8),
        "too long": rtp_packet(1, size=_fanout.MAX_PLAINTEXT),
    }
    for reason, packet in bad.items():
        with pytest.raises(_fanout.SrtpError):  # a pylibsrtp.Error, like the Python path's
            sender.protect(packet)
        assert reason
    assert issubclass(_fanout.SrtpError, pylibsrtp.Error)
    for ssrc in range(16):
        sender.protect(rtp_packet(1, ssrc + 1))
    with pytest.raises(_fanout.SrtpError, match="too many SSRCs"):
        sender.protect(rtp_packet(1, 99))


def test_extension_layout_is_checked_when_set() -> None:
    player = _fanout.PlayerState()
    player.extension_layout = (1, "video0", 2, 3)
    assert player.extension_layout == (1, "video0", 2, 3)
    for bad, error in [
        ((15, "a", 0, 0), ValueError),
        ((1, "x" * 17, 0, 0), ValueError),
        ((1, "", 0, 0), ValueError),
        ((1, "a", 2), TypeError),
        ([1, "a", 2, 3], TypeError),
    ]:
        with pytest.raises(error):
            player.extension_layout = bad
    assert player.extension_layout == (1, "video0", 2, 3)
    with pytest.raises(TypeError):
        player._sender = object()


@pytest.fixture
def sender_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


@pytest.fixture
def receivers() -> Iterator[list[socket.socket]]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
    yield socks
    for sock in socks:
        sock.close()


class Peer(_fanout.TransportState):
    """A session as PeerSession is one: addr and transport_seq in the C base."""

    __slots__ = ("id",)


def namespace_peer() -> SimpleNamespace:
    """Any other sfu.session.peer.Transport: the fan-out reads and sets them by name."""
    return SimpleNamespace()


# Both kinds of session a player may have, for the tests that read or advance their fields.
SESSIONS = pytest.mark.parametrize("session_type", [Peer, namespace_peer], ids=["C", "any"])


def player(
    profile: int,
    key: bytes,
    fd: int,
    addr: object,
    layout: tracks.ExtensionLayout | None = None,
    session_type: type | Callable[[], object] = namespace_peer,
) -> _fanout.PlayerState:
    state = _fanout.PlayerState()
    state.session = session_type()
    state.session.addr, state.session.transport_seq = addr, 0xFFFE
    state._sender = _fanout.SrtpSender(profile, key)
    state._fd = fd
    state.extension_layout = layout
    state.started = True
    return state


def expected_plaintext(packet: bytes, state: _fanout.PlayerState, now: float, twcc: int) -> bytes:
    """What the Python loop in PublisherTrack.forward makes of `packet` for this player: the
    publisher's extensions never reach a player."""
    packet = rtp.strip_extensions(packet)
    if state.extension_layout is None:
        out = bytearray(packet)
    else:
        out, transport_at = tracks.extend_for_player(packet, state.extension_layout, now)
        if transport_at:
            out[transport_at : transport_at + 2] = twcc.to_bytes(2, "big")
    seq, ts = struct.unpack_from("!HI", packet, 2)
    struct.pack_into(
        "!BHII",
        out,
        1,
        (packet[1] & 0x80) | state.payload_type,
        (seq + state.seq_offset) & 0xFFFF,
        (ts + state.ts_offset) & 0xFFFFFFFF,
        state.ssrc,
    )
    return bytes(out)


@SESSIONS
@PROFILES
def test_fanout_sends_each_player_its_own_bytes(
    profile: int,
    session_type: type,
    sender_socket: socket.socket,
    receivers: list[socket.socket],
) -> None:
    key = master(profile)
    layouts = [None, (1, "0", 2, 3), (4, "video-main", 0, 0)]
    players = []
    for n, (sock, layout) in enumerate(zip(receivers, layouts, strict=True)):
        addr = sock.getsockname()
        state = player(profile, key, sender_socket.fileno(), addr, layout, session_type)
        state.ssrc, state.payload_type = 0xA0000000 + n, 100 + n
        state.seq_offset, state.ts_offset = 40000 * n, 0xFFFF0000 * n & 0xFFFFFFFF
        players.append(state)
    references = [libsrtp(profile, key) for _ in players]
    now = 1234.5678
    for seq in range(65530, 65540):  # the players' sequence numbers wrap at different points
        packet = rtp_packet(seq, size=900, padding=3 if seq % 2 else 0, extension=seq % 3 != 1)
        packet = bytes([packet[0] | (0x80 if seq % 3 == 0 else 0)]) + packet[1:]
        twcc = players[1].session.transport_seq
        assert _fanout.fanout(packet, players, now) == (3, 0, 0)
        for sock, state, reference in zip(receivers, players, references, strict=True):
            datagram = sock.recv(2048)
            plain = expected_plaintext(packet, state, now, twcc)
            assert datagram == reference.protect(plain)
    assert players[1].session.transport_seq == (0xFFFE + 10) & 0xFFFF
    assert players[0].session.transport_seq == 0xFFFE  # no transport-cc: left alone
    receiver = libsrtp(profile, key, inbound=True)
    plain = receiver.unprotect(datagram)
    assert rtp.parse_extensions(plain) == {4: b"video-main"}
    assert [p.packets for p in players] == [10, 10, 10]
    assert players[0].bytes == sum(912 + 3 * (s % 2) for s in range(65530, 65540))


@SESSIONS
def test_fanout_leaves_what_it_cannot_send(
    session_type: type, sender_socket: socket.socket, receivers: list[socket.socket]
) -> None:
    key = master(GCM)
    fd = sender_socket.fileno()
    waiting = player(GCM, key, fd, receivers[0].getsockname(), None, session_type)
    waiting.started = False
    no_socket = player(GCM, key, -1, receivers[1].getsockname(), None, session_type)
    no_address = player(GCM, key, fd, None, (0, "", 0, 3), session_type)
    bad_address = player(GCM, key, fd, ("not-an-address", 9), None, session_type)
    good = player(GCM, key, fd, receivers[2].getsockname(), None, session_type)
    players = [waiting, no_socket, no_address, bad_address, good]
    assert _fanout.fanout(rtp_packet(5), players, 0.0) == (1, 1, 2)
    assert receivers[2].recv(2048)
    assert no_address.session.transport_seq == 0xFFFF  # advanced as on the Python path
    assert (no_address.packets, bad_address.packets, good.packets) == (0, 1, 1)
    assert _fanout.fanout(b"\x80\x60", [good], 0.0) == (0, 1, 0)  # not RTP: dropped, not sent
    with pytest.raises(TypeError):
        _fanout.fanout(rtp_packet(6), [object()], 0.0)


def test_full_socket_buffer_drops_and_counts_only_what_was_not_sent(tmp_path: Path) -> None:
    """A datagram peer that never reads: the kernel takes what fits, the rest is dropped and
    counted, and what was counted as sent is exactly what arrives."""
    path = str(tmp_path / "player.sock")
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        peer.bind(path)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sender.setblocking(False)
        key = master(GCM)
        players = [player(GCM, key, sender.fileno(), path) for _ in range(50)]
        total_sent = total_dropped = 0
        for seq in range(MAX_ROUNDS):
            sent, dropped, left = _fanout.fanout(rtp_packet(seq, size=1000), players, 0.0)
            assert (sent + dropped, left) == (len(players), 0)
            total_sent += sent
            total_dropped += dropped
            if dropped:
                break
        assert total_dropped > 0
        peer.setblocking(False)
        arrived = 0
        for _ in range(total_sent + 1):
            try:
                peer.recv(2048)
            except BlockingIOError:
                break
            arrived += 1
        assert arrived == total_sent
    finally:
        peer.close()
        sender.close()


def test_vp8_fields_refuse_values_out_of_range() -> None:
    """max_temporal and vp8_after hold what the C code can use, or refuse with a reason."""
    state = _fanout.PlayerState()
    assert (state.max_temporal, state.vp8_after, state.temporal_drops) == (None, None, 0)
    state.max_temporal = 2
    state.vp8_after = (None, 255)
    assert (state.max_temporal, state.vp8_after) == (2, (None, 255))
    for value in (4, -1, "1", 2**70):
        with pytest.raises(ValueError, match="max_temporal must be None or 0-3"):
            state.max_temporal = value
    for after, error in [
        ((0x8000, 0), ValueError),
        ((0, 256), ValueError),
        ((0, -1), ValueError),
        ((1,), TypeError),
        ([1, 2], TypeError),
    ]:
        with pytest.raises(error):
            state.vp8_after = after
    assert (state.max_temporal, state.vp8_after) == (2, (None, 255))  # unchanged by refusals
    state.vp8_after = None
    assert state.vp8_after is None
    with pytest.raises(TypeError, match="payload_rule"):
        _fanout.fanout(rtp_packet(1), [], 0.0, True, None)
    with pytest.raises(ValueError, match="payload_rule must be 0, 1 or 2"):
        _fanout.fanout(rtp_packet(1), [], 0.0, 3)
