"""The domain name of a request's Host header as a candidate, SRS-style, as an opt-in.

Browsers need HTTPS for the camera, and HTTPS needs a name, so a real deployment is reached by
name, and the automatic candidates' Host-literal lead never applies. A server behind 1:1 NAT
then has its public address in DNS only. With `--candidate-from-host resolve` the name is
resolved (asynchronously, cached, bounded) and its addresses lead the candidates; with `name`
the name itself leads, as an FQDN candidate for the browser to resolve (RFC 8839 §5.1).

The name comes from any client, so nothing about it is unbounded: at most MAX_NAMES are
cached for TTL seconds (failures too), at most MAX_LOOKUPS resolve at once, each within
LOOKUP_TIMEOUT, and a request never waits for more than one lookup.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import re
import time
from collections.abc import Awaitable, Callable

OFF, RESOLVE, NAME = "off", "resolve", "name"
MODES = (OFF, RESOLVE, NAME)
MAX_NAMES = 64
TTL = 60.0
MAX_LOOKUPS = 4
LOOKUP_TIMEOUT = 2.0
MAX_ADDRESSES = 4  # addresses of one name that lead the candidates
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_NAME = re.compile(rf"^(?:{_LABEL}\.)+[a-z]{{2,63}}$")


def host_name(host_header: str | None) -> str | None:
    """The DNS name of a Host header ("sfu.example.net:8443" -> "sfu.example.net"), or None
    for an IP literal, a single label (localhost) or anything that is not a valid name."""
    if not host_header or len(host_header) > 260 or host_header.startswith("["):
        return None
    name = host_header.rpartition(":")[0] if ":" in host_header else host_header
    name = name.lower().removesuffix(".")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name if len(name) <= 253 and _NAME.match(name) else None
    return None


async def system_lookup(name: str) -> list[str]:
    """The addresses the system resolver gives for `name`, IPv4 first."""
    infos = await asyncio.get_running_loop().getaddrinfo(name, None)
    found = dict.fromkeys(str(info[4][0]) for info in infos)
    return sorted(found, key=lambda a: ":" in a)


class HostNames:
    """Names resolved to addresses, cached (failures as empty lists) in a bounded table."""

    def __init__(
        self,
        lookup: Callable[[str], Awaitable[list[str]]] = system_lookup,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        self._cache: collections.OrderedDict[str, tuple[float, list[str]]] = (
            collections.OrderedDict()
        )
        self._running: dict[str, asyncio.Task[list[str]]] = {}
        self.lookups = 0
        self.failures = 0
        self.refused = 0  # not looked up: MAX_LOOKUPS were under way

    def addresses(self, name: str) -> list[str]:
        """What `name` resolved to, if that is known and fresh; else nothing."""
        entry = self._cache.get(name)
        if entry is None or self._clock() - entry[0] > TTL:
            return []
        return entry[1]

    async def prepare(self, name: str) -> None:
        """Resolve `name` unless a fresh answer is cached; wait at most LOOKUP_TIMEOUT."""
        entry = self._cache.get(name)
        if entry is not None and self._clock() - entry[0] <= TTL:
            return
        task = self._running.get(name)
        if task is None:
            if len(self._running) >= MAX_LOOKUPS:
                self.refused += 1
                return
            task = asyncio.ensure_future(self._resolve(name))
            self._running[name] = task
            task.add_done_callback(lambda _: self._running.pop(name, None))
        await asyncio.wait([task], timeout=LOOKUP_TIMEOUT)

    async def _resolve(self, name: str) -> list[str]:
        self.lookups += 1
        try:
            found = (await asyncio.wait_for(self._lookup(name), LOOKUP_TIMEOUT))[:MAX_ADDRESSES]
        except (OSError, asyncio.TimeoutError, UnicodeError):
            self.failures += 1
            found = []
        self._cache[name] = (self._clock(), found)
        self._cache.move_to_end(name)
        while len(self._cache) > MAX_NAMES:
            self._cache.popitem(last=False)
        return found
