"""Server-sent events: WHEP's active/inactive/viewercount/layers and a room's published streams.

The router is never asked to call back: a sampler reads its public state a few times a second
while anyone listens, diffs it with the last sample, and hands each change to the listeners
that want it. A listener is an HTTP response held open; one that cannot keep up, goes away or
is past the cap costs nothing more than its own queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sfu.routing.stats import Layer

log = logging.getLogger(__name__)

SAMPLE_INTERVAL = 0.25  # seconds between looks at the router while someone listens
HEARTBEAT = 15.0  # seconds between comments that keep proxies from closing an idle stream
QUEUE_SIZE = 64  # events a listener may fall behind before it is dropped
SUBSCRIPTION_TTL = 60.0  # seconds an event-stream URL lives with nobody reading it
WHEP_EVENTS = ("active", "inactive", "viewercount", "layers")
SUPPORTED = frozenset(WHEP_EVENTS)
LINK_REL = "urn:ietf:params:whep:ext:core:server-sent-events"
MAX_EVENTS_BODY = 1024


@dataclass(frozen=True)
class StreamState:
    """What the sampler sees of one stream: is its publisher sending, how many players, and
    the simulcast layers it offers (equal when only their bitrates moved)."""

    live: bool = False
    players: int = 0
    layers: tuple[Layer, ...] = ()


GONE = StreamState()  # a stream that does not exist looks like this


def whep_link(stream: str) -> str:
    """The Link header of a WHEP 201 that offers the events of its stream."""
    return f'</events/whep/{stream}>; rel="{LINK_REL}"; events="{",".join(WHEP_EVENTS)}"'


def frame(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def layers_data(layers: tuple[Layer, ...]) -> dict[str, list[dict]]:
    """The `layers` event's data: m-line index -> its layers, in the shape of the WHEP core
    extensions draft (rid, width, height, bitrate; a size only once known) plus `active`."""
    data: dict[str, list[dict]] = {}
    for layer in layers:
        size = {"width": layer.width, "height": layer.height} if layer.width else {}
        data.setdefault(str(layer.mline), []).append(
            {"rid": layer.rid, **size, "bitrate": round(layer.bitrate), "active": layer.active}
        )
    return data


def whep_frames(
    before: StreamState | None, after: StreamState | None
) -> Iterator[tuple[str, bytes]]:
    """The WHEP events (name, frame) that the change of one stream's state makes."""
    was, now = before or GONE, after or GONE
    if before is None or now.live != was.live:
        yield ("active", frame("active", {})) if now.live else ("inactive", frame("inactive", {}))
    if before is None or now.players != was.players:
        yield "viewercount", frame("viewercount", {"viewercount": now.players})
    if now.layers and (before is None or now.layers != was.layers):
        yield "layers", frame("layers", layers_data(now.layers))


def room_frames(
    name: str, before: StreamState | None, after: StreamState | None
) -> Iterator[bytes]:
    """The room events that the change of one stream's state makes."""
    was, now = before or GONE, after or GONE
    if now.live != was.live:
        yield frame("published" if now.live else "unpublished", {"stream": name})
    if now.players != was.players or (before is None and after is not None):
        yield frame("players", {"stream": name, "players": now.players})


@dataclass(eq=False)
class Listener:
    """One open event stream: which streams it follows and the frames waiting for it."""

    matches: Callable[[str], bool]
    render: Callable[[str, StreamState | None, StreamState | None], list[bytes]]
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False
    closed: bool = False  # the server is stopping: end the stream now, not at a heartbeat

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes it anyway
            self.queue.put_nowait(b"")

    def offer(self, frames: list[bytes]) -> None:
        for item in frames:
            try:
                self.queue.put_nowait(item)
            except asyncio.QueueFull:
                self.overflowed = True
                return


@dataclass
class Subscription:
    """The answer to a WHEP events POST: which stream, which events, until when unused."""

    stream: str
    events: frozenset[str]
    expires: float


Sampler = Callable[[], dict[str, StreamState]]


class EventHub:
    """All listeners of one server and the sampler that feeds them.

    `sample` reads the state of every stream: a router's, or the workers' load reports.
    """

    def __init__(self, sample: Sampler, max_streams: int) -> None:
        self.sample = sample
        self.max_streams = max_streams
        self.listeners: set[Listener] = set()
        self.subscriptions: dict[str, Subscription] = {}
        self.refused: collections.Counter[str] = collections.Counter()  # by reason
        self.dropped_slow = 0
        self._last: dict[str, StreamState] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling and end every open stream, so a server stops without waiting for
        each one's next heartbeat."""
        for listener in list(self.listeners):
            listener.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.tick()

    def tick(self) -> None:
        """Diff the router with the last sample and queue the changes."""
        if not self.listeners:
            self._last = {}
            return
        now = self.sample()
        for name in sorted(now.keys() | self._last.keys()):
            before, after = self._last.get(name), now.get(name)
            if before == after:
                continue
            for listener in self.listeners:
                if listener.matches(name):
                    listener.offer(listener.render(name, before, after))
        self._last = now

    def subscribe(self, stream: str, events: frozenset[str]) -> str:
        """A capability URL id for a WHEP event stream, or ValueError past the cap."""
        now = time.monotonic()
        for key in [k for k, s in self.subscriptions.items() if s.expires < now]:
            del self.subscriptions[key]
        if len(self.subscriptions) >= self.max_streams:
            self.refused["cap"] += 1
            raise ValueError("too many event subscriptions")
        key = secrets.token_urlsafe(16)
        self.subscriptions[key] = Subscription(stream, events, now + SUBSCRIPTION_TTL)
        return key

    async def serve(
        self,
        request: web.Request,
        listener: Listener,
        first: list[bytes],
        headers: Mapping[str, str],
    ) -> web.StreamResponse:
        """Hold an SSE response open until the client goes or falls too far behind.

        `headers` (CORS) go out with the first bytes: a prepared response's are final.
        """
        if len(self.listeners) >= self.max_streams:
            self.refused["cap"] += 1
            raise ValueError("too many open event streams")
        response = web.StreamResponse(
            headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.listeners.add(listener)
        if len(self.listeners) == 1:
            self._last = self.sample()  # listeners before this one got all the news
        try:
            listener.offer(first)
            while not listener.overflowed and not listener.closed:
                try:
                    item = await asyncio.wait_for(listener.queue.get(), HEARTBEAT)
                except asyncio.TimeoutError:
                    item = b": heartbeat\n\n"
                if item:
                    await response.write(item)
            if listener.overflowed:
                self.dropped_slow += 1
                log.info("event stream %s dropped: the client fell behind", request.path)
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self.listeners.discard(listener)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    def collector(self) -> Collector:
        return HubCollector(self)


class HubCollector(Collector):
    def __init__(self, hub: EventHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "litesfu_event_streams", "Open server-sent event streams", len(self.hub.listeners)
        )
        refused = CounterMetricFamily(
            "litesfu_event_requests_refused",
            "Event requests refused: past the cap, or malformed",
            labels=["reason"],
        )
        for reason in ("cap", "bad_request"):
            refused.add_metric([reason], self.hub.refused[reason])
        yield refused
        yield CounterMetricFamily(
            "litesfu_event_streams_dropped",
            "Event streams closed for falling behind",
            self.hub.dropped_slow,
        )


def parse_wanted(body: bytes) -> frozenset[str]:
    """The JSON list of event names a WHEP client POSTs; ValueError with a reason otherwise."""
    if len(body) > MAX_EVENTS_BODY:
        raise ValueError(f"body larger than {MAX_EVENTS_BODY} bytes")
    try:
        wanted = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("body must be a JSON list of event names") from exc
    if not isinstance(wanted, list) or not all(isinstance(e, str) for e in wanted):
        raise ValueError("body must be a JSON list of event names")
    unknown = sorted(set(wanted) - SUPPORTED)
    if unknown:
        raise ValueError(f"unsupported events: {', '.join(unknown)}")
    return frozenset(wanted)


def whep_listener(hub: EventHub, subscription: Subscription) -> tuple[Listener, list[bytes]]:
    """A listener of one stream's WHEP events, and the frames that tell it the state now."""

    def render(name: str, before: StreamState | None, after: StreamState | None) -> list[bytes]:
        return [f for event, f in whep_frames(before, after) if event in subscription.events]

    name = subscription.stream
    listener = Listener(lambda stream: stream == name, render)
    return listener, render(name, None, hub.sample().get(name, GONE))


def room_listener(hub: EventHub, room: str) -> tuple[Listener, list[bytes]]:
    """A listener of every stream named `room/...`, and the frames of those that exist now."""
    prefix = room + "/"

    def render(name: str, before: StreamState | None, after: StreamState | None) -> list[bytes]:
        return list(room_frames(name, before, after))

    listener = Listener(lambda stream: stream.startswith(prefix), render)
    now = hub.sample()
    first = [
        f for name in sorted(now) if name.startswith(prefix) for f in render(name, None, now[name])
    ]
    return listener, first
