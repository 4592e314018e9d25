"""The observability routes every process serves, front or media: /metrics and event streams.

Imports no media-plane module, so the --workers front can serve them too; what a process
samples and which collectors its registry holds are set up by its own wiring.
"""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry

from signaling.observe.event_hub import SUBSCRIPTION_TTL, EventHub, EventRefused
from signaling.observe.events import (
    MAX_EVENTS_BODY,
    parse_wanted,
    room_listener,
    whep_listener,
)
from signaling.observe.logs import access_log
from signaling.observe.metrics import LoopLag, exposition
from signaling.security.auth import PLAY
from signaling.serving.access import authorize, authorize_stats, request_token
from signaling.serving.names import STREAM_PATTERN
from signaling.serving.plumbing import CORS_HEADERS, RETRY_AFTER, Rejection

HUB = web.AppKey("event_hub", EventHub)
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
LAG = web.AppKey("loop_lag", LoopLag)
ROOM_MAX = 100  # characters of a room name


def add_routes(app: web.Application, metrics_handler: Handler) -> None:
    """The access log, /metrics (served by `metrics_handler`) and the event routes; the lag
    probe and the event sampler run while the app does."""
    app.on_startup.append(start_background)
    app.on_shutdown.append(stop_background)
    app.middlewares.insert(0, access_log)
    app.router.add_get("/metrics", metrics_handler)
    stream = f"{{stream:{STREAM_PATTERN}}}"
    app.router.add_get("/api/v1/events", quietly(room_events))
    app.router.add_post(f"/events/whep/{stream}", quietly(subscribe_whep))
    app.router.add_get("/events/streams/{key}", quietly(whep_events))


def quietly(handler: Handler) -> Handler:
    """`handler` with every refusal quiet: counted, and logged once per interval with a count
    (a client in a loop asks for events far more often than anything else)."""

    async def refusing_quietly(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except EventRefused as exc:
            retry = {"Retry-After": str(RETRY_AFTER)} if exc.status in (429, 503) else {}
            raise Rejection(exc.status, exc.reason, retry, quiet=True) from exc
        except Rejection as exc:
            exc.quiet = True
            raise

    return refusing_quietly


async def start_background(app: web.Application) -> None:
    app[LAG].start()
    app[HUB].start()


async def stop_background(app: web.Application) -> None:
    await app[LAG].stop()
    await app[HUB].stop()


async def metrics(request: web.Request) -> web.Response:
    authorize_stats(request)
    return exposition(request.app[REGISTRY])


async def room_events(request: web.Request) -> web.StreamResponse:
    """SSE of the streams named `room/...`: published, unpublished, player counts."""
    authorize_stats(request)
    room = request.query.get("room", "")
    if not room or len(room) > ROOM_MAX or "/" in room:
        request.app[HUB].refused["bad_request"] += 1
        raise Rejection(400, f"room must be 1 to {ROOM_MAX} characters without '/'")
    hub = request.app[HUB]
    listener, first = room_listener(hub.sample, room)
    return await hub.serve(request, listener, first, CORS_HEADERS)


async def subscribe_whep(request: web.Request) -> web.Response:
    """Draft WHEP core extensions: a JSON list of event names in, an event-stream URL out.

    The URL is a capability (an unguessable id), so EventSource, which cannot send an
    Authorization header, can open it; the token is checked here, when it is handed out.
    """
    stream = request.match_info["stream"]
    authorize(request, request_token(request), stream, PLAY)
    hub = request.app[HUB]
    if request.content_length is not None and request.content_length > MAX_EVENTS_BODY:
        hub.refused["bad_request"] += 1
        raise Rejection(413, f"body larger than {MAX_EVENTS_BODY} bytes")
    try:
        wanted = parse_wanted(await request.content.read(MAX_EVENTS_BODY + 1))
    except ValueError as exc:
        hub.refused["bad_request"] += 1
        raise Rejection(400, str(exc)) from exc
    key = hub.subscribe(stream, wanted, request.remote or "")
    return web.Response(status=201, headers={"Location": f"/events/streams/{key}"})


async def whep_events(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    subscription = hub.subscriptions.get(request.match_info["key"])
    if subscription is None:
        raise hub.refuse("not_found", 404, "no such event stream (expired or never made)")
    listener, first = whep_listener(hub.sample, subscription)
    subscription.readers += 1
    try:
        return await hub.serve(request, listener, first, CORS_HEADERS)
    finally:
        # An EventSource reconnects to the same URL: it stays valid a while after each use.
        subscription.readers -= 1
        subscription.expires = time.monotonic() + SUBSCRIPTION_TTL
