"""The media port on both IP families: an IPv6 socket beside the IPv4 wildcard one, on the
same port, and sends that take the socket of the destination's family."""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from sfu.io.udp import IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, UdpEndpoint
from sfu.session.table import SessionTable
from sfu.session.transport import Address


class Recording(UdpEndpoint):
    """The real endpoint, noting the address each datagram arrived from."""

    def __init__(self) -> None:
        super().__init__(SessionTable())
        self.seen: list[Address] = []

    def datagram_received(self, data: bytes, addr: Address, now: float) -> None:
        self.seen.append(addr)
        super().datagram_received(data, addr, now)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_wildcard_port_takes_both_families_and_sends_by_family() -> None:
    endpoint = Recording()
    endpoint.open("0.0.0.0", 0, 1 << 20)
    try:
        assert endpoint.sock is not None and endpoint.sock6 is not None and endpoint.ipv6
        port = endpoint.port
        assert endpoint.sock6.getsockname()[1] == port
        assert endpoint.sendto_for(("::1", 9)).__self__ is endpoint.sock6
        assert endpoint.sendto_for(("127.0.0.1", 9)).__self__ is endpoint.sock
        assert endpoint.sendto_for(("tcp:127.0.0.1", 9)) == endpoint.send
        assert endpoint.sendto_for(None) == endpoint.send
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as v4,
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6,
        ):
            v4.bind(("127.0.0.1", 0))
            v6.bind(("::1", 0))
            v6.settimeout(2)
            v4.sendto(b"\xff not media", ("127.0.0.1", port))
            v6.sendto(b"\xff not media", ("::1", port))
            for _ in range(100):  # bounded: at most 1 s for both to arrive
                if len(endpoint.seen) == 2:
                    break
                await asyncio.sleep(0.01)
            assert sorted(endpoint.seen) == sorted(
                [("127.0.0.1", v4.getsockname()[1]), ("::1", v6.getsockname()[1])]
            )  # plain (host, port) pairs, whatever the family
            assert endpoint.drops["unclassified"] == 2
            endpoint.send(b"hello", ("::1", v6.getsockname()[1]))
            assert v6.recv(100) == b"hello"
            assert endpoint.datagrams_out == 1
    finally:
        endpoint.close()
    assert endpoint.sock is None and endpoint.sock6 is None


async def test_a_specific_ipv4_host_has_no_ipv6_socket() -> None:
    endpoint = UdpEndpoint(SessionTable())
    endpoint.open("127.0.0.1", 0, 1 << 20)
    try:
        assert endpoint.sock6 is None and not endpoint.ipv6
        assert endpoint.sendto_for(("::1", 9)).__self__ is endpoint.sock
    finally:
        endpoint.close()


@pytest.mark.skipif(sys.platform != "linux", reason="IP_MTU_DISCOVER is Linux's")
async def test_ipv4_media_leaves_with_dont_fragment_and_still_arrives() -> None:
    endpoint = UdpEndpoint(SessionTable())
    endpoint.open("127.0.0.1", 0, 1 << 20)
    try:
        assert endpoint.sock is not None
        mode = endpoint.sock.getsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER)
        assert mode == IP_PMTUDISC_PROBE
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(2)
            endpoint.send(bytes(1400), peer.getsockname())
            assert peer.recv(2000) == bytes(1400)
    finally:
        endpoint.close()
