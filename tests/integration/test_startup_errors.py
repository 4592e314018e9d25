"""The real `litesfu` command, started wrong as a new user would: one line, no traceback.

Bad values end with status 2 before anything binds; a port already taken ends with status 1
and a line naming the protocol, address and port. The unit tests walk every
family of flag; this one checks the command as installed says the same.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from bench.launcher import ROOT, free_media_port, free_port

START_TIMEOUT = 30.0


def start(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "litesfu", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )


def only_line(result: subprocess.CompletedProcess[str]) -> str:
    """The last line of stderr, after checking no traceback came before it."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--udp-port", "99999"], "litesfu: --udp-port: 99999 is not a port (0-65535)"),
    ],
)
def test_a_bad_value_is_one_line_and_status_2(argv: list[str], line: str) -> None:
    result = start(*argv)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert only_line(result).startswith(line)


def test_a_taken_udp_port_is_named() -> None:
    port = free_media_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("0.0.0.0", port))
        result = start("--http-port", str(free_port()), "--udp-port", str(port))
    assert result.returncode == 1
    assert only_line(result) == (
        f"litesfu: cannot bind UDP 0.0.0.0:{port} (--udp-port): address already in use; "
        "another process holds it: stop that process or choose another --udp-port"
    )


def test_a_taken_http_port_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = start("--http-port", str(port), "--udp-port", str(free_media_port()))
    assert result.returncode == 1
    line = only_line(result)
    assert line.startswith(f"litesfu: cannot bind HTTP 127.0.0.1:{port} (--http-port): ")
    assert "choose another --http-port" in line
