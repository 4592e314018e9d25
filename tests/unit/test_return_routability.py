"""Return routability, STUN answers and session lifetimes, sans-IO through the UDP endpoint.

A real PeerSession (real ICE-lite and DTLS) sits in a SessionTable behind a UdpEndpoint;
datagrams go in through datagram_received with a fake clock, and everything the server would
send is collected in a list. The client side is the project's own DTLS endpoint and STUN codec.
"""

from __future__ import annotations

import logging
import re

import pytest

from sfu.config import MediaConfig
from sfu.io.udp import UdpEndpoint
from sfu.media import PeerParams
from sfu.protocol import ice
from sfu.protocol.certificate import Certificate
from sfu.protocol.dtls import DtlsEndpoint, DtlsState
from sfu.routing.router import Router
from sfu.session.peer import SESSION_ID_HEX, PeerSession
from sfu.session.table import SessionTable
from sfu.session.transport import SessionState, short_hash
from sfu.wire import stun

CLIENT_UFRAG = "cliU"
CLIENT_PWD = "clientPasswordOf24Chars/"
FIRST = ("127.0.0.1", 50000)
SPOOFED = ("127.0.0.2", 50001)  # a victim that never answers
REBOUND = ("127.0.0.1", 50002)  # the same client after a NAT rebinding
SERVER_CERT = Certificate.generate()
CLIENT_CERT = Certificate.generate()

Sent = list[tuple[bytes, tuple[str, int]]]


def is_stun(data: bytes) -> bool:
    return data[0] < 4


class Server:
    """A router, its session table and endpoint, with sends captured instead of a socket."""

    def __init__(self, config: MediaConfig | None = None) -> None:
        self.sent: Sent = []
        self.config = config or MediaConfig()
        self.table = SessionTable()
        self.endpoint = UdpEndpoint(self.table)
        self.endpoint.send = self._send  # type: ignore[method-assign]
        self.router = Router(self.config, SERVER_CERT, self._send, self.table)

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((bytes(data), addr))

    def take(self, addr: tuple[str, int] | None = None) -> list[bytes]:
        """What went to addr (or anywhere) since the last take."""
        out = [data for data, to in self.sent if addr is None or to == addr]
        self.sent.clear()
        return out

    def receive(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        self.endpoint.datagram_received(data, addr, now)

    def new_session(self, now: float = 0.0) -> PeerSession:
        peer = PeerParams(CLIENT_UFRAG, CLIENT_PWD, [("sha-256", CLIENT_CERT.fingerprint)], [])
        return self.router.play("live/s", peer, now)


def check(
    session: PeerSession,
    *,
    use_candidate: bool = True,
    pwd: str | None = None,
    username: str | None = None,
    tid: bytes = b"\x07" * 12,
) -> bytes:
    """The client's connectivity check to the server."""
    return ice.binding_request(
        tid,
        username or f"{session.ice.local_ufrag}:{CLIENT_UFRAG}",
        pwd or session.ice.local_pwd,
        controlling=True,
        tie_breaker=1,
        priority=1,
        use_candidate=use_candidate,
    )


def our_check(datagrams: list[bytes]) -> bytes:
    """The one Binding Request the server sent among datagrams."""
    (request,) = [d for d in datagrams if stun.parse(d).msg_type == stun.BINDING_REQUEST]
    return request


def answer(request: bytes, addr: tuple[str, int], pwd: str = CLIENT_PWD) -> bytes:
    """What a full ICE client answers to the server's check of it."""
    msg = stun.parse(request)
    return stun.encode(
        stun.BINDING_SUCCESS,
        msg.transaction_id,
        [(stun.XOR_MAPPED_ADDRESS, stun.encode_xor_address(*addr, msg.transaction_id))],
        integrity_key=pwd.encode(),
    )


def connect(server: Server, session: PeerSession, now: float = 0.0) -> None:
    """ICE from FIRST, then a real DTLS handshake in memory, to CONNECTED."""
    server.receive(check(session), FIRST, now)
    assert session.addr == FIRST
    client = DtlsEndpoint(
        CLIENT_CERT, is_server=False, remote_fingerprints=[("sha-256", SERVER_CERT.fingerprint)]
    )
    to_server = client.start(now)
    for _ in range(20):
        server.take()
        for datagram in to_server:
            server.receive(datagram, FIRST, now)
        to_server = [
            out for d in server.take(FIRST) if not is_stun(d) for out in client.receive(d, now)
        ]
        if session.state is SessionState.CONNECTED:
            break
    assert session.state is SessionState.CONNECTED
    assert client.state is DtlsState.CONNECTED
    server.take()


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def session(server: Server) -> PeerSession:
    session = server.new_session()
    connect(server, session)
    return session


def test_spoofed_move_gets_only_stun_and_media_stays(server: Server, session: PeerSession) -> None:
    server.receive(check(session), SPOOFED, 1.0)
    to_spoofed = server.take(SPOOFED)
    assert len(to_spoofed) == 2 and all(is_stun(d) for d in to_spoofed)
    types = sorted(stun.parse(d).msg_type for d in to_spoofed)
    assert types == [stun.BINDING_REQUEST, stun.BINDING_SUCCESS]
    raw = our_check(to_spoofed)
    request = stun.parse(raw)
    # Our own check, with the client's credentials from its offer.
    assert request.msg_type == stun.BINDING_REQUEST
    assert request.get(stun.USERNAME) == f"{CLIENT_UFRAG}:{session.ice.local_ufrag}".encode()
    assert stun.verify_integrity(raw, request, CLIENT_PWD.encode())
    assert stun.verify_fingerprint(raw, request)
    assert request.get(stun.ICE_CONTROLLED) is not None
    assert session.addr == FIRST
    session.send_rtcp(b"\x80\xc9\x00\x01" + b"\x00" * 4)
    assert len(server.take(FIRST)) == 1  # media keeps going to the proven address
    for step in range(1, 20):
        session.handle_timer(1.0 + step * 0.1)
        assert all(is_stun(d) for d in server.take(SPOOFED))
    assert session.addr == FIRST
    assert server.table.by_addr[FIRST] is session and SPOOFED not in server.table.by_addr
    assert server.table.drops["address_check_unanswered"] == 1
    assert not session.checks.pending


def test_checks_are_retried_a_few_times_then_given_up(server: Server, session: PeerSession) -> None:
    server.receive(check(session), SPOOFED, 1.0)
    server.take()
    for step in range(1, 40):
        session.handle_timer(1.0 + step * 0.05)
    requests = server.take(SPOOFED)
    assert len(requests) == ice.CHECK_ATTEMPTS - 1
    assert len({stun.parse(r).transaction_id for r in requests}) == 1


def test_a_verified_address_gets_the_media(server: Server, session: PeerSession) -> None:
    server.receive(check(session), REBOUND, 1.0)
    request = our_check(server.take(REBOUND))
    server.receive(answer(request, REBOUND), REBOUND, 1.01)
    assert session.addr == REBOUND
    assert server.table.by_addr[REBOUND] is session and FIRST not in server.table.by_addr
    session.send_rtcp(b"\x80\xc9\x00\x01" + b"\x00" * 4)
    assert len(server.take(REBOUND)) == 1


def test_a_stale_address_moves_only_once_verified(server: Server, session: PeerSession) -> None:
    """NAT rebinding without USE-CANDIDATE: the old address went quiet, the new one answers."""
    server.receive(check(session, use_candidate=False), REBOUND, 1.0)
    assert [stun.parse(d).msg_type for d in server.take(REBOUND)] == [stun.BINDING_SUCCESS]
    server.receive(check(session, use_candidate=False), REBOUND, 5.0)
    request = our_check(server.take(REBOUND))
    assert session.addr == FIRST
    server.receive(answer(request, REBOUND), REBOUND, 5.01)
    assert session.addr == REBOUND


@pytest.mark.parametrize("forgery", ["wrong address", "wrong password", "wrong id"])
def test_forged_answers_do_not_move_media(
    server: Server, session: PeerSession, forgery: str
) -> None:
    server.receive(check(session), SPOOFED, 1.0)
    request = our_check(server.take(SPOOFED))
    if forgery == "wrong address":  # the attacker answers from where it really is
        server.receive(answer(request, SPOOFED), FIRST, 1.01)
    elif forgery == "wrong password":
        server.receive(answer(request, SPOOFED, pwd="x" * 24), SPOOFED, 1.01)
    else:  # a guessed id with the session's tag
        forged = bytearray(answer(request, SPOOFED))
        forged[19] ^= 1
        server.receive(bytes(forged), SPOOFED, 1.01)
    assert session.addr == FIRST
    assert server.table.drops["stun_unverified_response"] == 1
    assert server.take() == []


def test_answers_to_no_check_of_ours_are_dropped(server: Server, session: PeerSession) -> None:
    server.receive(answer(check(session), SPOOFED), SPOOFED, 1.0)
    assert server.table.drops["stun_unexpected_response"] == 1
    assert server.take() == []


def test_outstanding_checks_are_bounded(server: Server, session: PeerSession) -> None:
    for port in range(100):
        server.receive(check(session), ("127.0.0.3", 20000 + port), 1.0)
    requests = [d for d in server.take() if stun.parse(d).msg_type == stun.BINDING_REQUEST]
    assert len(requests) == ice.MAX_PENDING_CHECKS


def test_before_media_the_first_address_binds_at_once(server: Server) -> None:
    session = server.new_session()
    server.receive(check(session), FIRST, 0.1)
    assert session.addr == FIRST and session.state is SessionState.CONNECTING
    assert [stun.parse(d).msg_type for d in server.take()] == [stun.BINDING_SUCCESS]


# --- STUN answers ---------------------------------------------------------------------------


def test_a_new_session_cannot_take_another_sessions_address(
    server: Server, session: PeerSession
) -> None:
    """An attacker's own fresh session, checking from a spoofed copy of the victim's address,
    must not unbind the victim: a taken address is verified first, and the victim's ICE agent
    does not answer a check made with the attacker's credentials."""
    intruder = server.new_session()
    server.receive(check(intruder), FIRST, 1.0)
    to_victim = server.take(FIRST)
    request = stun.parse(our_check(to_victim))
    assert request.get(stun.USERNAME) == f"{CLIENT_UFRAG}:{intruder.ice.local_ufrag}".encode()
    assert intruder.addr is None and intruder.state is SessionState.NEW
    assert session.addr == FIRST and server.table.by_addr[FIRST] is session
    session.send_rtcp(b"\x80\xc9\x00\x01" + b"\x00" * 4)
    assert len(server.take(FIRST)) == 1  # the victim's media still goes to it


def test_unknown_or_missing_username_and_bad_fingerprint_get_no_answer(
    server: Server, session: PeerSession
) -> None:
    unknown = check(session, username=f"nobody00:{CLIENT_UFRAG}")
    no_username = stun.encode(stun.BINDING_REQUEST, b"\x01" * 12, [], integrity_key=b"k")
    bad_fingerprint = bytearray(check(session))
    bad_fingerprint[-1] ^= 0xFF
    for datagram in (unknown, no_username, bytes(bad_fingerprint)):
        server.receive(datagram, SPOOFED, 1.0)
    assert server.take() == []
    assert server.table.drops["stun_unknown_username"] == 1
    assert server.table.drops["stun_no_username"] == 1
    assert server.table.drops["stun_bad_fingerprint"] == 1


def test_error_answers_are_rate_limited_per_host(server: Server, session: PeerSession) -> None:
    wrong = check(session, pwd="x" * 24)
    for _ in range(100):
        server.receive(wrong, SPOOFED, 1.0)
    errors = server.take(SPOOFED)
    assert len(errors) == ice.ERROR_REPLY_BURST
    assert stun.decode_error_code(stun.parse(errors[0]).get(stun.ERROR_CODE))[0] == 401
    assert server.table.drops["stun_error_rate_limited"] == 100 - ice.ERROR_REPLY_BURST
    assert server.table.drops["stun_rejected_401"] == 100  # every rejection is counted
    server.receive(wrong, ("127.0.0.4", 1), 1.0)  # another host has its own budget
    assert len(server.take()) == 1
    for _ in range(10):
        server.receive(wrong, SPOOFED, 2.0)  # a second later: the bucket refilled a little
    assert len(server.take(SPOOFED)) == ice.ERROR_REPLIES_PER_SECOND


def test_the_error_table_is_bounded_and_fails_closed() -> None:
    limiter = ice.ErrorReplyLimiter()
    for host in range(ice.ERROR_REPLY_HOSTS + 50):
        limiter.allow(f"10.0.{host // 256}.{host % 256}", 0.0)
    assert len(limiter) == ice.ERROR_REPLY_HOSTS
    assert not limiter.allow("10.9.9.9", 0.1)  # all busy: no answer for a newcomer
    assert limiter.allow("10.9.9.9", 10.0)  # the oldest went quiet and is forgotten
    assert len(limiter) == ice.ERROR_REPLY_HOSTS


# --- lifetimes, ids, logs -------------------------------------------------------------------


@pytest.mark.parametrize("ice_done", [False, True])
def test_a_session_not_connected_in_time_ends_and_frees_its_slot(ice_done: bool) -> None:
    server = Server(MediaConfig(pending_timeout=2.0))
    session = server.new_session(now=0.0)
    if ice_done:  # ICE passed, DTLS never started
        server.receive(check(session), FIRST, 0.5)
    server.router.handle_timer(1.9)
    assert session.state is not SessionState.CLOSED
    server.router.handle_timer(2.1)
    assert session.state is SessionState.CLOSED
    assert session.close_reason == "not connected within 2 s"
    assert server.router.resource_counts()["sessions"] == 0
    assert server.table.by_addr == {}


def test_connected_sessions_outlive_the_pending_timeout(server: Server) -> None:
    session = server.new_session()
    connect(server, session, now=0.0)
    server.receive(check(session, use_candidate=False), FIRST, 29.0)
    server.router.handle_timer(server.config.pending_timeout + 20)
    assert session.state is SessionState.CONNECTED


def test_default_pending_timeout() -> None:
    assert MediaConfig().pending_timeout == 10.0


def test_session_ids_carry_128_bits(server: Server) -> None:
    ids = {server.new_session().id for _ in range(50)}
    assert len(ids) == 50
    assert SESSION_ID_HEX == 32
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)


def test_lifecycle_logs_carry_the_session(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    """Every line names the session by the short hash of its id, in the text and the JSON
    field, and never by the id itself: the id is the capability to end the session."""
    caplog.set_level(logging.INFO, logger="sfu.session.peer")
    session = server.new_session(now=100.0)
    connect(server, session, now=100.0)
    server.receive(check(session), REBOUND, 101.0)
    server.receive(answer(our_check(server.take(REBOUND)), REBOUND), REBOUND, 101.0)
    session.handle_timer(112.5)
    session.close("test over")
    records = [r for r in caplog.records if r.name == "sfu.session.peer"]
    messages = [r.getMessage() for r in records]
    assert any("ICE connected" in m for m in messages)
    assert any("DTLS-SRTP connected" in m for m in messages)
    assert any("moved from" in m for m in messages)
    closed = [r for r in records if "closed" in r.getMessage()]
    assert len(closed) == 1 and "after 12.5 s" in closed[0].getMessage()
    assert closed[0].duration == 12.5
    name = short_hash(session.id)
    assert re.fullmatch("[0-9a-f]{8}", name) and name not in session.id
    for record in records:
        assert f"session #{name}: " in record.getMessage()
        assert session.id not in record.getMessage()
        assert record.session_id == name
        assert record.stream == "live/s"
        assert record.role == "play"
