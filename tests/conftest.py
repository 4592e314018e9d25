"""Shared fixtures: the real server as a subprocess on 127.0.0.1, on free ports.

The launcher itself is bench.launcher, shared with the benchmarks; its names are re-exported
here for the test modules that import them from this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.launcher import ROOT, ServerProcess, free_port, start_server, stop_server

__all__ = ["ROOT", "ServerProcess", "free_port", "start_server", "stop_server"]


@pytest.fixture
def sfu_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server for one test."""
    server = start_server(tmp_path)
    yield server
    stop_server(server)
    assert "Traceback" not in server.log(), server.log()
