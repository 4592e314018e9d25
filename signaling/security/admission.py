"""Per-client admission: how fast one address may create sessions and how many it may leave
half-open, checked before its offer is read, so one client in a loop cannot fill the server.

Clients and their bounded table are those of signaling.security.clients.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from signaling.security.clients import MAX_CLIENTS, Bucket, ClientTable, client_key

PENDING_STATES = frozenset({"new", "connecting"})  # Router.session_state of a half-open session


@dataclass(frozen=True)
class AdmissionPolicy:
    """Per-client caps; 0 turns one off. The defaults never bother a real user."""

    max_pending: int = 20  # sessions created but not yet connected
    rate: float = 10.0  # sessions created per second, sustained
    burst: int = 20  # sessions created at once after a quiet spell


@dataclass
class Refusal:
    """Why a client must wait, and for how many seconds (for Retry-After)."""

    reason: str
    retry_after: int
    kind: str  # "rate" or "pending": the counter it adds to


@dataclass
class _Client:
    bucket: Bucket
    pending: set[str] = field(default_factory=set)


class Admission:
    """A token bucket and a set of half-open sessions per client."""

    def __init__(
        self,
        policy: AdmissionPolicy | None = None,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or AdmissionPolicy()
        self._clock = clock
        burst = float(self.policy.burst)
        self._clients = ClientTable(lambda now: _Client(Bucket(burst, now)), max_clients)
        self.refused: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self._clients)

    def check(self, address: str, state: Callable[[str], str | None]) -> Refusal | None:
        """Take one creation from `address`'s bucket, or say why not. `state` is the router's
        session_state, to tell which of the client's sessions are still half-open."""
        policy = self.policy
        key = client_key(address)
        now = self._clock()
        client = self._clients.get(key, now)
        client.pending = {s for s in client.pending if state(s) in PENDING_STATES}
        if policy.max_pending and len(client.pending) >= policy.max_pending:
            return self._refuse(
                "pending",
                f"{key} has {len(client.pending)} sessions not yet connected; "
                f"the limit is {policy.max_pending}",
                5,
            )
        wait = client.bucket.take(now, policy.rate, policy.burst) if policy.rate else 0.0
        if wait:
            return self._refuse(
                "rate", f"too many new sessions from {key}: {policy.rate:g}/s", math.ceil(wait)
            )
        return None

    def _refuse(self, kind: str, reason: str, retry_after: int) -> Refusal:
        self.refused[kind] += 1
        return Refusal(reason, max(1, retry_after), kind)

    def created(self, address: str, session_id: str) -> None:
        """Count a new session as half-open for its client until it connects or ends."""
        self._clients.get(client_key(address), self._clock()).pending.add(session_id)


def forwarded_client(x_forwarded_for: str | None) -> str | None:
    """The address the reverse proxy saw: the right-most X-Forwarded-For entry, which the proxy
    itself appended (entries left of it come from the client and prove nothing)."""
    if not x_forwarded_for:
        return None
    last = x_forwarded_for.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None
