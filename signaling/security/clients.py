"""State kept per client address: what a client is, a bounded table of them, token buckets.

A client is an IPv4 address or an IPv6 /64 (one host usually holds a whole /64). Every table
of clients is bounded: when full, the client seen least recently is forgotten, which can only
make the server more lenient to that client, never hold more memory.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

MAX_CLIENTS = 16384  # clients one table remembers at once
T = TypeVar("T")


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


@dataclass
class Bucket:
    """A token bucket: `rate` tokens a second up to `burst`, one taken per action."""

    tokens: float
    stamp: float

    def take(self, now: float, rate: float, burst: int) -> float:
        """Take a token: 0 if there was one, or the seconds until there will be."""
        elapsed = max(0.0, now - self.stamp)
        self.tokens = min(float(burst), self.tokens + elapsed * rate)
        self.stamp = now
        if self.tokens < 1:
            return (1 - self.tokens) / rate
        self.tokens -= 1
        return 0.0


class ClientTable(Generic[T]):
    """One `T` per client key, made by `make(now)` when first seen; at most `max_clients`."""

    def __init__(self, make: Callable[[float], T], max_clients: int = MAX_CLIENTS) -> None:
        self._make = make
        self.max_clients = max_clients
        self._clients: collections.OrderedDict[str, T] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, key: str, now: float) -> T:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._make(now)
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        self._clients.move_to_end(key)
        return client


class RateLimit:
    """How often each client may do one thing: `rate` a second, `burst` at once; 0 is off."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets = ClientTable(lambda now: Bucket(float(burst), now), max_clients)
        self.refused = 0

    def wait(self, address: str) -> int:
        """Take one action of `address`: 0 if allowed, else whole seconds to wait (>= 1)."""
        if not self.rate:
            return 0
        now = self._clock()
        wait = self._buckets.get(client_key(address), now).take(now, self.rate, self.burst)
        if not wait:
            return 0
        self.refused += 1
        return max(1, math.ceil(wait))
