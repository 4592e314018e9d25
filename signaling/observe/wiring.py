"""The routes that let operators and pages watch a server: /metrics and the event streams."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from sfu.io.server import MediaServer
from sfu.routing.router import PLAY
from signaling.http.access import AUTH, authorize, authorize_stats, request_token
from signaling.http.plumbing import CORS_HEADERS, Rejection, unavailable
from signaling.http.routes import STREAM_PATTERN
from signaling.observe.events import (
    GONE,
    MAX_EVENTS_BODY,
    SUBSCRIPTION_TTL,
    EventHub,
    Listener,
    Sampler,
    StreamState,
    parse_wanted,
    room_listener,
    sample,
    whep_listener,
)
from signaling.observe.logs import access_log
from signaling.observe.metrics import CONTENT_TYPE, LoopLag, exposition, merged, new_registry
from signaling.security.auth import Authenticator
from signaling.workers.front import POOL, ask_worker
from signaling.workers.pool import WorkerPool

HUB = web.AppKey("event_hub", EventHub)
REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
LAG = web.AppKey("loop_lag", LoopLag)
ROOM_MAX = 100  # characters of a room name


def add_observability(
    app: web.Application, media: MediaServer, per_stream: int, max_event_streams: int
) -> None:
    """Metrics and events for a server's app; the probe and sampler run while it does."""
    lag = LoopLag()
    hub = EventHub(lambda: sample(media.router), max_event_streams)
    registry = new_registry(media, lag, per_stream)
    registry.register(hub.collector())
    app[LAG], app[HUB], app[REGISTRY] = lag, hub, registry
    app.on_startup.append(start_background)
    app.on_shutdown.append(stop_background)
    app.middlewares.insert(0, access_log)
    app.router.add_get("/metrics", metrics)
    add_event_routes(app)


def add_event_routes(app: web.Application) -> None:
    stream = f"{{stream:{STREAM_PATTERN}}}"
    app.router.add_get("/api/v1/events", room_events)
    app.router.add_post(f"/events/whep/{stream}", subscribe_whep)
    app.router.add_get("/events/streams/{key}", whep_events)


def add_front_observability(
    app: web.Application, auth: Authenticator, max_event_streams: int
) -> None:
    """The --workers front: access lines, /metrics of itself and every worker, and events.

    The front's events come from the load each worker reports every second; it checks
    tokens for them itself, with the same Authenticator settings as its workers.
    """
    app[AUTH] = auth
    app[LAG] = LoopLag()
    app[HUB] = EventHub(workers_sample(app[POOL]), max_event_streams)
    app[REGISTRY] = new_registry(None, app[LAG])
    app[REGISTRY].register(app[HUB].collector())
    app.on_startup.append(start_background)
    app.on_shutdown.append(stop_background)
    app.middlewares.insert(0, access_log)
    app.router.add_get("/metrics", front_metrics)
    add_event_routes(app)


def workers_sample(pool: WorkerPool) -> Sampler:
    """Streams as the workers' load reports show them: live anywhere, players summed."""

    def sample_workers() -> dict[str, StreamState]:
        streams: dict[str, StreamState] = {}
        for worker in pool.workers:
            for name, state in worker.load.streams.items():
                seen = streams.get(name, GONE)
                streams[name] = StreamState(
                    seen.live or state.publishing, seen.players + state.players
                )
        return streams

    return sample_workers


async def start_background(app: web.Application) -> None:
    app[LAG].start()
    app[HUB].start()


async def stop_background(app: web.Application) -> None:
    await app[LAG].stop()
    await app[HUB].stop()


async def metrics(request: web.Request) -> web.Response:
    authorize_stats(request)
    return exposition(request.app[REGISTRY])


async def front_metrics(request: web.Request) -> web.Response:
    """Each worker's exposition labelled worker="<i>", the front's own as worker="front".

    Each figure belongs to exactly one process, so adding them up over `worker` counts each
    once (players relayed to another worker count only there; relays are their own metric).
    A worker's refusal (401 without the stats token) is passed back as it is.
    """
    ready = [w for w in request.app[POOL].workers if w.ready]
    if not ready:
        raise unavailable("no worker is ready")
    answers = await asyncio.gather(*(ask_worker(request, w, "/metrics") for w in ready))
    texts = [("front", generate_latest(request.app[REGISTRY]).decode())]
    for worker, (status, headers, payload) in zip(ready, answers, strict=True):
        if status != 200:
            return web.Response(status=status, headers=headers, body=payload)
        texts.append((str(worker.index), payload.decode()))
    return web.Response(body=merged(texts), content_type=CONTENT_TYPE)


async def serve(request: web.Request, listener: Listener, first: list[bytes]) -> web.StreamResponse:
    try:
        return await request.app[HUB].serve(request, listener, first, CORS_HEADERS)
    except ValueError as exc:
        raise unavailable(str(exc)) from exc


async def room_events(request: web.Request) -> web.StreamResponse:
    """SSE of the streams named `room/...`: published, unpublished, player counts."""
    authorize_stats(request)
    room = request.query.get("room", "")
    if not room or len(room) > ROOM_MAX or "/" in room:
        request.app[HUB].refused["bad_request"] += 1
        raise Rejection(400, f"room must be 1 to {ROOM_MAX} characters without '/'")
    listener, first = room_listener(request.app[HUB], room)
    return await serve(request, listener, first)


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
    try:
        key = hub.subscribe(stream, wanted)
    except ValueError as exc:
        raise unavailable(str(exc)) from exc
    return web.Response(status=201, headers={"Location": f"/events/streams/{key}"})


async def whep_events(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    subscription = hub.subscriptions.get(request.match_info["key"])
    if subscription is None:
        raise Rejection(404, "no such event stream (expired or never made)")
    listener, first = whep_listener(hub, subscription)
    try:
        return await serve(request, listener, first)
    finally:
        # An EventSource reconnects to the same URL: it stays valid a while after each use.
        subscription.expires = time.monotonic() + SUBSCRIPTION_TTL
