"""The bad minute, in Chromium: publish and play pages that recover by themselves.

- The server is killed (SIGKILL) and started again on the same ports: both pages notice,
  say "reconnecting…", publish and play anew, and the player decodes new frames; neither
  page reloads, and the server ends with one publisher and one player.
- The media port goes dark (nftables drops its UDP and ICE-TCP for 8 s, more than the 3 s
  the pages wait on `disconnected`): the pages restart ICE by PATCH and keep their session
  URL. HTTP stays up, as it does when only the media path breaks.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bench.launcher import ServerProcess, free_media_port, free_port, start_server, stop_server

from .test_pages import FIRST_MEDIA_S, start_playing, start_publishing

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(180)
NFT = "/usr/sbin/nft"
RECONNECTING = "reconnecting…"
RECOVERY_S = 40.0  # generous on two busy cores; the test prints what it took
BLACKOUT_S = 8.0
# What Chromium logs while the server is down: failed fetches, not page errors.
DOWN_ERRORS = [r"Failed to load resource", r"net::ERR_", r"Failed to fetch"]


class Restartable:
    """A server on pinned ports that a test may kill and start again where it was."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.ports = (free_port(), free_media_port())
        self.starts = 0
        self.current = self._start()

    def _start(self) -> ServerProcess:
        self.starts += 1
        log_dir = self.tmp_path / f"start-{self.starts}"
        log_dir.mkdir()
        return start_server(log_dir, ports=self.ports)

    @property
    def http_url(self) -> str:
        return self.current.http_url

    @property
    def udp_port(self) -> int:
        return self.current.udp_port

    def log(self) -> str:
        return self.current.log()

    def kill(self) -> None:
        self.current.process.kill()
        self.current.process.wait(timeout=10)

    def start_again(self) -> None:
        self.current = self._start()


@pytest.fixture
def sfu_server(tmp_path: Path) -> Iterator[Restartable]:
    server = Restartable(tmp_path)
    yield server
    stop_server(server.current)
    assert "Traceback" not in server.log(), server.log()


def stream_info(base: str, name: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/api/v1/streams", timeout=5) as answer:
        streams = json.load(answer)["streams"]
    return next((s for s in streams if s["name"] == name), {})


def status_of(browsing: Browsing, page: Any) -> str:
    return page.text_content("#status") or ""


def test_pages_come_back_after_the_server_restarts(
    browsing: Browsing, sfu_server: Restartable
) -> None:
    browsing.expected_console_errors = DOWN_ERRORS
    base, stream = sfu_server.http_url, "live/phoenix"
    publisher = start_publishing(browsing, base, stream, "publisher")
    player = start_playing(browsing, base, stream)
    for page in (publisher, player):
        page.evaluate("() => { window.sameDocument = true; }")

    sfu_server.kill()
    for name, page in (("publisher", publisher), ("player", player)):
        browsing.wait_for(
            f"the {name} page to say it is reconnecting",
            lambda page=page: status_of(browsing, page),
            lambda text: text.endswith(RECONNECTING),
            20,
        )
    frames_before = browsing.stats(player)["framesDecoded"]
    sfu_server.start_again()
    up = time.monotonic()
    _, took = browsing.wait_for(
        "the player to decode new frames from the restarted server",
        lambda: browsing.stats(player),
        lambda s: s["framesDecoded"] >= frames_before + 10 and s["state"] == "connected",
        RECOVERY_S,
    )
    print(f"player decoding again {took:.1f} s after the server was back")
    assert time.monotonic() - up < RECOVERY_S
    for page in (publisher, player):
        assert page.evaluate("() => window.sameDocument") is True  # never reloaded
    browsing.wait_for(
        "one publisher and one player on the new server",
        lambda: stream_info(base, stream),
        lambda s: s.get("players") == 1 and s.get("publishing"),
        10,
    )
    assert browsing.stats(publisher)["renewals"] >= 1
    browsing.screenshot(player, "play-after-restart")


@contextlib.contextmanager
def media_blackout(port: int) -> Iterator[None]:
    """Drop UDP and TCP to and from the media port on this machine (loopback) meanwhile."""
    if not Path(NFT).exists():
        reason = f"{NFT} not installed (run scripts/install-nftables.sh)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    table = f"litesfu_blackout_{os.getpid()}"
    rules = (
        f"table inet {table} {{\n"
        "  chain input { type filter hook input priority 0;\n"
        f"    udp dport {port} drop\n    tcp dport {port} drop\n"
        f"    udp sport {port} drop\n    tcp sport {port} drop\n  }}\n}}\n"
    )
    added = subprocess.run(
        [NFT, "-f", "-"], input=rules, capture_output=True, text=True, timeout=10
    )
    if added.returncode != 0:
        pytest.fail(f"cannot add the blackout rules: {added.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run([NFT, "delete", "table", "inet", table], capture_output=True, timeout=10)


def test_a_media_blackout_is_survived_by_ice_restart(
    browsing: Browsing, sfu_server: Restartable
) -> None:
    base, stream = sfu_server.http_url, "live/tunnel"
    publisher = start_publishing(browsing, base, stream, "publisher")
    player = start_playing(browsing, base, stream)
    before = {name: browsing.stats(page) for name, page in (("pub", publisher), ("play", player))}
    with media_blackout(sfu_server.udp_port):
        browsing.wait_for(
            "the player to say it is reconnecting",
            lambda: status_of(browsing, player),
            lambda text: text.endswith(RECONNECTING),
            BLACKOUT_S + 5,
        )
        time.sleep(max(0.0, BLACKOUT_S - 6))  # the rest of the blackout
    frames = before["play"]["framesDecoded"]
    after, took = browsing.wait_for(
        "the player to decode again on the same session",
        lambda: browsing.stats(player),
        lambda s: s["framesDecoded"] >= frames + 10 and s["state"] == "connected",
        FIRST_MEDIA_S + 10,
    )
    print(f"player decoding again {took:.1f} s after the blackout, {after['restarts']} restarts")
    assert after["sessionUrl"] == before["play"]["sessionUrl"]  # the same Location
    assert after["restarts"] >= 1 and after["sessions"] == 1
    published = browsing.stats(publisher)
    assert published["sessionUrl"] == before["pub"]["sessionUrl"]
    assert published["renewals"] == 0
