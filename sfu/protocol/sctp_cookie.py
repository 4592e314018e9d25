"""The state cookie of an SCTP INIT-ACK (RFC 4960 section 5.1.3): the association, signed.

The server keeps nothing for an INIT: what it needs later travels in the cookie, under an HMAC
with a secret of its own, and comes back in the COOKIE-ECHO, where it is checked for tampering
and age before anything is built from it.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass

LIFETIME = 60.0  # RFC 4960 Valid.Cookie.Life
_FIELDS = struct.Struct("!IIIIIBd")  # peer tag, window, TSN; our tag, TSN; FORWARD-TSN; time
_MAC_BYTES = 16


@dataclass(frozen=True)
class Cookie:
    peer_tag: int
    peer_window: int
    peer_tsn: int
    our_tag: int
    our_tsn: int
    forward_tsn: bool  # the peer supports partial reliability (RFC 3758)
    created: float


def seal(secret: bytes, cookie: Cookie) -> bytes:
    fields = _FIELDS.pack(
        cookie.peer_tag, cookie.peer_window, cookie.peer_tsn, cookie.our_tag, cookie.our_tsn,
        cookie.forward_tsn, cookie.created,
    )  # fmt: skip
    return fields + hmac.digest(secret, fields, "sha256")[:_MAC_BYTES]


def unseal(secret: bytes, data: bytes, now: float) -> Cookie | str:
    """The cookie, or why it is refused: a drop reason."""
    fields, mac = data[: _FIELDS.size], data[_FIELDS.size :]
    if len(data) != _FIELDS.size + _MAC_BYTES:
        return "sctp_bad_cookie"
    if not hmac.compare_digest(mac, hmac.digest(secret, fields, "sha256")[:_MAC_BYTES]):
        return "sctp_bad_cookie"
    peer_tag, window, peer_tsn, our_tag, our_tsn, forward, created = _FIELDS.unpack(fields)
    if not 0 <= now - created <= LIFETIME:
        return "sctp_stale_cookie"
    return Cookie(peer_tag, window, peer_tsn, our_tag, our_tsn, bool(forward), created)
