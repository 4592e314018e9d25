"""The session table: finds a session by id, server ufrag, address or check tag.

Kept apart from the session itself: a session only reports events, and the table, owned by
the endpoint and the router, moves its indexes to follow them.
"""

from __future__ import annotations

import collections
import math
from collections import OrderedDict
from dataclasses import dataclass

from sfu.session.peer import PeerSession
from sfu.session.transport import Address, AddressChanged, PairsChanged, Transport, UfragChanged


@dataclass(frozen=True, slots=True)
class EndedSession:
    """What is kept of a session after it ends, so a late DELETE is answered, not refused."""

    stream: str
    role: str
    reason: str


# Ended sessions remembered for late DELETEs: the newest this many.
ENDED_REMEMBERED = 4096


class SessionTable:
    """Sessions by id (HTTP), by server ufrag (first STUN), by address (everything after), by
    the addresses of their other validated pairs (DTLS and media a client sends on a pair that
    is not the selected one) and by the tag of their own checks' transaction ids (answers from
    a new address); the ended ones by id. Whoever calls into a session hands its events to
    `settle`, so the indexes follow before the next datagram is demuxed."""

    def __init__(self) -> None:
        self.by_id: dict[str, PeerSession] = {}
        self.by_ufrag: dict[str, PeerSession] = {}
        self.by_addr: dict[Address, Transport] = {}
        self.by_pair: dict[Address, PeerSession] = {}
        self.by_check_tag: dict[bytes, PeerSession] = {}
        self.ended: OrderedDict[str, EndedSession] = OrderedDict()
        self.ended_total = 0  # sessions that have ended since the start
        # The media plane's drops by reason, shared by the endpoint, the sessions and the router.
        self.drops: collections.Counter[str] = collections.Counter()
        # Forwarded RTP (and RTX) datagrams, which the tracks send on the socket directly.
        self.media_datagrams_out = 0
        # No session's timer is due before this (it may be earlier than the true earliest):
        # the router sets it when it runs the timers, and a session added or settled after
        # handling a packet lowers it, so a tick with nothing due costs nothing per session.
        self.timer_floor = math.inf

    def add(self, session: PeerSession) -> None:
        self.by_id[session.id] = session
        self.by_ufrag[session.ice.local_ufrag] = session
        self.by_check_tag[session.checks.tag] = session
        session.drops = self.drops
        if session.data is not None:
            session.data.share_drops(self.drops)
        self.lower_timer_floor(session)

    def lower_timer_floor(self, session: Transport) -> None:
        """Bring timer_floor down to the session's next timer if that comes sooner."""
        at = session.next_timer()
        if at is not None and at < self.timer_floor:
            self.timer_floor = at

    def settle(self, session: Transport) -> None:
        """Apply what the session reported: an address or ufrag it moved to, or its end; note
        its timer, which a handshake or check it just started may have brought forward."""
        self.lower_timer_floor(session)
        for event in session.poll_events():
            if isinstance(event, AddressChanged):
                self._rebind(session, event.old, event.new)
                continue
            if isinstance(event, PairsChanged):
                self._repair(event)
                continue
            member = self.by_id.get(session.id)
            if member is not session:
                self.unbind(session)  # a relay's: its owner takes the rest
            elif isinstance(event, UfragChanged):
                if self.by_ufrag.get(event.old) is member:
                    del self.by_ufrag[event.old]
                self.by_ufrag[member.ice.local_ufrag] = member
            else:
                self.remove(member)
                self._remember(member)
                # The session and its handler name each other: cut the pair now, or it waits
                # for a full collection, holding its OpenSSL and libsrtp memory meanwhile.
                member.handler = None

    def bind(self, addr: Address, session: Transport) -> None:
        """Give `addr` to a session outside the table (a relay's), to hand it what comes from
        there; the address's previous owner loses it."""
        self._rebind(session, None, addr)

    def unbind(self, session: Transport) -> None:
        """Free the address of a session that is going away."""
        if session.addr is not None and self.by_addr.get(session.addr) is session:
            del self.by_addr[session.addr]

    def _rebind(self, session: Transport, old: Address | None, new: Address) -> None:
        if old is not None and self.by_addr.get(old) is session:
            del self.by_addr[old]
        previous = self.by_addr.get(new)
        if previous is not None and previous is not session:
            # The address now belongs to a newer authenticated peer; the old owner lost it.
            previous.addr = None
        self.by_addr[new] = session

    def _repair(self, event: PairsChanged) -> None:
        session = event.session
        for addr in event.removed:
            if self.by_pair.get(addr) is session:
                del self.by_pair[addr]
        for addr in event.added:
            self.by_pair[addr] = session  # type: ignore[assignment]  # only peers have pairs

    def remove(self, session: PeerSession) -> None:
        self.by_id.pop(session.id, None)
        if self.by_check_tag.get(session.checks.tag) is session:
            del self.by_check_tag[session.checks.tag]
        if self.by_ufrag.get(session.ice.local_ufrag) is session:
            del self.by_ufrag[session.ice.local_ufrag]
        for addr in session.pairs.by_addr:
            if self.by_pair.get(addr) is session:
                del self.by_pair[addr]
        self.unbind(session)

    def _remember(self, session: PeerSession) -> None:
        self.ended_total += 1
        self.ended[session.id] = EndedSession(session.stream, session.role, session.close_reason)
        while len(self.ended) > ENDED_REMEMBERED:
            self.ended.popitem(last=False)

    def __len__(self) -> int:
        return len(self.by_id)
