"""A refusal that leaves the request's body unread closes the connection at once.

A real aiohttp server on 127.0.0.1 with the serving plumbing (its middleware and runner) and
raw sockets as clients: a stalled body gets its 408 and then EOF, a refusal before reading the
body gets its status and EOF, and an ordinary request keeps the connection for the next one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from signaling.serving import plumbing
from signaling.serving.plumbing import Rejection, app_runner, cors_and_errors, read_bytes

BODY_TIMEOUT = 0.3  # the server's, shortened for the test
PROMPTLY = 2.0  # seconds within which the server must have closed (lingering would be 10)


async def echo(request: web.Request) -> web.Response:
    return web.Response(body=await read_bytes(request, "offer"))


async def refuse(request: web.Request) -> web.Response:
    raise Rejection(401, "no token")


@pytest.fixture
async def base(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, int]]:
    monkeypatch.setattr(plumbing, "BODY_TIMEOUT", BODY_TIMEOUT)
    app = web.Application(middlewares=[cors_and_errors])
    app.router.add_post("/echo", echo)
    app.router.add_post("/refuse", refuse)
    runner = app_runner(app, header_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield site._server.sockets[0].getsockname()[:2]  # type: ignore[union-attr]
    await runner.cleanup()


def post(path: str, length: int, body: bytes) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode() + body


async def answer_then_eof(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(-1), PROMPTLY + BODY_TIMEOUT)
    return data, time.monotonic() - start


async def test_a_stalled_body_gets_408_and_the_connection_closes(base) -> None:
    reader, writer = await asyncio.open_connection(*base)
    writer.write(post("/echo", 100, b"v=0\r\n"))  # 5 of the 100 bytes promised
    data, took = await answer_then_eof(reader)
    assert data.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in data
    assert took < PROMPTLY
    writer.close()


async def test_a_refusal_before_reading_closes_the_connection(base) -> None:
    reader, writer = await asyncio.open_connection(*base)
    writer.write(post("/refuse", 1000, b"x" * 10))
    data, took = await answer_then_eof(reader)
    assert data.startswith(b"HTTP/1.1 401 ")
    assert took < PROMPTLY
    writer.close()


async def test_an_answered_request_keeps_its_connection(base) -> None:
    reader, writer = await asyncio.open_connection(*base)
    for _ in range(2):
        writer.write(post("/echo", 3, b"abc"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PROMPTLY)
        assert head.startswith(b"HTTP/1.1 200 ") and b"Connection: close" not in head
        assert await asyncio.wait_for(reader.readexactly(3), PROMPTLY) == b"abc"
    writer.close()
