"""The event hub: every open event stream of one server, the sampler that feeds them, and the
bounds that keep one client from holding them all.

- At most `max_streams` streams open and as many WHEP subscriptions outstanding, in all.
- Per client (an IPv4 address or an IPv6 /64): PER_CLIENT_STREAMS streams open and
  PER_CLIENT_SUBSCRIPTIONS subscriptions outstanding. A stream that belongs to a live session
  (a room participant's) is counted by that session instead, PER_SESSION_STREAMS at most:
  sessions are bounded by admission already, and a room behind one NAT address holds one
  stream per participant, more than a client's cap.
- A subscription only for a stream that exists (live, or with players), or one the client
  was just given a player of (`grant`: a --workers front hears of new players a second late).
- A stream whose client has gone is freed within LIVENESS seconds, not at its next heartbeat.
- A stream with no event for IDLE_LIMIT seconds (heartbeats aside) ends; EventSource and the
  pages reconnect, and get the state of the moment as their first events.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signaling.observe.events import Listener, Sampler, StreamState, Subscription
from signaling.security.clients import client_key
from signaling.serving.redact import redacted_path

log = logging.getLogger(__name__)

SAMPLE_INTERVAL = 0.25  # seconds between looks at the router while someone listens
HEARTBEAT = 15.0  # seconds between comments that keep proxies from closing an idle stream
LIVENESS = 1.0  # seconds between checks that a stream's client is still connected
IDLE_LIMIT = 600.0  # seconds a stream may go without an event before it ends
SUBSCRIPTION_TTL = 60.0  # seconds an event-stream URL lives with nobody reading it
PER_CLIENT_STREAMS = 8  # event streams one client may hold open
PER_CLIENT_SUBSCRIPTIONS = 16  # WHEP event subscriptions one client may hold
PER_SESSION_STREAMS = 2  # a session's own stream, and its EventSource's reconnect overlapping
MAX_GRANTS = 4096  # (client, stream) pairs remembered for `grant`; the oldest go first
REFUSAL_KINDS = ("cap", "client_cap", "not_found", "bad_request")
FAREWELL_WAIT = 1.0  # seconds a stopping server waits for its `reconnect` events to go out


class EventRefused(Exception):
    """An event request refused: its HTTP status and one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class EventHub:
    """All listeners of one server and the sampler that feeds them.

    `sample` reads the state of every stream (a router's, or the workers' load reports);
    `exists` says whether one stream is there, without sampling them all.
    """

    def __init__(self, sample: Sampler, max_streams: int, exists: Callable[[str], bool]) -> None:
        self.sample = sample
        self.exists = exists
        self.max_streams = max_streams
        self.listeners: set[Listener] = set()
        self.open_by_client: collections.Counter[str] = collections.Counter()
        self.subscriptions: dict[str, Subscription] = {}
        self.refused: collections.Counter[str] = collections.Counter()  # by REFUSAL_KINDS
        self.dropped_slow = 0
        self.ended_idle = 0
        self.told_to_reconnect = 0
        self._grants: collections.OrderedDict[tuple[str, str], float] = collections.OrderedDict()
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

    async def say_goodbye(self, base_url: str | None, within: float = FAREWELL_WAIT) -> int:
        """The server is stopping or draining: tell every stream's client where to reconnect
        (`base_url`, another node, or this one when None), end each stream once that is
        written, and wait at most `within` seconds for them. Returns how many were told."""
        told = 0
        for listener in list(self.listeners):
            frames = listener.farewell(base_url)
            listener.offer(frames)
            listener.ending = True
            told += bool(frames)
        deadline = time.monotonic() + within
        while self.listeners and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.told_to_reconnect += told
        return told

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.tick()

    def tick(self) -> None:
        """Diff the router with the last sample and queue the changes."""
        if not self.listeners:
            self._last = {}
            return
        for listener in self.listeners:
            if listener.poll is not None:
                listener.offer(listener.poll())
        now = self.sample()
        for name in sorted(now.keys() | self._last.keys()):
            before, after = self._last.get(name), now.get(name)
            if before == after:
                continue
            for listener in self.listeners:
                if listener.matches(name):
                    listener.offer(listener.render(name, before, after))
        self._last = now

    def refuse(self, kind: str, status: int, reason: str) -> EventRefused:
        """Count a refusal of `kind` (one of REFUSAL_KINDS) and make its exception."""
        self.refused[kind] += 1
        return EventRefused(status, reason)

    def grant(self, address: str, stream: str) -> None:
        """`address` was just given a player of `stream`: it may subscribe to its events for
        SUBSCRIPTION_TTL seconds, even before the stream shows in a sample."""
        key = (client_key(address), stream)
        self._grants[key] = time.monotonic() + SUBSCRIPTION_TTL
        self._grants.move_to_end(key)
        while len(self._grants) > MAX_GRANTS:
            self._grants.popitem(last=False)

    def subscribe(self, stream: str, events: frozenset[str], address: str) -> str:
        """A capability URL id for a WHEP event stream, or EventRefused (404, 429 or 503)."""
        now = time.monotonic()
        for key in [k for k, s in self.subscriptions.items() if not s.readers and s.expires < now]:
            del self.subscriptions[key]
        client = client_key(address)
        if self._grants.get((client, stream), 0.0) < now and not self.exists(stream):
            raise self.refuse("not_found", 404, f"no stream {stream} here (not live, no players)")
        held = sum(1 for s in self.subscriptions.values() if s.client == client)
        if held >= PER_CLIENT_SUBSCRIPTIONS:
            raise self.refuse(
                "client_cap",
                429,
                f"{client} holds {held} event subscriptions, the limit",
            )
        if len(self.subscriptions) >= self.max_streams:
            raise self.refuse("cap", 503, "too many event subscriptions")
        key = secrets.token_urlsafe(16)
        self.subscriptions[key] = Subscription(stream, events, client, now + SUBSCRIPTION_TTL)
        return key

    async def serve(
        self,
        request: web.Request,
        listener: Listener,
        first: list[bytes],
        headers: Mapping[str, str],
        session: str | None = None,
    ) -> web.StreamResponse:
        """Hold an SSE response open until the client goes, falls too far behind or has had
        no event for IDLE_LIMIT seconds; EventRefused past a cap.

        `headers` (CORS) go out with the first bytes: a prepared response's are final. A
        stream of a live `session` is counted against that session, not its client address.
        """
        if session is None:
            client, cap, holder = client_key(request.remote or ""), PER_CLIENT_STREAMS, None
        else:
            client, cap, holder = f"session {session}", PER_SESSION_STREAMS, "this session"
        if len(self.listeners) >= self.max_streams:
            raise self.refuse("cap", 503, "too many open event streams")
        if self.open_by_client[client] >= cap:
            raise self.refuse(
                "client_cap", 429, f"{holder or client} holds {cap} event streams open, the limit"
            )
        response = web.StreamResponse(
            headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.listeners.add(listener)
        self.open_by_client[client] += 1
        if len(self.listeners) == 1:
            self._last = self.sample()  # listeners before this one got all the news
        try:
            listener.offer(first)
            await self._follow(request, response, listener)
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self.listeners.discard(listener)
            self.open_by_client[client] -= 1
            if self.open_by_client[client] <= 0:
                del self.open_by_client[client]
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    async def _follow(
        self, request: web.Request, response: web.StreamResponse, listener: Listener
    ) -> None:
        """Write the listener's frames, and heartbeats when there are none, until it ends."""
        now = time.monotonic()
        beat, idle_until = now + HEARTBEAT, now + IDLE_LIMIT
        while not (
            listener.overflowed or listener.closed or (listener.ending and listener.queue.empty())
        ):
            transport = request.transport
            if transport is None or transport.is_closing():
                return  # the client went away: its place is free now, not at the heartbeat
            now = time.monotonic()
            if now >= idle_until:
                self.ended_idle += 1
                return
            if now >= beat:
                await response.write(b": heartbeat\n\n")
                beat = now + HEARTBEAT
            try:
                wait = max(0.0, min(LIVENESS, beat - now, idle_until - now))
                item = await asyncio.wait_for(listener.queue.get(), wait)
            except asyncio.TimeoutError:
                continue
            if item:
                await response.write(item)
                idle_until = time.monotonic() + IDLE_LIMIT
        if listener.overflowed:
            self.dropped_slow += 1
            log.info("event stream %s dropped: the client fell behind", redacted_path(request.path))

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
            "Event requests refused: past the cap or a client's cap, no such stream, malformed",
            labels=["reason"],
        )
        for reason in REFUSAL_KINDS:
            refused.add_metric([reason], self.hub.refused[reason])
        yield refused
        yield CounterMetricFamily(
            "litesfu_event_streams_dropped",
            "Event streams closed for falling behind",
            self.hub.dropped_slow,
        )
        yield CounterMetricFamily(
            "litesfu_event_streams_idle_ended",
            f"Event streams ended after {IDLE_LIMIT:g} s without an event",
            self.hub.ended_idle,
        )
