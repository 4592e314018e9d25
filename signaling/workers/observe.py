"""Observability of the --workers front: its own /metrics merged with its workers', and events
from the load the workers report, so it needs no media plane of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from prometheus_client import generate_latest

from signaling.observe.event_hub import EventHub
from signaling.observe.events import GONE, Sampler, StreamState
from signaling.observe.metrics import CONTENT_TYPE, LoopLag, merged, new_registry
from signaling.observe.routes import HUB, LAG, REGISTRY, add_routes
from signaling.security.auth import Authenticator
from signaling.serving.access import AUTH
from signaling.serving.plumbing import unavailable
from signaling.workers.pool import WorkerPool
from signaling.workers.proxy import POOL, ask_worker


def add_front_observability(
    app: web.Application, auth: Authenticator, max_event_streams: int
) -> None:
    """The --workers front: access lines, /metrics of itself and every worker, and events.

    The front's events come from the load each worker reports every second; it checks
    tokens for them itself, with the same Authenticator settings as its workers.
    """
    app[AUTH] = auth
    app[LAG] = LoopLag()
    pool = app[POOL]
    app[HUB] = EventHub(workers_sample(pool), max_event_streams, workers_have(pool))
    app[REGISTRY] = new_registry()
    app[REGISTRY].register(app[HUB].collector())
    add_routes(app, front_metrics)


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


def workers_have(pool: WorkerPool) -> Callable[[str], bool]:
    """Whether any worker's last load report shows a stream."""
    return lambda name: any(name in worker.load.streams for worker in pool.workers)


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
