"""The command lines the --workers front starts its workers with."""

from __future__ import annotations

import pytest

from signaling.workers.pool import WorkerPool


def option(command: list[str], name: str) -> str | None:
    """The value argparse would take: the last occurrence wins."""
    values = [command[i + 1] for i, part in enumerate(command[:-1]) if part == name]
    return values[-1] if values else None


@pytest.mark.parametrize(
    ("argv", "tcp_port", "expected"),
    [
        ([], None, [None, None]),  # each worker's TCP follows its own UDP port
        (["--tcp-port", "9000"], 9000, ["9000", "9001"]),  # offset like UDP, not one port twice
        (["--tcp-port", "0"], 0, ["0", "0"]),  # off stays off
    ],
)
def test_each_worker_gets_its_own_media_ports(
    argv: list[str], tcp_port: int | None, expected: list[str | None]
) -> None:
    pool = WorkerPool(2, 8000, argv, tcp_port)
    commands = [pool._command(worker, 50000 + worker.index) for worker in pool.workers]
    assert [option(c, "--udp-port") for c in commands] == ["8000", "8001"]
    assert [option(c, "--tcp-port") for c in commands] == expected
