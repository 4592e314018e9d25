"""A page configures its peer connection with the ICE servers the server's Link headers name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.launcher import start_server, stop_server

if TYPE_CHECKING:
    from .conftest import Browsing

CONFIGURED = """async () => {
  const whip = await import("/whip.js");
  const pc = new RTCPeerConnection({ iceServers: await whip.iceServers("whip", "live/x") });
  const servers = pc.getConfiguration().iceServers;
  pc.close();
  return servers;
}"""


def test_page_takes_ice_servers_from_link_headers(browsing: Browsing, tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        "--ice-server",
        "stun:127.0.0.1:3478",
        "--ice-server",
        "turn:127.0.0.1:3478?transport=udp",
        "--turn-secret",
        "not-a-real-secret",
    )
    try:
        page = browsing.open(f"{server.http_url}/index.html", "links")
        servers: list[dict[str, Any]] = page.evaluate(CONFIGURED)
    finally:
        stop_server(server)
    urls = [s["urls"] if isinstance(s["urls"], str) else s["urls"][0] for s in servers]
    assert urls == ["stun:127.0.0.1:3478", "turn:127.0.0.1:3478?transport=udp"], servers
    turn = servers[1]
    assert turn["username"].endswith(":litesfu") and turn["credential"], turn
