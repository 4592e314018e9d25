"""ICE-lite agent (RFC 8445 §2.5, §7.3), sans-IO: a Binding request in, a response out.

A lite agent answers the peer's connectivity checks with its short-term credentials and
reports which ones were authenticated and nominated, so the UDP endpoint can bind the session
to the peer's address. The one check it sends itself is a return-routability test of a new
address before media moves there (ReturnRoutability), so that a client spoofing its source
cannot point its media at a third party.
"""

from __future__ import annotations

import collections
import random
import secrets
import string
import struct
from dataclasses import dataclass

from sfu.wire.stun import (
    BINDING_ERROR,
    BINDING_REQUEST,
    BINDING_SUCCESS,
    ERROR_CODE,
    ICE_CONTROLLED,
    ICE_CONTROLLING,
    PRIORITY,
    USE_CANDIDATE,
    USERNAME,
    XOR_MAPPED_ADDRESS,
    Message,
    StunError,
    decode_error_code,
    decode_xor_address,
    encode,
    encode_error_code,
    encode_xor_address,
    parse,
    verify_fingerprint,
    verify_integrity,
)

ICE_CHARS = string.ascii_letters + string.digits + "+/"

_CLASS_MASK = 0x0110  # the two class bits of a STUN message type
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


# Where credentials, ids and SSRCs come from unless a caller injects a seeded generator (tests).
SYSTEM_RANDOM = secrets.SystemRandom()


def _random_ice_string(length: int, rng: random.Random) -> str:
    return "".join(rng.choice(ICE_CHARS) for _ in range(length))


def new_ufrag(rng: random.Random = SYSTEM_RANDOM) -> str:
    """A fresh ice-ufrag: 8 ice-chars (RFC 8839 wants at least 4; 8 keeps lookups unique)."""
    return _random_ice_string(8, rng)


def new_pwd(rng: random.Random = SYSTEM_RANDOM) -> str:
    """A fresh ice-pwd: 24 ice-chars, above RFC 8839's 22-char (128-bit) minimum."""
    return _random_ice_string(24, rng)


def split_username(msg: Message) -> tuple[str, str] | None:
    """(server ufrag, client ufrag) from USERNAME, so a session can be found before any state."""
    value = msg.get(USERNAME)
    if value is None:
        return None
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    local, colon, remote = text.partition(":")
    if not colon:
        return None
    return local, remote


@dataclass(frozen=True)
class BindingOutcome:
    """What handling one datagram produced.

    authenticated means USERNAME and MESSAGE-INTEGRITY matched; it is also True for a
    487 role conflict, so the check counts as valid only when error_code is None.
    """

    response: bytes | None
    authenticated: bool
    use_candidate: bool
    error_code: int | None
    priority: int = 0  # the PRIORITY the client gave its candidate (0: none given)


IGNORED = BindingOutcome(None, False, False, None)


def _error_type(msg_type: int) -> int:
    return msg_type | _CLASS_MASK


def error_response(msg: Message, code: int, reason: str) -> bytes:
    """An unauthenticated error response (ERROR-CODE and FINGERPRINT only) to a request."""
    return encode(
        _error_type(msg.msg_type),
        msg.transaction_id,
        [(ERROR_CODE, encode_error_code(code, reason))],
        fingerprint=True,
    )


class IceLite:
    """The server side of one ICE session: answers Binding requests, never sends checks."""

    def __init__(self, local_ufrag: str, local_pwd: str, remote_ufrag: str, remote_pwd: str):
        self.restart(local_ufrag, local_pwd, remote_ufrag, remote_pwd)

    def restart(self, local_ufrag: str, local_pwd: str, remote_ufrag: str, remote_pwd: str) -> None:
        """Take new credentials (ICE restart); requests with the old ones then fail with 401."""
        self.local_ufrag = local_ufrag
        self.local_pwd = local_pwd
        self.remote_ufrag = remote_ufrag
        self.remote_pwd = remote_pwd

    def handle(self, data: bytes, msg: Message, addr: tuple[str, int]) -> BindingOutcome:
        """Answer one parsed datagram from addr; data is the raw bytes msg was parsed from."""
        if msg.msg_type != BINDING_REQUEST or not verify_fingerprint(data, msg):
            return IGNORED  # a bad FINGERPRINT is not STUN for us: no answer at all
        username = msg.get(USERNAME)
        if username is None:
            return IGNORED  # nothing says who is asking: an answer would be pure reflection
        if msg.integrity_offset is None:
            return self._reject(msg, 400, "Bad Request")
        if username != f"{self.local_ufrag}:{self.remote_ufrag}".encode():
            return self._reject(msg, 401, "Unauthorized")
        key = self.local_pwd.encode()
        if not verify_integrity(data, msg, key):
            return self._reject(msg, 401, "Unauthorized")
        if msg.get(ICE_CONTROLLED) is not None:
            # A lite agent is always controlled and cannot switch roles, so the
            # peer must (RFC 8445 §7.3.1.1).
            response = encode(
                BINDING_ERROR,
                msg.transaction_id,
                [(ERROR_CODE, encode_error_code(487, "Role Conflict"))],
                integrity_key=key,
            )
            return BindingOutcome(response, True, False, 487)
        host, port = addr[0], addr[1]
        response = encode(
            BINDING_SUCCESS,
            msg.transaction_id,
            [(XOR_MAPPED_ADDRESS, encode_xor_address(host, port, msg.transaction_id))],
            integrity_key=key,
        )
        value = msg.get(PRIORITY)
        priority = _U32.unpack(value)[0] if value is not None and len(value) == 4 else 0
        return BindingOutcome(response, True, msg.get(USE_CANDIDATE) is not None, None, priority)

    @staticmethod
    def _reject(msg: Message, code: int, reason: str) -> BindingOutcome:
        return BindingOutcome(error_response(msg, code, reason), False, False, code)


def binding_request(
    transaction_id: bytes,
    username: str,
    pwd: str,
    *,
    controlling: bool,
    tie_breaker: int,
    priority: int,
    use_candidate: bool = False,
) -> bytes:
    """A full agent's connectivity check, for tests and the load generator.

    username is "<server ufrag>:<client ufrag>" and pwd the server's ice-pwd.
    """
    role = ICE_CONTROLLING if controlling else ICE_CONTROLLED
    attributes = [
        (USERNAME, username.encode()),
        (PRIORITY, _U32.pack(priority)),
        (role, _U64.pack(tie_breaker)),
    ]
    if use_candidate:
        attributes.append((USE_CANDIDATE, b""))
    return encode(BINDING_REQUEST, transaction_id, attributes, integrity_key=pwd.encode())


def parse_binding_success(data: bytes, transaction_id: bytes, pwd: str) -> tuple[str, int]:
    """The XOR-MAPPED-ADDRESS of an authenticated success to our request; else StunError."""
    msg = parse(data)
    if msg.transaction_id != transaction_id:
        raise StunError("transaction id does not match")
    if msg.msg_type == BINDING_ERROR:
        value = msg.get(ERROR_CODE)
        code, reason = decode_error_code(value) if value is not None else (0, "no ERROR-CODE")
        raise StunError(f"binding error response: {code} {reason}")
    if msg.msg_type != BINDING_SUCCESS:
        raise StunError("not a binding success response")
    if not verify_fingerprint(data, msg):
        raise StunError("bad or missing FINGERPRINT")
    if not verify_integrity(data, msg, pwd.encode()):
        raise StunError("bad or missing MESSAGE-INTEGRITY")
    value = msg.get(XOR_MAPPED_ADDRESS)
    if value is None:
        raise StunError("no XOR-MAPPED-ADDRESS")
    return decode_xor_address(value, msg.transaction_id)


# RFC 8445 §5.1.2.2 type preferences of the server's own candidates. TCP ranks below UDP
# (RFC 6544 §4.2: a client that can use UDP should). A server-reflexive address shares the host
# preference: on a VM behind 1:1 NAT it is the one that works, so its place in the list decides.
UDP_TYPE_PREFERENCE = 126
TCP_TYPE_PREFERENCE = 100
_MAX_LOCAL_PREFERENCE = 65535


def candidate_priority(index: int, component: int = 1, tcp: bool = False) -> int:
    """RFC 8445 priority of the server candidate at `index`: earlier candidates rank higher."""
    local = max(_MAX_LOCAL_PREFERENCE - index, 0)
    kind = TCP_TYPE_PREFERENCE if tcp else UDP_TYPE_PREFERENCE
    return (kind << 24) + (local << 8) + (256 - component)


def pair_priority(client: int, tcp: bool) -> int:
    """RFC 8445 §6.1.2.3 priority of a pair whose client candidate has priority `client` (the
    controlling side's) and whose server candidate is our first UDP or TCP one: a lite server
    cannot tell which of its addresses a datagram reached, only the transport."""
    server = candidate_priority(0, tcp=tcp)
    return (min(client, server) << 32) + 2 * max(client, server) + (client > server)


# A new address gets this many Binding requests, this far apart, before we give up on it.
CHECK_ATTEMPTS = 4
CHECK_INTERVAL = 0.25
# Outstanding checks per session: a peer cannot make us probe many addresses at once.
MAX_PENDING_CHECKS = 4
CHECK_TAG_BYTES = 6  # transaction ids start with the session's tag, so responses find it
# The priority we claim in our checks: our first UDP candidate's (RFC 8445 §7.2.2).
_CHECK_PRIORITY = candidate_priority(0)


@dataclass
class _Check:
    addr: tuple[str, int]
    request: bytes
    pwd: str  # the peer's ice-pwd when the check was sent: it signs the answer
    sent_at: float
    attempts: int


class ReturnRoutability:
    """Our own Binding requests to a peer's new address; an address is proven when it answers.

    Transaction ids are this session's tag followed by random bytes: the endpoint finds the
    session by the tag, and only the peer that really receives at the address learns the id.
    """

    def __init__(self, rng: random.Random = SYSTEM_RANDOM) -> None:
        self._rng = rng
        self.tag = rng.randbytes(CHECK_TAG_BYTES)
        self.tie_breaker = rng.getrandbits(64)
        self.pending: dict[bytes, _Check] = {}
        self.given_up = 0

    def start(self, addr: tuple[str, int], username: str, pwd: str, now: float) -> bytes | None:
        """A check to send to addr, or None if one is under way or too many are.

        username is "<client ufrag>:<server ufrag>" and pwd the client's ice-pwd.
        """
        if len(self.pending) >= MAX_PENDING_CHECKS:
            return None
        if any(check.addr == addr for check in self.pending.values()):
            return None
        transaction_id = self.tag + self._rng.randbytes(12 - CHECK_TAG_BYTES)
        request = binding_request(
            transaction_id,
            username,
            pwd,
            controlling=False,
            tie_breaker=self.tie_breaker,
            priority=_CHECK_PRIORITY,
        )
        self.pending[transaction_id] = _Check(addr, request, pwd, now, 1)
        return request

    def verify(self, data: bytes, msg: Message, addr: tuple[str, int]) -> bool:
        """True when data is an authenticated success to one of our checks, from its address."""
        check = self.pending.get(msg.transaction_id)
        if check is None or check.addr != addr:
            return False
        try:
            parse_binding_success(data, msg.transaction_id, check.pwd)
        except StunError:
            return False  # unsigned errors cost nothing to forge: let the check run its course
        self.pending.clear()  # the peer has one path now; other checks are moot
        return True

    def next_due(self) -> float | None:
        """When a check under way is next resent (or given up); None when none is."""
        if not self.pending:
            return None
        return min(check.sent_at for check in self.pending.values()) + CHECK_INTERVAL

    def due(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        """Checks to send again now; those out of attempts are dropped and counted."""
        resend = []
        for transaction_id, check in list(self.pending.items()):
            if now - check.sent_at < CHECK_INTERVAL:
                continue
            if check.attempts >= CHECK_ATTEMPTS:
                del self.pending[transaction_id]
                self.given_up += 1
                continue
            check.attempts += 1
            check.sent_at = now
            resend.append((check.request, check.addr))
        return resend


# Error answers to known sessions, per source host: a small burst, then this many a second.
ERROR_REPLIES_PER_SECOND = 5
ERROR_REPLY_BURST = 10
ERROR_REPLY_HOSTS = 256


class ErrorReplyLimiter:
    """Token buckets per source host for STUN error answers, in a bounded table.

    When the table is full of active hosts, a new host gets no error answer: failing closed
    means a flood from many spoofed sources can never buy answers for the one it targets.
    """

    def __init__(self) -> None:
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def allow(self, host: str, now: float) -> bool:
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= ERROR_REPLY_HOSTS and not self._evict_full(now):
                return False
            tokens = float(ERROR_REPLY_BURST)
        else:
            tokens, then = bucket
            tokens = min(ERROR_REPLY_BURST, tokens + (now - then) * ERROR_REPLIES_PER_SECOND)
        if tokens < 1:
            self._buckets[host] = (tokens, now)
            return False
        self._buckets[host] = (tokens - 1, now)
        self._buckets.move_to_end(host)
        return True

    def _evict_full(self, now: float) -> bool:
        """Forget the least recently answered host if its bucket has refilled completely."""
        host, (tokens, then) = next(iter(self._buckets.items()))
        if tokens + (now - then) * ERROR_REPLIES_PER_SECOND < ERROR_REPLY_BURST:
            return False
        del self._buckets[host]
        return True

    def __len__(self) -> int:
        return len(self._buckets)
