"""ICE-TCP fairness on real loopback sockets: one address cannot hold more than its share, and
connections that never authenticated give way to newcomers when the table is full, those of
the address holding the most first.

The demux here binds a connection's address when it sends the frame `AUTH`, standing in for an
authenticated check; tests/integration/test_ice_tcp.py drives the real demux and sessions.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time

import pytest

from sfu.io.tcp import TcpListener, client_key
from sfu.session.transport import Address
from sfu.wire.framing import frame

AUTH = b"\x00auth"
Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class BindingDemux:
    """Binds the address of whatever sends AUTH, as a valid check binds a session."""

    def __init__(self) -> None:
        self.drops: collections.Counter[str] = collections.Counter()
        self.bound_addresses: set[Address] = set()

    def datagram_received(self, data: bytes, addr: Address, now: float) -> None:
        if data == AUTH:
            self.bound_addresses.add(addr)

    def bound(self, addr: Address) -> bool:
        return addr in self.bound_addresses


async def listening(max_connections: int, per_address: int) -> tuple[TcpListener, BindingDemux]:
    demux = BindingDemux()
    listener = TcpListener(demux, max_connections=max_connections, per_address=per_address)
    await listener.open("127.0.0.1", 0)
    return listener, demux


async def connect(listener: TcpListener, source: str = "127.0.0.1") -> Stream:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", listener.port))
    return await asyncio.open_connection(sock=sock)


def listener_address(stream: Stream) -> Address:
    """The address the listener knows a client's connection by."""
    host, port = stream[1].get_extra_info("sockname")
    return (f"tcp:{host}", port)


async def settle(condition, what: str) -> None:
    """Let the server's loop turns run until `condition()` holds, for at most 2 s."""
    deadline = time.monotonic() + 2
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


async def closed(stream: Stream) -> bool:
    """Whether the server has closed this connection (EOF or reset within 2 s)."""
    try:
        return await asyncio.wait_for(stream[0].read(), 2) == b""
    except ConnectionResetError:
        return True


def test_client_key_counts_ipv6_by_its_64() -> None:
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2::7") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::7") != client_key("2001:db8:1:2::7")
    assert client_key("fe80::1%eth0") == "fe80::/64"


async def test_one_address_holds_at_most_its_share() -> None:
    listener, demux = await listening(max_connections=10, per_address=3)
    try:
        streams = [await connect(listener) for _ in range(5)]
        await settle(lambda: demux.drops["tcp_address_limit"] == 2, "two refused")
        assert len(listener.connections) == 3
        assert await closed(streams[3]) and await closed(streams[4])
        other = await connect(listener, "127.0.0.2")
        await settle(lambda: len(listener.connections) == 4, "the other address admitted")
        assert listener.per_client == {"127.0.0.1": 3, "127.0.0.2": 1}
        other[1].close()
        await settle(lambda: len(listener.connections) == 3, "a closed connection's slot freed")
        assert listener.per_client == {"127.0.0.1": 3}
    finally:
        listener.close()


async def test_full_table_pushes_out_the_oldest_unauthenticated() -> None:
    listener, demux = await listening(max_connections=3, per_address=3)
    try:
        first = await connect(listener)
        first[1].write(frame(AUTH))  # authenticated: it keeps its slot
        await settle(lambda: not listener.unauthenticated, "the first authenticated")
        idle = [await connect(listener) for _ in range(2)]
        await settle(lambda: len(listener.connections) == 3, "the table full")
        newcomer = await connect(listener, "127.0.0.2")
        assert await closed(idle[0])  # the oldest idle one made room
        await settle(lambda: len(listener.connections) == 3, "the newcomer admitted")
        assert demux.drops["tcp_unauthenticated_evicted"] == 1
        newcomer[1].write(frame(AUTH))
        idle[1][1].write(frame(AUTH))
        await settle(lambda: not listener.unauthenticated, "all authenticated")
        # Every slot now carries a session: a newcomer is refused, nobody is pushed out.
        late = await connect(listener, "127.0.0.2")
        assert await closed(late)
        assert demux.drops["tcp_connection_limit"] == 1
        kept = {listener_address(s) for s in (first, idle[1], newcomer)}
        assert set(listener.connections) == kept
    finally:
        listener.close()


async def test_the_address_holding_most_gives_way_first() -> None:
    listener, demux = await listening(max_connections=4, per_address=4)
    try:
        oldest = await connect(listener, "127.0.0.2")  # a client still starting up
        flood = [await connect(listener) for _ in range(3)]
        await settle(lambda: len(listener.connections) == 4, "the table full")
        newcomer = await connect(listener, "127.0.0.3")
        assert await closed(flood[0])  # not the oldest of all: the flooding address's
        await settle(lambda: demux.drops["tcp_unauthenticated_evicted"] == 1, "one evicted")
        assert {listener_address(oldest), listener_address(newcomer)} <= set(listener.connections)
        assert listener.per_client == {"127.0.0.1": 2, "127.0.0.2": 1, "127.0.0.3": 1}
    finally:
        listener.close()


async def test_refusals_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    listener, demux = await listening(max_connections=10, per_address=1)
    try:
        with caplog.at_level(logging.INFO, logger="sfu.io.tcp"):
            streams = [await connect(listener) for _ in range(21)]
            await settle(lambda: demux.drops["tcp_address_limit"] == 20, "twenty refused")
        lines = [r for r in caplog.records if "refused or pushed out" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        for stream in streams:
            stream[1].close()
    finally:
        listener.close()


async def test_closing_an_unused_connection_is_housekeeping_not_a_drop() -> None:
    demux = BindingDemux()
    listener = TcpListener(demux, unused_timeout=0.05)
    await listener.open("127.0.0.1", 0)
    try:
        used, unused = await connect(listener), await connect(listener)
        used[1].write(frame(AUTH))
        assert await closed(unused)
        assert listener.housekeeping["tcp_unused_closed"] == 1
        assert demux.drops == {}  # drops mean traffic refused or lost, and none was
        await asyncio.sleep(0.2)  # the used one outlives several checks
        assert listener.housekeeping["tcp_unused_closed"] == 1
        assert listener_address(used) in listener.connections
    finally:
        listener.close()
