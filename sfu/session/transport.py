"""What the layers above use of a session: its address, state, events and the Transport protocol.

A peer's ICE/DTLS-SRTP session (peer.py) and a relay's fixed-address end (sfu.routing.relay)
both meet this contract, so the tracks, handlers and socket adapters depend on it alone.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from sfu.media import PeerParams
from sfu.protocol.dtls import SrtpKeys

Address = tuple[str, int]
SendFunction = Callable[[bytes, Address], None]
# The host part of an ICE-TCP peer's address (sfu/io/tcp.py): never equal to a UDP address, and
# what sending uses to pick the connection instead of the UDP socket.
TCP_PREFIX = "tcp:"


def is_tcp(addr: Address) -> bool:
    return addr[0].startswith(TCP_PREFIX)


def short_hash(session_id: str) -> str:
    """How a log line names a session: the first 8 hex digits of the SHA-256 of its id.

    The id is a capability (whoever has the session's URL may end it), so logs never carry it
    whole; the same digest as signaling/serving/redact.py gives, so HTTP and media lines of
    one session match (the layers keep the two apart: the front imports no sfu module).
    """
    return hashlib.sha256(session_id.encode()).hexdigest()[:8]


def network_address(addr: Address) -> Address:
    """The IP and port a peer really has, as a STUN XOR-MAPPED-ADDRESS must tell it."""
    return (addr[0].removeprefix(TCP_PREFIX), addr[1])


class SessionState(enum.Enum):
    NEW = "new"  # answer sent, no authenticated STUN yet
    CONNECTING = "connecting"  # ICE checks passed, DTLS handshake under way
    CONNECTED = "connected"  # SRTP keys in place, media flows
    CLOSED = "closed"


class MediaHandler(Protocol):
    """What the router attaches to a session to receive its media."""

    def on_connected(self, now: float) -> None: ...
    def ssrc_slot(self, packet: bytes, now: float) -> Hashable | None:
        """Where an SSRC with no SRTP stream yet would go (one layer of one m-line), judged
        from the still-encrypted packet's clear header; None, counted, to drop it undecrypted."""
        ...

    def on_rtp(self, packet: bytes, now: float) -> None: ...
    def on_rtcp(self, packet: bytes, now: float) -> None: ...
    def on_closed(self) -> None: ...
    def on_moved(self) -> None: ...


# -- what a session reports to its owner, drained with poll_events() ----------------------------


@dataclass(frozen=True)
class AddressChanged:
    """The session's media moved from `old` (None: it had none) to `new`."""

    session: Transport
    old: Address | None
    new: Address


@dataclass(frozen=True)
class UfragChanged:
    """An ICE restart replaced the server ufrag `old` that first STUN finds the session by."""

    session: Transport
    old: str


@dataclass(frozen=True)
class PairsChanged:
    """Addresses an authenticated check came from (validated pairs) were `added` or forgotten
    (`removed`): the endpoint takes DTLS and media from every such address of the session."""

    session: Transport
    added: tuple[Address, ...]
    removed: tuple[Address, ...]


@dataclass(frozen=True)
class SessionClosed:
    """The session ended; `session.close_reason` says why."""

    session: Transport


SessionEvent = AddressChanged | UfragChanged | PairsChanged | SessionClosed


class Keys(Protocol):
    """Where the fast path finds a transport's SRTP master keys (a DTLS endpoint or not)."""

    keys: SrtpKeys | None


class Protection(Protocol):
    """SRTP, or plain RTP for an unencrypted relay."""

    def protect_rtp(self, packet: bytes | bytearray) -> bytes | bytearray: ...
    def protect_rtcp(self, packet: bytes) -> bytes: ...


class Transport(Protocol):
    """What players, publishers and tracks use of a session: a peer's ICE/DTLS-SRTP one
    (PeerSession) or a relay's fixed-address one (sfu.routing.relay.PlainSession)."""

    id: str
    role: str
    stream: str
    peer: PeerParams
    state: SessionState
    addr: Address | None
    handler: MediaHandler | None
    rtcp_ssrc: int
    transport_seq: int
    srtp_errors: int
    created: float
    last_seen: float
    close_reason: str

    @property
    def srtp(self) -> Protection | None: ...
    @property
    def dtls(self) -> Keys | None: ...
    @property
    def transport(self) -> str | None: ...

    def handle_srtp(self, data: bytes, now: float) -> None: ...
    def handle_dtls(self, data: bytes, now: float) -> None: ...
    def send_rtcp(self, packet: bytes) -> None: ...
    def handle_timer(self, now: float) -> None: ...
    def next_timer(self) -> float | None: ...
    def poll_events(self) -> list[SessionEvent]: ...
    def close(self, reason: str) -> None: ...
