"""How much of a player's transport-cc feedback the server decodes: a fixed number of packet
statuses per incoming RTCP datagram and per second, whatever the feedback claims.

Each status decoded costs Python work, and a status costs its sender nothing (one run-length
chunk claims 8,191 of them): unbounded, 1.4 kB of compound feedback cost ~170 ms of CPU.
Ordinary feedback reports each packet sent once, tens per datagram, so it stays far below.
"""

from __future__ import annotations

MAX_STATUSES_PER_RTCP = 512  # decoded per incoming RTCP datagram, across its items
STATUSES_PER_SECOND = 4096  # earned per second of the player's feedback, up to...
STATUSES_BURST = 2048  # ...this many held


class FeedbackBudget:
    """A token bucket of statuses, with a per-datagram cap on what may be taken from it."""

    __slots__ = ("_at", "_left", "_tokens")

    def __init__(self) -> None:
        self._tokens = float(STATUSES_BURST)
        self._at: float | None = None
        self._left = 0  # of the datagram being handled

    def start_datagram(self, now: float) -> None:
        """Earn tokens for the time since the last datagram; open this one's allowance."""
        if self._at is not None:
            earned = max(0.0, now - self._at) * STATUSES_PER_SECOND
            self._tokens = min(STATUSES_BURST, self._tokens + earned)
        self._at = now
        self._left = min(MAX_STATUSES_PER_RTCP, int(self._tokens))

    def take(self, wanted: int) -> int:
        """Up to `wanted` statuses of the current datagram's allowance: how many granted."""
        granted = min(wanted, self._left)
        self._left -= granted
        self._tokens -= granted
        return granted
