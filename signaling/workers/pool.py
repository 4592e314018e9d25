"""Worker processes of `--workers N`: start them, restart the ones that die, stop them all.

Each worker is the ordinary server (`python -m litesfu`) with the front's own options, bound to
127.0.0.1 on an HTTP port the front picks and on a UDP port of its own, which its answers
advertise. The front talks to a worker only over HTTP, through `call` and its own proxy.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from signaling.serving.media_types import JSON_TYPE
from signaling.workers.link import SECRET_ENV, SECRET_HEADER
from signaling.workers.messages import (
    MAX_MESSAGE_BYTES,
    NO_LOAD,
    LoadReport,
    M,
    Message,
    MessageError,
)

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 20.0  # seconds a starting worker has to answer its /internal/load
READY_POLL = 0.1
RESTART_DELAY = 1.0  # seconds between a worker's death and its restart
STOP_TIMEOUT = 5.0  # seconds a worker has to exit after SIGTERM before it is killed
CALL_TIMEOUT = aiohttp.ClientTimeout(total=30)


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out (free for the moment; a worker that loses the race
    exits and is restarted on another)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Worker:
    """One worker process and what the front last learnt of it."""

    index: int
    udp_port: int  # as asked on its command line; 0 lets the kernel choose
    process: asyncio.subprocess.Process | None = None
    url: str = ""
    ready: bool = False
    restarts: int = 0
    load: LoadReport = NO_LOAD  # its latest /internal/load

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def bound_udp_port(self) -> int | None:
        return self.load.udp_port or None


class WorkerError(Exception):
    """A worker that did not answer a call, refused it, or answered with a malformed message."""


class WorkerPool:
    """N supervised workers and one HTTP client session to reach them."""

    def __init__(
        self, count: int, udp_port: int, argv: Sequence[str], tcp_port: int | None = None
    ) -> None:
        self.workers = [Worker(i, udp_port + i if udp_port else 0) for i in range(count)]
        self.argv = list(argv)
        # An explicit ICE-TCP port is offset per worker like the UDP one; without one, each
        # worker's TCP listener takes its own UDP port's number (or none with --udp-port 0).
        self.tcp_port = tcp_port
        self.secret = secrets.token_urlsafe(32)  # what the workers' internal routes ask for
        self.http: aiohttp.ClientSession | None = None
        self.malformed: collections.Counter[str] = collections.Counter()  # replies, by kind
        self._stopping = False
        self._supervisors: list[asyncio.Task] = []

    async def start(self) -> None:
        """Start every worker and wait (bounded) until each answers or has failed once."""
        self.http = aiohttp.ClientSession(
            timeout=CALL_TIMEOUT, connector=aiohttp.TCPConnector(limit=0)
        )
        firsts = [asyncio.get_running_loop().create_future() for _ in self.workers]
        self._supervisors = [
            asyncio.create_task(self._supervise(worker, first))
            for worker, first in zip(self.workers, firsts, strict=True)
        ]
        await asyncio.wait(firsts, timeout=READY_TIMEOUT + 1)

    def _command(self, worker: Worker, http_port: int) -> list[str]:
        # Later options win in argparse, so the worker's own come last.
        return [
            sys.executable, "-m", "litesfu", *self.argv,
            "--workers", "1", "--http-host", "127.0.0.1", "--http-port", str(http_port),
            "--udp-port", str(worker.udp_port), "--worker-index", str(worker.index),
            *self._tcp_port(worker),
        ]  # fmt: skip

    def _tcp_port(self, worker: Worker) -> list[str]:
        if not self.tcp_port:  # not given (follow the UDP port) or 0 (off): as the front's
            return []
        return ["--tcp-port", str(self.tcp_port + worker.index)]

    async def _supervise(self, worker: Worker, first: asyncio.Future) -> None:
        """Run one worker for as long as the front runs; a worker that dies is restarted."""
        paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            SECRET_ENV: self.secret,
        }
        while not self._stopping:
            http_port = free_tcp_port()
            worker.url = f"http://127.0.0.1:{http_port}"
            worker.process = await asyncio.create_subprocess_exec(
                # Its own session: a terminal's Ctrl-C reaches the front only, which stops it.
                *self._command(worker, http_port),
                env=env,
                start_new_session=True,
            )
            log.info("worker %d: started, pid %d", worker.index, worker.process.pid)
            await self._wait_ready(worker)
            if not first.done():
                first.set_result(worker.ready)
            code = await worker.process.wait()
            worker.ready = False
            if self._stopping:
                break
            worker.restarts += 1
            log.warning(
                "worker %d (pid %d) exited with %s; restarting", worker.index, worker.pid, code
            )
            await asyncio.sleep(RESTART_DELAY)

    async def _wait_ready(self, worker: Worker) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and worker.process.returncode is None:  # type: ignore[union-attr]
            try:
                worker.load = await self.ask(worker, "GET", "/internal/load", LoadReport)
            except WorkerError:
                await asyncio.sleep(READY_POLL)
            else:
                worker.ready = True
                log.info(
                    "worker %d: ready on %s, media UDP %s",
                    worker.index,
                    worker.url,
                    worker.bound_udp_port,
                )
                return
        log.error("worker %d: not ready after %.0f s", worker.index, READY_TIMEOUT)

    async def call(
        self, worker: Worker, method: str, path: str, message: Message | None = None
    ) -> tuple[int, bytes]:
        """One request to a worker: (status, body, cut after MAX_MESSAGE_BYTES + 1); (0, b"")
        if it cannot answer."""
        assert self.http is not None
        headers = {SECRET_HEADER: self.secret, "Content-Type": JSON_TYPE}
        data = message.to_json() if message is not None else None
        body = bytearray()
        try:
            async with self.http.request(
                method, worker.url + path, data=data, headers=headers
            ) as response:
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_MESSAGE_BYTES:
                        break
                return response.status, bytes(body)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return 0, b""

    async def ask(
        self,
        worker: Worker,
        method: str,
        path: str,
        reply: type[M],
        message: Message | None = None,
        expect: int = 200,
    ) -> M:
        """A call whose answer is a `reply` message with status `expect`, or a WorkerError
        saying what came instead; malformed replies are counted and logged."""
        status, body = await self.call(worker, method, path, message)
        if status != expect:
            said = body[:200].decode("utf-8", "replace").strip()
            raise WorkerError(f"worker {worker.index}: {method} {path} -> {status}: {said}")
        try:
            return reply.from_json(body)
        except MessageError as exc:
            self.malformed[reply.KIND] += 1
            log.warning("worker %d sent a malformed %s: %s", worker.index, reply.KIND, exc)
            raise WorkerError(f"worker {worker.index} sent a malformed {reply.KIND}") from exc

    async def stop(self) -> None:
        """SIGTERM every worker, SIGKILL those still running STOP_TIMEOUT later, wait for all."""
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        running = [w.process for w in self.workers if w.process and w.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(process.wait()) for process in running]
        if waits:
            await asyncio.wait(waits, timeout=STOP_TIMEOUT)
        for process in running:
            if process.returncode is None:
                log.warning("worker pid %d did not stop; killing it", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await asyncio.gather(*waits)
        if self.http is not None:
            await self.http.close()
