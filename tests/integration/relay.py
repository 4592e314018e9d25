"""A UDP relay on 127.0.0.1 between one client and the server, to make a network misbehave:
drop chosen packets in either direction, move to a new source port (NAT rebinding), or be a
bottleneck towards the client (a rate with a short queue, tail-dropping past it)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

Drop = Callable[[bytes], bool]


def never(data: bytes) -> bool:
    return False


def is_rtp(data: bytes) -> bool:
    """SRTP media, not SRTCP (RFC 5761 §4: RTCP types 192-223 in the second byte)."""
    return len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 224


def rtp_sequence(data: bytes) -> int:
    return data[2] << 8 | data[3]


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.on_datagram(data, addr)


class Relay:
    """Client -> relay port -> (upstream socket) -> server, and back."""

    def __init__(
        self,
        server: tuple[str, int],
        drop_to_server: Drop = never,
        drop_to_client: Drop = never,
    ) -> None:
        self.server = server
        self.drop_to_server = drop_to_server
        self.drop_to_client = drop_to_client
        self.client: tuple | None = None
        self.front: asyncio.DatagramTransport | None = None
        self.upstream: asyncio.DatagramTransport | None = None
        self.forwarded = {"to_server": 0, "to_client": 0}
        self.dropped = {"to_server": 0, "to_client": 0}
        self.rate_to_client = 0.0  # bits per second towards the client; 0: no bottleneck
        self.queue_to_client = 0.2  # seconds of queue before the bottleneck drops
        self.over_rate = 0  # packets the bottleneck dropped
        self._busy_until = 0.0

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.front, _ = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_client), local_addr=("127.0.0.1", 0)
        )
        await self.rebind()
        return self.front.get_extra_info("sockname")[1]

    async def rebind(self) -> int:
        """Talk to the server from a new source port from now on, as a NAT that rebinds."""
        loop = asyncio.get_running_loop()
        old = self.upstream
        self.upstream, _ = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_server), local_addr=("127.0.0.1", 0)
        )
        if old is not None:
            old.close()
        return self.upstream.get_extra_info("sockname")[1]

    def _from_client(self, data: bytes, addr: tuple) -> None:
        self.client = addr
        if self.drop_to_server(data):
            self.dropped["to_server"] += 1
        elif self.upstream is not None:
            self.forwarded["to_server"] += 1
            self.upstream.sendto(data, self.server)

    def _from_server(self, data: bytes, addr: tuple) -> None:
        if self.client is None or self.front is None:
            return
        if self.drop_to_client(data):
            self.dropped["to_client"] += 1
            return
        now = time.monotonic()
        start = max(now, self._busy_until)
        if self.rate_to_client:
            if start - now > self.queue_to_client:
                self.over_rate += 1
                return
            self._busy_until = start + 8 * len(data) / self.rate_to_client
        self.forwarded["to_client"] += 1
        if self._busy_until <= now:
            self.front.sendto(data, self.client)
            return
        # Queued behind the bottleneck (or what it still holds after being lifted): in order.
        asyncio.get_running_loop().call_later(
            self._busy_until - now, self.front.sendto, data, self.client
        )

    def close(self) -> None:
        for transport in (self.front, self.upstream):
            if transport is not None:
                transport.close()


def through_relay(answer: str, relay_port: int) -> str:
    """The answer with its host candidates (and m= ports) pointing at the relay."""
    answer = re.sub(
        r"(a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1 )\d+", rf"\g<1>{relay_port}", answer
    )
    return re.sub(r"^(m=\w+ )(?!0 )\d+", rf"\g<1>{relay_port}", answer, flags=re.MULTILINE)
