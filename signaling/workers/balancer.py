"""Which worker takes a publisher or a player, and the relays that let players spread.

A stream's publisher always goes to its origin worker, a stable hash of its name, so a republish
or an early player finds it there. A room's joins go to the hash of the room's name, and once a
room has been joined through this front, its members' streams `ROOM/NAME` are hashed by the
room part too: the room's worker must hold all of them to serve the room. Other two-segment
names (an SRS app's `live/a`, `live/b`, ...) keep the hash of the whole name, so they still
spread over the workers. So a participant joins before it publishes (room.html does); a stream
`ROOM/X` published before anyone joined ROOM stays on its own origin until it republishes.
Players go to the origin until it carries `cap` of them, then to the least loaded other worker,
which gets the stream by a loopback relay from the origin. The balancer keeps its own count of
players per worker and stream: refreshed from every worker once a second, and raised at once
for each player it places, so a burst of offers spreads correctly between two refreshes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import zlib
from dataclasses import dataclass
from urllib.parse import quote

from signaling.workers.messages import (
    LoadReport,
    M,
    RelayInOpened,
    RelayInRequest,
    RelayOutOpened,
    RelayOutRequest,
    RelayRequest,
    RelaySource,
)
from signaling.workers.pool import Worker, WorkerError, WorkerPool

log = logging.getLogger(__name__)

REFRESH_INTERVAL = 1.0  # seconds between load refreshes and relay checks
RELAY_GRACE = 5.0  # seconds a new relay lives even with no players, for offers in flight
MAX_ROOMS = 4096  # rooms remembered as joined through this front; the least recently joined go


@dataclass
class Relay:
    stream: str
    origin: int
    edge: int
    in_id: str  # the relay-in end on the edge
    out_id: str  # the relay-out end on the origin
    created: float


class Placement:
    """A player counted on a worker while its offer is under way: the count stays unless the
    offer fails (an exception, or `accepted` set False when the worker refused it)."""

    def __init__(self, balancer: Balancer, index: int, stream: str) -> None:
        self.balancer = balancer
        self.key = (index, stream)
        self.accepted = True

    def __enter__(self) -> Placement:
        self._count(1)
        self.balancer.in_flight[self.key] += 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        in_flight = self.balancer.in_flight
        in_flight[self.key] -= 1
        if not in_flight[self.key]:
            del in_flight[self.key]
        if exc_type is not None or not self.accepted:
            self._count(-1)

    def _count(self, delta: int) -> None:
        index, stream = self.key
        self.balancer.players[index][stream] += delta
        self.balancer.since_refresh[index][stream] += delta


class Balancer:
    """Placement of sessions on workers and the life cycle of relays between them."""

    def __init__(self, pool: WorkerPool, cap: int) -> None:
        self.pool = pool
        self.cap = cap
        count = len(pool.workers)
        self.players: list[collections.Counter[str]] = [collections.Counter() for _ in range(count)]
        self.since_refresh: list[collections.Counter[str]] = [
            collections.Counter() for _ in range(count)
        ]
        self.in_flight: collections.Counter[tuple[int, str]] = collections.Counter()
        self.relays: dict[tuple[str, int], Relay] = {}
        self._setups: dict[tuple[str, int], asyncio.Task[bool]] = {}
        self._refreshed_from = 0.0
        self._task: asyncio.Task | None = None
        self.rooms: collections.OrderedDict[str, None] = collections.OrderedDict()

    def joined(self, room: str) -> None:
        """A join of `room` went through this front: its members' streams follow the room."""
        self.rooms[room] = None
        self.rooms.move_to_end(room)
        while len(self.rooms) > MAX_ROOMS:
            self.rooms.popitem(last=False)

    def origin(self, stream: str) -> Worker:
        """The worker that takes `stream`'s publisher (and a room's joins, given its name): the
        same one for as long as N is, and the room's for a member of a joined room."""
        room = stream.partition("/")[0]
        key = room if room in self.rooms else stream
        return self.pool.workers[zlib.crc32(key.encode()) % len(self.pool.workers)]

    async def player_worker(self, stream: str) -> Worker:
        """The origin while it has room or the stream is not live; else a relayed edge."""
        origin = self.origin(stream)
        if self.players[origin.index][stream] < self.cap:
            return origin
        others = [w for w in self.pool.workers if w is not origin and w.ready]
        if not others:
            return origin
        edge = min(others, key=lambda w: (sum(self.players[w.index].values()), w.index))
        if await self.ensure_relay(stream, edge):
            return edge
        return origin

    def placing(self, worker: Worker, stream: str) -> Placement:
        """Count a player on `worker` from now on; see Placement."""
        return Placement(self, worker.index, stream)

    async def ensure_relay(self, stream: str, edge: Worker) -> bool:
        """A relay of `stream` from its origin to `edge`, made once however many ask at once."""
        key = (stream, edge.index)
        if key in self.relays:
            return True
        setup = self._setups.get(key)
        if setup is None:
            setup = self._setups[key] = asyncio.create_task(self._open_relay(stream, edge))
            setup.add_done_callback(lambda _: self._setups.pop(key, None))
        return await asyncio.shield(setup)

    async def _open_relay(self, stream: str, edge: Worker) -> bool:
        origin = self.origin(stream)
        pool = self.pool
        try:
            path = f"/internal/relay-source?stream={quote(stream)}"
            source = await pool.ask(origin, "GET", path, RelaySource)
        except WorkerError:
            return False  # not live on the origin: players wait there for it
        asked_in = RelayInRequest(stream, source.tracks, source.source)
        made_in = await self._open_end(edge, edge, "/internal/relay-in", asked_in, RelayInOpened)
        if made_in is None:
            return False
        asked_out = RelayOutRequest(stream, source.tracks, made_in.addr)
        path = "/internal/relay-out"
        made_out = await self._open_end(origin, edge, path, asked_out, RelayOutOpened)
        if made_out is None:
            await pool.call(edge, "DELETE", f"/internal/relays/{made_in.id}")
            return False
        self.relays[(stream, edge.index)] = Relay(
            stream, origin.index, edge.index, made_in.id, made_out.id, time.monotonic()
        )
        log.info("relay %s: worker %d -> worker %d", stream, origin.index, edge.index)
        return True

    async def _open_end(
        self, worker: Worker, edge: Worker, path: str, asked: RelayRequest, reply: type[M]
    ) -> M | None:
        """One end of the relay of `asked.stream` to `edge`, or None (logged) if refused."""
        try:
            return await self.pool.ask(worker, "POST", path, reply, asked, 201)
        except WorkerError as exc:
            end = "edge" if worker is edge else "origin"
            log.warning("relay %s to worker %d: %s refused: %s", asked.stream, edge.index, end, exc)
            return None

    async def _close_relay(self, relay: Relay, why: str) -> None:
        self.relays.pop((relay.stream, relay.edge), None)
        workers = self.pool.workers
        await self.pool.call(workers[relay.edge], "DELETE", f"/internal/relays/{relay.in_id}")
        await self.pool.call(workers[relay.origin], "DELETE", f"/internal/relays/{relay.out_id}")
        log.info(
            "relay %s: worker %d -> %d closed: %s", relay.stream, relay.origin, relay.edge, why
        )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
                await self.check_relays()
            except Exception:
                log.exception("balancer refresh failed; continuing")
            await asyncio.sleep(REFRESH_INTERVAL)

    async def refresh(self) -> None:
        """Players per stream from every worker, plus what was placed since the request."""
        self._refreshed_from = time.monotonic()
        ready = [w for w in self.pool.workers if w.ready]
        for worker in ready:
            # Offers under way may or may not be in the answer: count them, erring high.
            self.since_refresh[worker.index] = collections.Counter(
                {s: n for (i, s), n in self.in_flight.items() if i == worker.index and n > 0}
            )
        answers = await asyncio.gather(
            *(self.pool.ask(w, "GET", "/internal/load", LoadReport) for w in ready),
            return_exceptions=True,
        )
        for worker, load in zip(ready, answers, strict=True):
            if isinstance(load, WorkerError):
                continue
            if isinstance(load, BaseException):
                raise load
            worker.load = load
            counts = collections.Counter(load.players())
            counts.update(self.since_refresh[worker.index])
            self.players[worker.index] = counts

    async def check_relays(self) -> None:
        """Close relays whose ends are gone or whose edge has no players left; open relays to
        edges whose players wait for a stream that is live again on its origin."""
        workers = self.pool.workers
        for relay in list(self.relays.values()):
            if relay.created >= self._refreshed_from:
                continue  # the loads were asked for before it existed
            edge, origin = workers[relay.edge], workers[relay.origin]
            if relay.in_id not in edge.load.relays_in:
                await self._close_relay(relay, "its edge end has ended")
            elif relay.out_id not in origin.load.relays_out:
                await self._close_relay(relay, "its origin end has ended")
            elif (
                not self.players[relay.edge][relay.stream]
                and not self.in_flight[(relay.edge, relay.stream)]
                and time.monotonic() - relay.created > RELAY_GRACE
            ):
                await self._close_relay(relay, "no players left on the edge")
        for worker in workers:
            for stream, count in list(self.players[worker.index].items()):
                origin = self.origin(stream)
                if count <= 0 or origin is worker or (stream, worker.index) in self.relays:
                    continue
                if origin.load.publishing(stream):
                    await self.ensure_relay(stream, worker)
