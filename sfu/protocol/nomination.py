"""Which of a client's candidate pairs carries its session (RFC 8445 §8.1.1), sans-IO.

A full agent may nominate several pairs: Firefox with ICE-TCP on nominates its TCP pair as well
as its UDP one and keeps using UDP. A lite server that followed the latest nomination moved
its media to whichever came last; the RFC says the highest-priority nominated pair is used.
So a session remembers every address an authenticated check came from (a validated pair),
with the pair's priority, whether it was nominated and when it was last heard from, and moves
only to a nominated pair that ranks at least as high as the current one, or to any validated
pair once the current one has gone silent (NAT rebinding, a dead path).
"""

from __future__ import annotations

from dataclasses import dataclass

Address = tuple[str, int]

# A valid check or packet from another address may take the session there once nothing valid
# has come from the current one for this long. Browsers keep checking their other pairs, so
# this must be longer than a pause in their RTCP, or the session flaps between paths.
STALE_AFTER = 3.0
# Validated pairs remembered per session: a browser has one per local candidate it checks
# from; a client that keeps inventing addresses only pushes out its own oldest.
MAX_PAIRS = 8


@dataclass(slots=True)
class Pair:
    priority: int
    nominated: bool
    seen: float


class Pairs:
    """A session's validated pairs, by the client's address, oldest first."""

    __slots__ = ("by_addr", "outranked")

    def __init__(self) -> None:
        self.by_addr: dict[Address, Pair] = {}
        self.outranked = 0  # packets of a nominated pair kept off because a better one lives

    def validated(
        self, addr: Address, priority: int, nominated: bool, now: float
    ) -> tuple[bool, Address | None]:
        """Note an authenticated check from addr: (whether the pair is new, the address of the
        oldest pair pushed out to make room, if any)."""
        pair = self.by_addr.get(addr)
        if pair is not None:
            pair.priority = priority
            pair.nominated = pair.nominated or nominated
            pair.seen = now
            return False, None
        forgotten = None
        if len(self.by_addr) >= MAX_PAIRS:
            forgotten = next(iter(self.by_addr))
            del self.by_addr[forgotten]
        self.by_addr[addr] = Pair(priority, nominated, now)
        return True, forgotten

    def heard(self, addr: Address, now: float) -> None:
        """Something valid (media, DTLS) came from addr."""
        pair = self.by_addr.get(addr)
        if pair is not None:
            pair.seen = now

    def better(
        self, addr: Address, current: Address | None, current_seen: float, now: float
    ) -> bool:
        """Whether the session should move from `current` to the validated pair at addr: there
        is no current one, it went silent, or addr is nominated and ranks no lower."""
        if current is None or now - current_seen > STALE_AFTER:
            return True
        pair = self.by_addr.get(addr)
        if pair is None or not pair.nominated:
            return False
        selected = self.by_addr.get(current)
        if selected is None or not selected.nominated:
            return True  # a nomination beats a pair taken only because it spoke
        if pair.priority >= selected.priority:
            return True
        self.outranked += 1
        return False

    def clear(self) -> list[Address]:
        """Forget every pair (an ICE restart: the client nominates afresh); their addresses."""
        addresses = list(self.by_addr)
        self.by_addr.clear()
        return addresses
