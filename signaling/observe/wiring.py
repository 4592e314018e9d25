"""Observability of a media process: its router sampled for events, its figures on /metrics."""

from __future__ import annotations

import collections

from aiohttp import web

from sfu.io.server import MediaServer
from sfu.routing.router import Router
from signaling.observe.event_hub import EventHub
from signaling.observe.events import StreamState
from signaling.observe.media_metrics import RouterCollector
from signaling.observe.metrics import LoopLag, new_registry
from signaling.observe.room_metrics import RoomCollector
from signaling.observe.routes import HUB, LAG, REGISTRY, add_routes, metrics
from signaling.serving.plumbing import ROOM_REFUSED


def add_observability(
    app: web.Application, media: MediaServer, per_stream: int, max_event_streams: int
) -> None:
    """Metrics and events for a server's app; the probe and sampler run while it does."""
    lag = LoopLag()
    router = media.router
    hub = EventHub(
        lambda: sample(router),
        max_event_streams,
        lambda name: router.stream_summary(name) is not None,
    )
    registry = new_registry()
    registry.register(RouterCollector(media, lag, per_stream))
    app.setdefault(ROOM_REFUSED, collections.Counter())
    registry.register(RoomCollector(media, app[ROOM_REFUSED]))
    registry.register(hub.collector())
    app[LAG], app[HUB], app[REGISTRY] = lag, hub, registry
    add_routes(app, metrics)


def sample(router: Router) -> dict[str, StreamState]:
    """The state of a router's streams as its own players see them: a stream relayed in from
    its owner (another node of a cluster) is live here; relays out to others are no viewers."""
    return {
        name: StreamState(stream.live, stream.peer_players, stream.layers)
        for name, stream in router.stream_summaries().items()
    }
