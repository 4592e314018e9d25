"""ICE-lite agent (RFC 8445 §2.5, §7.3), sans-IO: a Binding request in, a response out.

A lite agent never sends checks of its own: it answers the peer's connectivity checks
with its short-term credentials and reports which ones were authenticated and nominated,
so the UDP endpoint can bind the session to the peer's address.
"""

from __future__ import annotations

import secrets
import string
import struct
from dataclasses import dataclass

from sfu.stun import (
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


def _random_ice_string(length: int) -> str:
    return "".join(secrets.choice(ICE_CHARS) for _ in range(length))


def new_ufrag() -> str:
    """A fresh ice-ufrag: 8 ice-chars (RFC 8839 wants at least 4; 8 keeps lookups unique)."""
    return _random_ice_string(8)


def new_pwd() -> str:
    """A fresh ice-pwd: 24 ice-chars, above RFC 8839's 22-char (128-bit) minimum."""
    return _random_ice_string(24)


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


_IGNORED = BindingOutcome(None, False, False, None)


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
        if msg.msg_type != BINDING_REQUEST:
            return _IGNORED
        if not verify_fingerprint(data, msg):
            return self._reject(msg, 400, "Bad Request")
        username = msg.get(USERNAME)
        if username is None or msg.integrity_offset is None:
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
        return BindingOutcome(response, True, msg.get(USE_CANDIDATE) is not None, None)

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
