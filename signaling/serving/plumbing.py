"""HTTP plumbing shared by a worker's app and the `--workers` front, with no media code.

A client error is a Rejection: one status, a one-line reason, the headers that status needs.
The middleware here turns it into a text answer, logged once on the app's own logger (a quiet
one, which a flood repeats, once per interval with a count), with CORS on every answer;
bodies are read within a size and a time bound.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from signaling.security.admission import forwarded_client
from signaling.serving.connections import ConnectionGuard
from signaling.serving.redact import redacted_path
from signaling.serving.refusal_log import RefusalLog

MAX_OFFER_BYTES = 64 * 1024
BODY_TIMEOUT = 10.0  # seconds a client has to send a request's body once its headers are in
RETRY_AFTER = 5  # seconds a refused client is asked to wait before trying again
REFUSED = web.AppKey("refused", collections.Counter)  # client errors answered, by status
ROOM_REFUSED = web.AppKey("room_refused", collections.Counter)  # room requests, "ACTION STATUS"
GUARD = web.AppKey("guard", ConnectionGuard)
QUIET_LOG = web.AppKey("quiet_refusals", RefusalLog)  # the app's quiet refusals, batched
QUIET = web.RequestKey("quiet", bool)  # its answer was a quiet refusal: no access line

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, If-Match, ETag",
    "Access-Control-Expose-Headers": (
        "Location, ETag, Link, Accept-Post, Accept-Patch, Retry-After, WWW-Authenticate"
    ),
}


class Rejection(Exception):
    """A client error with its HTTP status, one-line reason and any headers the status needs.

    A quiet one is a refusal a flood repeats (a rate, a cap): counted like any other, but
    logged once per interval with a count, and not in the access log.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str] | None = None,
        *,
        quiet: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.quiet = quiet


def unavailable(reason: str, *, quiet: bool = False) -> Rejection:
    """A 503 that tells the client when to try again."""
    return Rejection(503, reason, {"Retry-After": str(RETRY_AFTER)}, quiet=quiet)


def logged_path(request: web.Request) -> str:
    """The path as the client sent it, still percent-encoded (a %0D%0A cannot forge log
    lines), with any session id or event key in it as a short hash."""
    return redacted_path(request.rel_url.raw_path)


def note_refusal(request: web.Request, exc: Rejection) -> None:
    """Count a refusal by status and log it as one line on the app's logger (a quiet one in
    the app's batch of them)."""
    refused = request.app.get(REFUSED)
    if refused is not None:
        refused[str(exc.status)] += 1
    line = f"{request.method} {logged_path(request)} -> {exc.status} {exc.reason}"
    batch = request.app.get(QUIET_LOG)
    if exc.quiet and batch is not None:
        request[QUIET] = True
        batch.note(line)
    else:
        request.app.logger.info("%s", line)


def quiet_refusals(app: web.Application) -> None:
    """Give `app` its batch of quiet refusals, logged on its own logger."""
    app[QUIET_LOG] = RefusalLog(app.logger, "requests")


@web.middleware
async def cors_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS on every answer; Rejection and unexpected errors become one-line text statuses.

    A preflight (OPTIONS) of a route with no OPTIONS handler of its own is answered here, so
    every URL a page may call cross-origin (the event streams, the stats API) passes it."""
    if request.method == "OPTIONS" and isinstance(
        request.match_info.http_exception, web.HTTPMethodNotAllowed
    ):
        return web.Response(status=204, headers=CORS_HEADERS)
    try:
        response = await handler(request)
    except Rejection as exc:
        note_refusal(request, exc)
        response = web.Response(status=exc.status, text=exc.reason + "\n", headers=exc.headers)
    except web.HTTPException as exc:
        exc.headers.update(CORS_HEADERS)
        raise
    except Exception:
        request.app.logger.exception("%s %s failed", request.method, logged_path(request))
        response = web.Response(status=500, text="internal error\n")
    response.headers.update(CORS_HEADERS)
    if request.body_exists and not request.content.at_eof():
        response.force_close()  # the rest of the body is not worth waiting for
    return response


def app_runner(app: web.Application, header_timeout: float) -> web.AppRunner:
    """The runner every serving process uses. An answer that leaves the request's body unread
    (a 408, or a refusal before reading) closes the connection at once: aiohttp would
    otherwise keep reading the body for 10 s more ("lingering") to reuse the connection for
    a client that has already shown it does not send."""
    return web.AppRunner(app, access_log=None, keepalive_timeout=header_timeout, lingering_time=0)


def behind_proxy(trust_proxy: bool) -> list:
    """The middleware that makes request.remote the client a reverse proxy names, if trusted."""

    @web.middleware
    async def real_client(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = forwarded_client(request.headers.get("X-Forwarded-For"))
        if client is not None:
            request = request.clone(remote=client)
        return await handler(request)

    return [real_client] if trust_proxy else []


async def read_bytes(request: web.Request, what: str) -> bytes:
    """A request's body within BODY_TIMEOUT; a stalled or aborted upload is a Rejection (the
    client that aborted never sees it, but the log gets one line, not a traceback)."""
    try:
        return await asyncio.wait_for(request.read(), BODY_TIMEOUT)
    except asyncio.TimeoutError as exc:
        raise Rejection(408, f"{what} not received within {BODY_TIMEOUT:g} s") from exc
    except web.HTTPRequestEntityTooLarge as exc:
        raise Rejection(413, f"{what} larger than {MAX_OFFER_BYTES} bytes") from exc
    except (ConnectionError, aiohttp.ClientPayloadError, HttpProcessingError) as exc:
        raise Rejection(400, f"{what} upload aborted: {exc}") from exc


async def read_body(request: web.Request, content_type: str, what: str) -> str:
    """The UTF-8 body of a POST or PATCH, or a Rejection saying what is wrong with it."""
    if request.content_type != content_type:
        raise Rejection(415, f"Content-Type must be {content_type}, not {request.content_type}")
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        raise Rejection(413, f"{what} larger than {MAX_OFFER_BYTES} bytes")
    body = await read_bytes(request, what)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(400, f"{what} is not UTF-8") from exc
