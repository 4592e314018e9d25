"""The front's calls to a worker: a reply that is not the message asked for is a WorkerError,
counted by kind, never a crash; a good one arrives typed. The worker here is a small aiohttp
app on 127.0.0.1 that answers what each test needs it to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from signaling.workers.link import SECRET_HEADER
from signaling.workers.messages import MAX_MESSAGE_BYTES, NO_LOAD, LoadReport, StreamLoad
from signaling.workers.pool import WorkerError, WorkerPool

GOOD = LoadReport(7, 8001, 1, {"live/a": StreamLoad(1, True)}, {}, {})


@pytest.fixture
async def worker_answers() -> AsyncIterator[tuple[WorkerPool, dict[str, bytes]]]:
    """A pool of one worker whose /internal/load answers `replies["load"]` (200)."""
    replies: dict[str, bytes] = {}
    seen: list[str] = []

    async def load(request: web.Request) -> web.Response:
        seen.append(request.headers.get(SECRET_HEADER, ""))
        return web.Response(body=replies["load"], content_type="application/json")

    app = web.Application()
    app.router.add_get("/internal/load", load)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    pool = WorkerPool(1, 0, [])
    pool.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    pool.workers[0].url = f"http://127.0.0.1:{port}"
    try:
        yield pool, replies
    finally:
        await pool.http.close()
        await runner.cleanup()
    assert seen and all(secret == pool.secret for secret in seen)


async def test_a_good_load_report_arrives_typed(worker_answers) -> None:
    pool, replies = worker_answers
    replies["load"] = GOOD.to_json().encode()
    assert await pool.ask(pool.workers[0], "GET", "/internal/load", LoadReport) == GOOD
    assert pool.workers[0].load is NO_LOAD and not pool.malformed


@pytest.mark.parametrize(
    "reply",
    [
        b"not json",
        b'{"v": 2, "type": "load"}',
        GOOD.to_json().replace('"players": 1', '"players": -1').encode(),
        b'{"v": 1, "type": "load", "pid": 1, "streams": {"' + b"x" * MAX_MESSAGE_BYTES + b'": 1}}',
    ],
    ids=["not json", "version 2", "negative players", "too large"],
)
async def test_a_malformed_reply_is_a_counted_worker_error(worker_answers, reply) -> None:
    pool, replies = worker_answers
    replies["load"] = reply
    for _ in range(2):
        with pytest.raises(WorkerError, match="worker 0 sent a malformed load"):
            await pool.ask(pool.workers[0], "GET", "/internal/load", LoadReport)
    assert pool.malformed == {"load": 2}


async def test_another_status_is_a_worker_error_with_what_it_said(worker_answers) -> None:
    pool, replies = worker_answers
    replies["load"] = GOOD.to_json().encode()
    with pytest.raises(WorkerError, match=r"GET /internal/nothing -> 404: 404: Not Found"):
        await pool.ask(pool.workers[0], "GET", "/internal/nothing", LoadReport)
    assert not pool.malformed
    await pool.ask(pool.workers[0], "GET", "/internal/load", LoadReport)  # the secret was sent
