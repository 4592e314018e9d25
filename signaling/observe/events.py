"""Server-sent events: WHEP's active/inactive/viewercount/layers/reconnect and a room's streams.

The router is never asked to call back: a sampler reads its public state a few times a second
while anyone listens, diffs it with the last sample, and hands each change to the listeners
that want it. This module says what the events are and what a listener wants; the hub that
holds the listeners and bounds them is signaling.observe.event_hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfu.routing.stats import Layer

QUEUE_SIZE = 64  # events a listener may fall behind before it is dropped
WHEP_EVENTS = ("active", "inactive", "viewercount", "layers", "reconnect")
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


def reconnect_frame(url: str | None) -> bytes:
    """The `reconnect` event of the WHEP extensions: where to open a new session, now. Sent
    when this server stops or drains; `url` is another node's endpoint, or this one's."""
    return frame("reconnect", {"url": url})


def layers_data(layers: tuple[Layer, ...]) -> dict[str, list[dict]]:
    """The `layers` event's data: m-line index -> its layers, in the shape of the WHEP core
    extensions draft (rid, spatialLayerId of a VP9 SVC stream, width, height, bitrate; each
    only when known) plus `active`."""
    data: dict[str, list[dict]] = {}
    for layer in layers:
        entry: dict = {} if layer.rid is None else {"rid": layer.rid}
        if layer.spatial is not None:
            entry["spatialLayerId"] = layer.spatial
        if layer.width:
            entry |= {"width": layer.width, "height": layer.height}
        entry |= {"bitrate": round(layer.bitrate), "active": layer.active}
        data.setdefault(str(layer.mline), []).append(entry)
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
    """One open event stream: which streams it follows and the frames waiting for it; one that
    follows a thing of its own (a room session) instead has `poll`, called each hub tick."""

    matches: Callable[[str], bool]
    render: Callable[[str, StreamState | None, StreamState | None], list[bytes]]
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False
    closed: bool = False  # the server is stopping: end the stream now, not at a heartbeat
    poll: Callable[[], list[bytes]] | None = None
    ending: bool = False  # what it follows is gone: end once the queued frames are written
    # Its last words when the server goes away: from the base URL of another node (or None
    # for this one), the frames that tell its client where to reconnect.
    farewell: Callable[[str | None], list[bytes]] = lambda _base: []

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


@dataclass(eq=False)
class Subscription:
    """The answer to a WHEP events POST: which stream, which events, for which client, until
    when unused; `readers` counts its streams open now (it never expires while one is)."""

    stream: str
    events: frozenset[str]
    client: str
    expires: float
    readers: int = 0


Sampler = Callable[[], dict[str, StreamState]]


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


def whep_listener(sample: Sampler, subscription: Subscription) -> tuple[Listener, list[bytes]]:
    """A listener of one stream's WHEP events, and the frames that tell it the state now."""

    def render(name: str, before: StreamState | None, after: StreamState | None) -> list[bytes]:
        return [f for event, f in whep_frames(before, after) if event in subscription.events]

    def farewell(base: str | None) -> list[bytes]:
        if "reconnect" not in subscription.events:
            return []
        return [reconnect_frame(f"{(base or '').rstrip('/')}/whep/{name}")]

    name = subscription.stream
    listener = Listener(lambda stream: stream == name, render, farewell=farewell)
    return listener, render(name, None, sample().get(name, GONE))


def room_listener(sample: Sampler, room: str) -> tuple[Listener, list[bytes]]:
    """A listener of every stream named `room/...`, and the frames of those that exist now."""
    prefix = room + "/"

    def render(name: str, before: StreamState | None, after: StreamState | None) -> list[bytes]:
        return list(room_frames(name, before, after))

    listener = Listener(lambda stream: stream.startswith(prefix), render)
    now = sample()
    first = [
        f for name in sorted(now) if name.startswith(prefix) for f in render(name, None, now[name])
    ]
    return listener, first
