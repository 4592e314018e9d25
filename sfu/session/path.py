"""Which of a peer's addresses carries its session: ICE checks in, moves out (RFC 8445 §8.1.1).

Kept apart from the rest of the session (peer.py): an authenticated Binding Request validates
the pair it came on (sfu/protocol/nomination.py keeps them), and the session moves to a pair
that ranks at least as high when it is nominated, or to any validated one when the current
has gone silent; once media flows, only after the new address answers a check of our own
(return routability), so that a client spoofing its source cannot point media at a third
party. DTLS and media from the other validated pairs are taken meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sfu.protocol import ice
from sfu.session.transport import (
    Address,
    AddressChanged,
    PairsChanged,
    SessionState,
    is_tcp,
    network_address,
)
from sfu.wire.stun import Message

if TYPE_CHECKING:
    from sfu.protocol.nomination import Pairs
    from sfu.session.transport import MediaHandler, SendFunction, SessionEvent


class PathChoice:
    """The address-choosing half of PeerSession, which holds the state named here."""

    __slots__ = ()
    if TYPE_CHECKING:
        addr: Address | None
        state: SessionState
        last_seen: float
        _latest: float
        ice: ice.IceLite
        checks: ice.ReturnRoutability
        pairs: Pairs
        handler: MediaHandler | None
        _send: SendFunction
        _events: list[SessionEvent]

        def handle_srtp(self, data: bytes, now: float) -> None: ...
        def _log(self, message: str, *args: object, **extra: object) -> None: ...

    def handle_binding(
        self, data: bytes, msg: Message, addr: Address, now: float, taken: bool = False
    ) -> ice.BindingOutcome:
        """Check a STUN Binding Request; an authenticated one may (re)bind the address.

        `taken` says the address is bound to another session. The caller sends the response,
        so it can rate-limit error answers across sessions.
        """
        if self.state is SessionState.CLOSED:
            return ice.IGNORED
        self._latest = now
        outcome = self.ice.handle(data, msg, network_address(addr))
        if outcome.authenticated and outcome.error_code is None:
            priority = ice.pair_priority(outcome.priority, is_tcp(addr))
            new, forgotten = self.pairs.validated(addr, priority, outcome.use_candidate, now)
            if new:
                removed = () if forgotten is None else (forgotten,)
                self._events.append(PairsChanged(self, (addr,), removed))
            self._valid_from(addr, taken, now)
        return outcome

    def handle_pair_srtp(self, data: bytes, addr: Address, now: float) -> None:
        """SRTP from a validated pair other than the selected one: taken (a client may send on
        the pair it prefers while ours is still being proven, or before it falls back), but it
        marks that pair alive, not the selected one, which may then lose the session to it."""
        selected_seen = self.last_seen
        self.handle_srtp(data, now)
        if self.last_seen == selected_seen:
            return  # not decrypted: says nothing about the pair
        self.last_seen = selected_seen
        self.pairs.heard(addr, now)
        self._valid_from(addr, False, now)

    def _valid_from(self, addr: Address, taken: bool, now: float) -> None:
        if addr == self.addr:
            self.last_seen = now
            return
        if not self.pairs.better(addr, self.addr, self.last_seen, now):
            return
        if (self.state is SessionState.CONNECTED or taken) and not is_tcp(addr):
            # Media flows, or the address is another session's (a spoofed check from it would
            # unbind its owner): it moves only once the address answers a check of our own.
            # An ICE-TCP connection needs no such check: its handshake already proved that
            # the peer receives at that address, and no one else can send on it.
            request = self.checks.start(
                addr, f"{self.ice.remote_ufrag}:{self.ice.local_ufrag}", self.ice.remote_pwd, now
            )
            if request is not None:
                self._send(request, addr)
        else:
            # Before media, the DTLS handshake proves the address: SRTP keys exist only once
            # the peer has received our flights there, and nothing but DTLS goes there before.
            self._move(addr, now)

    def handle_binding_response(self, data: bytes, msg: Message, addr: Address, now: float) -> bool:
        """An answer to one of our return-routability checks: a verified address gets the media.
        False when it is not an authenticated answer to a check under way."""
        if self.state is SessionState.CLOSED or not self.checks.verify(data, msg, addr):
            return False
        self._latest = now
        if addr != self.addr:
            self._move(addr, now)
        return True

    def _move(self, addr: Address, now: float) -> None:
        old, self.addr = self.addr, addr
        self.last_seen = now
        if old is None and self.state is SessionState.NEW:
            self._log("ICE connected from %s:%d", *addr)
            self.state = SessionState.CONNECTING
        elif old is None:
            self._log("bound again at %s:%d", *addr)
        else:
            self._log("moved from %s:%d to %s:%d", *old, *addr)
        self._events.append(AddressChanged(self, old, addr))
        if self.handler is not None and self.state is SessionState.CONNECTED:
            self.handler.on_moved()  # what sends to the peer may differ (IPv4/IPv6, UDP/TCP)
