"""How the `--workers` front passes one client request to one worker and its answer back.

The request goes on with the client's headers, less those of one hop, plus the client's
address, the Host it asked for and the front's secret. In the answer, the session id of a
Location (and of the Link headers that name the session's other URLs) gains the `w<i>-`
prefix that brings the session's later requests back to worker i; `addressed` takes it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from signaling.http.routes import ROOMS
from signaling.observe.event_hub import HEARTBEAT, LIVENESS
from signaling.serving.names import SESSION_ID_PATTERN
from signaling.serving.plumbing import Rejection, logged_path, read_bytes, unavailable
from signaling.workers.balancer import Balancer
from signaling.workers.link import CLIENT_HEADER, HOST_HEADER, SECRET_HEADER
from signaling.workers.pool import CALL_TIMEOUT, Worker, WorkerPool

log = logging.getLogger(__name__)

POOL = web.AppKey("pool", WorkerPool)
BALANCER = web.AppKey("balancer", Balancer)
SESSION_ID = re.compile(rf"w(\d{{1,3}})-({SESSION_ID_PATTERN})")
SESSION_BASES = ("/sessions/", f"{ROOMS}/sessions/")  # WHIP/WHEP sessions, room sessions
# An event stream is open as long as its client wants; a worker that sends not even its
# heartbeats for two of their periods is gone.
STREAM_TIMEOUT = aiohttp.ClientTimeout(connect=CALL_TIMEOUT.total, sock_read=2 * HEARTBEAT)
# Headers of one hop only, or that aiohttp sets again itself.
NOT_FORWARDED = frozenset(
    h.lower()
    for h in (
        "Host", "Connection", "Keep-Alive", "Transfer-Encoding", "TE", "Trailer", "Upgrade",
        "Proxy-Authorization", "Proxy-Connection", "Content-Length", "Date", "Server",
        "X-Forwarded-For", CLIENT_HEADER, HOST_HEADER, SECRET_HEADER,
    )
)  # fmt: skip


def prefixed(index: int, session_id: str) -> str:
    return f"w{index}-{session_id}"


def addressed(request: web.Request) -> tuple[Worker, str]:
    """The worker that the `w<i>-<id>` of a session URL names, and the URL's path as that
    worker knows it; a 404 for an id of any other shape."""
    session_id = request.match_info["id"]
    match = SESSION_ID.fullmatch(session_id)
    workers = request.app[POOL].workers
    if match is None or int(match.group(1)) >= len(workers):
        raise Rejection(404, "no such session")
    path = request.path.replace(f"/{session_id}", f"/{match.group(2)}", 1)
    return workers[int(match.group(1))], path


def answer_headers(worker: Worker, received: Mapping[str, str]) -> CIMultiDict[str]:
    """The worker's answer headers for the client: a session's Location and the Links under
    it (the WHEP layer URL, a room session's events) name the session with its prefix."""
    answer = CIMultiDict((k, v) for k, v in received.items() if k.lower() not in NOT_FORWARDED)
    location = answer.get("Location", "")
    base = next((b for b in SESSION_BASES if location.startswith(b)), None)
    if base is None:
        return answer
    ours = base + prefixed(worker.index, location[len(base) :])
    renamed: CIMultiDict[str] = CIMultiDict()
    for key, value in answer.items():
        if key.lower() == "location":
            value = ours
        elif key.lower() == "link":
            value = value.replace(f"<{location}/", f"<{ours}/")
        renamed.add(key, value)
    return renamed


@contextlib.asynccontextmanager
async def opened(
    request: web.Request,
    worker: Worker,
    path: str | None = None,
    body: bytes | None = None,
    timeout: aiohttp.ClientTimeout = CALL_TIMEOUT,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The worker's response to the client's request (sent to `path` if given), open for
    reading; a 503 if the worker is not ready or does not answer."""
    pool = request.app[POOL]
    if not worker.ready or pool.http is None:
        raise unavailable(f"worker {worker.index} is starting")
    headers = CIMultiDict(
        (k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED
    )
    headers[CLIENT_HEADER] = request.remote or ""
    headers[HOST_HEADER] = request.host
    headers[SECRET_HEADER] = pool.secret
    if body is None and request.can_read_body:
        body = await read_bytes(request, "body")
    try:
        async with pool.http.request(
            request.method,
            worker.url + (path or request.raw_path),  # as sent: still encoded
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=timeout,
        ) as response:
            yield response
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.warning(
            "worker %d did not answer %s %s: %r",
            worker.index,
            request.method,
            logged_path(request),
            exc,
        )
        raise unavailable(f"worker {worker.index} is not answering") from exc


async def ask_worker(
    request: web.Request, worker: Worker, path: str | None = None, body: bytes | None = None
) -> tuple[int, CIMultiDict[str], bytes]:
    """Send the client's request to a worker: (status, headers, body) of its answer."""
    async with opened(request, worker, path, body) as response:
        return response.status, answer_headers(worker, response.headers), await response.read()


async def relay_stream(request: web.Request, worker: Worker, path: str) -> web.StreamResponse:
    """A worker's server-sent events passed on as they come, until either side goes; a
    refusal (404, 429, 503) as the worker made it. The worker counts the stream against its
    caps, for the client the front names."""
    async with opened(request, worker, path, timeout=STREAM_TIMEOUT) as upstream:
        headers = answer_headers(worker, upstream.headers)
        if upstream.status != 200:
            return web.Response(status=upstream.status, headers=headers, body=await upstream.read())
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        await pass_on(request, upstream, response)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response


async def pass_on(
    request: web.Request, upstream: aiohttp.ClientResponse, response: web.StreamResponse
) -> None:
    """Copy until the worker ends or the client goes; the client is looked at every LIVENESS
    seconds, so its place at the worker is freed as soon as a direct client's would be."""
    while (transport := request.transport) is not None and not transport.is_closing():
        try:
            chunk = await asyncio.wait_for(upstream.content.readany(), LIVENESS)
        except aiohttp.ClientError:  # its read timeout too, before the TimeoutError below
            return
        except asyncio.TimeoutError:
            continue
        if not chunk:
            return
        try:
            await response.write(chunk)
        except (ConnectionError, RuntimeError):
            return
