"""Server-reflexive discovery: the server asks a STUN server, from its media socket, which
address it is seen at, and advertises that. The STUN server here is the test's own, on
127.0.0.1, and maps the server to 127.0.0.5 as a cloud's 1:1 NAT maps a VM to its public
address; ICE-TCP peers that connect only to 127.0.0.5, as the srflx candidates name it,
publish and play."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp

from bench.launcher import ServerProcess, start_server, stop_server
from sfu.wire import stun
from tests.integration.tcp_peer import TcpPeer, flow

PUBLIC = "127.0.0.5"


class MappingStunServer(asyncio.DatagramProtocol):
    """Answers every Binding request with PUBLIC and the port the request came from."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        msg = stun.parse(data)
        assert msg.msg_type == stun.BINDING_REQUEST
        self.requests += 1
        mapped = stun.encode_xor_address(PUBLIC, addr[1], msg.transaction_id)
        answer = stun.encode(
            stun.BINDING_SUCCESS, msg.transaction_id, [(stun.XOR_MAPPED_ADDRESS, mapped)]
        )
        assert self.transport is not None
        self.transport.sendto(answer, addr)


async def discovered(server: ServerProcess, within: float = 15) -> None:
    """Wait until the server logs what a STUN server told it."""
    deadline = time.monotonic() + within
    while "sees us at" not in server.log():
        assert time.monotonic() < deadline, server.log()
        await asyncio.sleep(0.05)


async def test_peers_reach_the_server_at_the_address_a_stun_server_saw(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    transport, responder = await loop.create_datagram_endpoint(
        MappingStunServer, local_addr=("127.0.0.1", 0)
    )
    stun_port = transport.get_extra_info("sockname")[1]
    server = start_server(
        tmp_path, "--candidate", f"stun:127.0.0.1:{stun_port}", advertise_host=False
    )
    try:
        await discovered(server)
        publisher, player = TcpPeer(True, PUBLIC), TcpPeer(False, PUBLIC)
        async with aiohttp.ClientSession() as http:
            port = await publisher.signal(http, server.http_url, "live/srflx")
            await player.signal(http, server.http_url, "live/srflx")
            await publisher.connect(port)
            await player.connect(port)
            await flow(publisher, player)
    finally:
        stop_server(server)
        transport.close()
    assert responder.requests >= 1
    log = server.log()
    assert f"sees us at {PUBLIC}:{server.udp_port}" in log
    assert log.count("ICE connected from tcp:127.0.0.1:") == 2, log
    assert "Traceback" not in log


async def test_the_srflx_candidate_leads_the_answer_with_its_base(tmp_path: Path) -> None:
    """Beside a STUN server that never answers, and an address typed in, which stays."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        MappingStunServer, local_addr=("127.0.0.1", 0)
    )
    silent, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
    )
    ports = [t.get_extra_info("sockname")[1] for t in (transport, silent)]
    server = start_server(
        tmp_path,
        "--candidate", f"stun:127.0.0.1:{ports[0]}",
        "--candidate", f"stun:localhost:{ports[1]}",
        "--candidate", "127.0.0.1",
    )  # fmt: skip
    try:
        await discovered(server)
        publisher = TcpPeer(True, PUBLIC)
        async with aiohttp.ClientSession() as http:
            await publisher.signal(http, server.http_url, "live/lines")
        lines = re.findall(r"a=candidate:[^\r\n]+", publisher.answer)
    finally:
        stop_server(server)
        transport.close()
        silent.close()
    udp = server.udp_port
    assert lines[0].endswith(f" {PUBLIC} {udp} typ srflx raddr 127.0.0.1 rport {udp}")
    assert " udp " in lines[0]
    assert f"127.0.0.1 {udp} typ host" in lines[1]
