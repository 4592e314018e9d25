"""A server behind 1:1 NAT, as on a cloud VM, reached at the address a STUN server saw.

The server runs in a network namespace (tests/browser/test_firefox.py's fixture: a veth pair
in 198.18.0.0/15). nftables inside the namespace stands for the cloud's 1:1 NAT: a "public"
address that no interface holds (from TEST-NET-2, routed by our end into the pair alone) is
DNATed to the server's address, and what the server sends out leaves SNATed to it.
The STUN server is the test's own, outside, and answers with whatever source it sees, so the
server learns the public address only by asking. Its only typed candidate is 127.0.0.1,
which is not reachable from outside, so aiortc peers outside can reach it only at the
discovered srflx candidate.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import aioice.ice
import pytest

from bench.launcher import start_server, stop_server
from sfu.wire import stun
from tests.browser.netns import Namespace, run_ip, skip_or_fail
from tests.browser.test_firefox import NFT, block_in_namespace, namespace
from tests.integration.peers import close_all, play, publish
from tests.integration.test_srflx import discovered

__all__ = ["namespace"]  # the fixture, imported to be used here


class ReflectingStunServer(asyncio.DatagramProtocol):
    """Answers a Binding request with the address it came from, as any STUN server does."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: list[tuple[str, int]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = stun.parse(data)
        self.seen.append(addr)
        mapped = [(stun.XOR_MAPPED_ADDRESS, stun.encode_xor_address(*addr, msg.transaction_id))]
        assert self.transport is not None
        self.transport.sendto(stun.encode(stun.BINDING_SUCCESS, msg.transaction_id, mapped), addr)


@pytest.fixture
def public_address(namespace: Namespace) -> Iterator[str]:
    """The pair's spare address, NATed 1:1 to the server's inside the namespace."""
    if not Path(NFT).exists():
        skip_or_fail(f"{NFT} not installed (run scripts/install-nftables.sh)")
    # A TEST-NET-2 address (the pair's /30 has no spare one), routed into the pair only; never
    # one of a network this host is on, whose neighbour the route would take over.
    public = f"198.51.100.{2 + os.getpid() % 250}"
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, timeout=10)
    if "198.51.100." in routes.stdout:
        skip_or_fail("198.51.100.0/24 is routed on this host; no address to stand for public")
    rules = (
        "table ip litesfu_one_to_one {\n"
        " chain pre {\n  type nat hook prerouting priority -100;\n"
        f"  ip daddr {public} dnat to {namespace.inside}\n }}\n"
        " chain post {\n  type nat hook postrouting priority 100;\n"
        f"  ip saddr {namespace.inside} ip daddr {namespace.outside} snat to {public}\n }}\n"
        "}\n"
    )
    block_in_namespace(namespace, rules)
    try:
        # Through the server's end of the pair, as a cloud routes its public addresses.
        run_ip("route", "replace", f"{public}/32", "via", namespace.inside)
        yield public
    finally:
        with contextlib.suppress(OSError):
            run_ip("route", "del", f"{public}/32", "via", namespace.inside)
        subprocess.run(
            [*namespace.exec_prefix(), NFT, "delete", "table", "ip", "litesfu_one_to_one"],
            capture_output=True,
            timeout=10,
        )


async def test_publish_and_play_through_the_discovered_address(
    namespace: Namespace, public_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The peers gather our end of the pair (not the suite's loopback), as a client outside would.
    monkeypatch.setattr(
        aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: [namespace.outside]
    )
    loop = asyncio.get_running_loop()
    transport, stun_server = await loop.create_datagram_endpoint(
        ReflectingStunServer, local_addr=(namespace.outside, 0)
    )
    stun_port = transport.get_extra_info("sockname")[1]
    server = start_server(
        tmp_path,
        "--candidate", f"stun:{namespace.outside}:{stun_port}",
        "--candidate", "127.0.0.1",
        "--tcp-port", "0",
        "--no-http-ice-tcp",
        host=namespace.inside,
        prefix=namespace.exec_prefix(),
        advertise_host=False,
    )  # fmt: skip
    try:
        await discovered(server)
        async with aiohttp.ClientSession() as http:
            publisher = await publish(http, server.http_url, "live/nat")
            player = await play(http, server.http_url, "live/nat")
            try:
                assert f" {public_address} {server.udp_port} typ srflx" in player.answer
                addresses = re.findall(r"a=candidate:\S+ \d \w+ \d+ (\S+)", player.answer)
                assert namespace.inside not in addresses, addresses  # only in raddr
                assert await player.wait_for("video", 20, timeout=30), player.frames
            finally:
                await close_all(publisher, player)
    finally:
        stop_server(server)
        transport.close()
    assert stun_server.seen and {host for host, _ in stun_server.seen} == {public_address}
    log = server.log()
    assert log.count(f"ICE connected from {namespace.outside}:") == 2, log
    assert "Traceback" not in log
