"""Shared fixtures: the real server as a subprocess on 127.0.0.1, on free ports."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel just handed out on 127.0.0.1 (free for the moment)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_media_port() -> int:
    """A UDP port whose TCP namesake is free too: ICE-TCP listens on the same number."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP in 50 tries")


@dataclass
class ServerProcess:
    """A running `python -m sfu` and where to reach it."""

    process: subprocess.Popen
    http_url: str
    udp_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    tmp_path: Path,
    *extra_args: str,
    host: str = "127.0.0.1",
    prefix: Sequence[str] = (),
    advertise_host: bool = True,
    scheme: str = "http",
) -> ServerProcess:
    """Start the server and wait (at most 20 s) until its HTTP API answers.

    `host` is where HTTP listens and, with `advertise_host`, the one media candidate it
    advertises (without, the server picks its own default candidates); `prefix` goes before
    the command, e.g. `ip netns exec NAME` to run it inside a network namespace; `scheme` is
    "https" for a server given a certificate (any certificate: the probe does not verify it).
    """
    http_port = free_port()
    udp_port = free_media_port()
    log_path = tmp_path / f"server-{http_port}.log"
    args = [
        *prefix,
        sys.executable,
        "-m",
        "sfu",
        "--http-host",
        host,
        "--http-port",
        str(http_port),
        "--udp-port",
        str(udp_port),
        *(("--candidate", host) if advertise_host else ()),
        *extra_args,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}
        )
    url = f"{scheme}://{host}:{http_port}"
    # The probe trusts whatever certificate a test server was given.
    probe_tls = ssl._create_unverified_context() if scheme == "https" else None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(
                url + "/api/v1/streams", timeout=1, context=probe_tls
            ) as response:
                if response.status == 200:
                    return ServerProcess(process, url, udp_port, log_path)
        except urllib.error.HTTPError as refused:
            if refused.code == 401:  # the stats need a token: the server is up all the same
                return ServerProcess(process, url, udp_port, log_path)
            time.sleep(0.1)
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not answer in 20 s:\n{log_path.read_text()}")


def stop_server(server: ServerProcess) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)


@pytest.fixture
def sfu_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server for one test."""
    server = start_server(tmp_path)
    yield server
    stop_server(server)
    assert "Traceback" not in server.log(), server.log()
