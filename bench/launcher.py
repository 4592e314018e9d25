"""Start and stop `python -m sfu` as a subprocess on free loopback ports.

The one launcher the tests (tests/conftest.py) and the benchmarks (bench.sweep, bench.compare)
share, so a server they start always gets the same flags, the same readiness probe and the
same way out.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0  # seconds a server has to answer its API (generous: CI has 2 busy cores)
LOG_TAIL_LINES = 60  # of a server's log, in the error raised when it fails to start


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

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def start_server(
    log_dir: Path,
    *extra_args: str,
    host: str = "127.0.0.1",
    prefix: Sequence[str] = (),
    advertise_host: bool = True,
    scheme: str = "http",
    root: Path = ROOT,
    ports: tuple[int, int] | None = None,
) -> ServerProcess:
    """Start the server of the checkout at `root` and wait until its HTTP API answers.

    Its log goes to `log_dir`/server-PORT.log. `host` is where HTTP listens and, with
    `advertise_host`, the one media candidate it advertises (without, the server picks its own
    default candidates); `prefix` goes before the command, e.g. `ip netns exec NAME` to run it
    inside a network namespace; `scheme` is "https" for a server given a certificate (any
    certificate: the probe does not verify it). `extra_args` come last, so they may override
    the ports chosen here (`--udp-port 0` for workers). `ports` (HTTP, UDP) pins both, to
    start a server again where its clients knew it.
    """
    http_port, udp_port = ports or (free_port(), free_media_port())
    log_path = log_dir / f"server-{http_port}.log"
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
        process = subprocess.Popen(args, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(process, f"{scheme}://{host}:{http_port}", udp_port, log_path)
    try:
        wait_until_answering(server, scheme == "https")
    except RuntimeError:
        stop_server(server)
        raise
    return server


def wait_until_answering(server: ServerProcess, https: bool) -> None:
    """Poll the stats API until it answers (a 401 counts: the server is up, it wants a token)."""
    # The probe trusts whatever certificate a test server was given.
    probe_tls = ssl._create_unverified_context() if https else None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(
                server.http_url + "/api/v1/streams", timeout=1, context=probe_tls
            ):
                return
        except urllib.error.HTTPError as refused:
            if refused.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server did not answer in {START_TIMEOUT:.0f} s:\n{server.log_tail()}")


def stop_server(server: ServerProcess) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=5)
