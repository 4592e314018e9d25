"""Per-client admission: how fast one address may create sessions and how many it may leave
half-open, checked before its offer is read, so one client in a loop cannot fill the server.

A client is an IPv4 address or an IPv6 /64 (one host usually holds a whole /64). The table of
clients is bounded: when full, the client seen least recently is forgotten.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_CLIENTS = 16384  # clients remembered at once
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
    tokens: float
    stamp: float
    pending: set[str] = field(default_factory=set)


def client_key(address: str) -> str:
    """The unit limits apply to: the IPv4 address, or the /64 of an IPv6 one."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


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
        self.max_clients = max_clients
        self._clock = clock
        self._clients: collections.OrderedDict[str, _Client] = collections.OrderedDict()
        self.refused: collections.Counter[str] = collections.Counter()

    def __len__(self) -> int:
        return len(self._clients)

    def _client(self, key: str, now: float) -> _Client:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _Client(float(self.policy.burst), now)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        self._clients.move_to_end(key)
        return client

    def check(self, address: str, state: Callable[[str], str | None]) -> Refusal | None:
        """Take one creation from `address`'s bucket, or say why not. `state` is the router's
        session_state, to tell which of the client's sessions are still half-open."""
        policy = self.policy
        key = client_key(address)
        now = self._clock()
        client = self._client(key, now)
        client.pending = {s for s in client.pending if state(s) in PENDING_STATES}
        if policy.max_pending and len(client.pending) >= policy.max_pending:
            return self._refuse(
                "pending",
                f"{key} has {len(client.pending)} sessions not yet connected; "
                f"the limit is {policy.max_pending}",
                5,
            )
        if policy.rate:
            elapsed = max(0.0, now - client.stamp)
            client.tokens = min(float(policy.burst), client.tokens + elapsed * policy.rate)
            client.stamp = now
            if client.tokens < 1:
                wait = math.ceil((1 - client.tokens) / policy.rate)
                return self._refuse(
                    "rate", f"too many new sessions from {key}: {policy.rate:g}/s", wait
                )
            client.tokens -= 1
        return None

    def _refuse(self, kind: str, reason: str, retry_after: int) -> Refusal:
        self.refused[kind] += 1
        return Refusal(reason, max(1, retry_after), kind)

    def created(self, address: str, session_id: str) -> None:
        """Count a new session as half-open for its client until it connects or ends."""
        self._client(client_key(address), self._clock()).pending.add(session_id)


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
