"""Shared fixtures: the real server as a subprocess on 127.0.0.1, on free ports.

The launcher itself is bench.launcher, shared with the benchmarks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from bench.launcher import ServerProcess, start_server, stop_server

# Property tests check what holds, not how fast: on a loaded 2-core machine one example can
# take longer than Hypothesis's default 200 ms deadline, which is a timing, not a failure.
settings.register_profile("litesfu", deadline=None)
settings.load_profile("litesfu")


@contextlib.contextmanager
def served(log_dir: Path, *extra_args: str) -> Iterator[ServerProcess]:
    """A server for the block; stopped after it, when its log must hold no traceback."""
    server = start_server(log_dir, *extra_args)
    yield server
    stop_server(server)
    assert "Traceback" not in server.log(), server.log()


@pytest.fixture
def sfu_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server for one test."""
    with served(tmp_path) as server:
        yield server


def shared_server(*extra_args: str) -> Callable[..., Iterator[ServerProcess]]:
    """An `sfu_server` fixture that one module's tests share (started with `extra_args`), for
    a module whose tests cannot disturb each other: streams of their own, no assertions on
    others' sessions or counters. Use it as `sfu_server = shared_server(...)` in the module."""

    @pytest.fixture(scope="module")
    def sfu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        with served(tmp_path_factory.mktemp("server"), *extra_args) as server:
            yield server

    return sfu_server
