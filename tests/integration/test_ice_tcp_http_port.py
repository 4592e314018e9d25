"""One TCP port for everything: ICE-TCP on the HTTP(S) port, told apart by the first bytes.

The server is started with no ICE-TCP port of its own (--tcp-port 0), so the only TCP
candidate its answers carry is the API's port; the sans-IO ICE-TCP peers publish and play
through it while HTTP (and HTTPS, whose ClientHello must reach TLS whole) keep working there.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from bench.launcher import start_server, stop_server
from tests.integration.tcp_peer import TcpPeer, flow, open_stream, server_json
from tests.integration.test_https import self_signed


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_publish_and_play_over_ice_tcp_on_the_http_port(tmp_path: Path, scheme: str):
    tls: tuple[str, ...] = ()
    if scheme == "https":
        cert, key = self_signed(tmp_path)
        tls = ("--tls-cert", str(cert), "--tls-key", str(key))
    server = start_server(tmp_path, "--tcp-port", "0", *tls, scheme=scheme)
    http_port = urlsplit(server.http_url).port
    try:
        publisher, player = TcpPeer(publishing=True), TcpPeer(publishing=False)
        connector = aiohttp.TCPConnector(ssl=False)
        async with aiohttp.ClientSession(connector=connector) as http:
            assert await publisher.signal(http, server.http_url, "live/one-port") == http_port
            assert await player.signal(http, server.http_url, "live/one-port") == http_port
            await publisher.connect(http_port)
            await player.connect(http_port)
            await flow(publisher, player)
            (stream,) = (await server_json(http, f"{server.http_url}/api/v1/streams"))["streams"]
            assert stream["publisher_details"]["transport"] == "tcp"
            if scheme == "https":
                return
            # A connection that sends a partial frame header and then nothing is closed when
            # it cannot be told apart in time, and counted.
            reader, writer = await open_stream(http_port)
            writer.write(b"\x00\x50\x00")
            with contextlib.suppress(ConnectionResetError):  # unread bytes: a reset
                assert await reader.read() == b""
            drops = (await server_json(http, f"{server.http_url}/api/v1/server"))["drops"]
            assert drops["shared_port_undecided_closed"] == 1
    finally:
        stop_server(server)
    log = server.log()
    assert "also takes ICE-TCP" in log and "ICE-TCP listening" not in log
    assert log.count("ICE connected from tcp:127.0.0.1:") == 2, log
    assert "Traceback" not in log
