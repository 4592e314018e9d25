"""One node of a cluster: its record, its stream claims, and the relays between nodes.

Every HEARTBEAT a node writes its record (URL, relay address, load) to the registry with a TTL,
renews the claim of each stream it has a publisher for, and reconciles relays: a stream some
local player waits for that another live node owns gets a relay from that node (one per stream,
however many local players), and a relay whose owner lost its claim, whose edge node is gone or
whose edge has no players left is closed. Relays are set up node to node (relay_setup.py) over
the sealed link (link.py) and carry SRTP under keys made for each relay. While the registry
cannot be reached nothing running is touched: media keeps flowing, local publish and play keep
working, only a play that would need a new relay is refused, and the loop retries with backoff.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass

import psutil
from aiohttp import web

from sfu.io.server import MediaServer
from sfu.routing.router import PUBLISH
from signaling.cluster.link import ClusterLink
from signaling.cluster.registry import Registry, RegistryError
from signaling.cluster.relay_setup import ClusterUnavailable, EdgeRelay, RelaySetup
from signaling.cluster.rooms import room_streams
from signaling.serving.plumbing import Rejection, unavailable

log = logging.getLogger(__name__)

HEARTBEAT = 1.0  # seconds between record writes, claim renewals and relay checks
TTL = 5.0  # seconds a record or claim outlives the last heartbeat of a node that died
MAX_BACKOFF = 8.0  # seconds between attempts while the registry is unreachable
CLAIM_GRACE = 15.0  # seconds a claim is kept for a publish whose offer is still under way
RELAY_GRACE = 5.0  # seconds a new relay lives without local players, for offers in flight
# Seconds without a packet from a relay's other end before a missing claim or record counts:
# right after Redis restarts empty, records and claims are missing until their holders
# heartbeat again, but their relays still carry media and are left alone.
SILENT = 3.0


@dataclass(frozen=True)
class ClusterConfig:
    node_name: str
    public_url: str
    relay_host: str
    redirect: bool = False
    drain_timeout: float = 30.0
    candidates: tuple[str, ...] = ()  # this node's media candidates, for its record


class Cluster:
    def __init__(
        self, media: MediaServer, registry: Registry, link: ClusterLink, config: ClusterConfig
    ) -> None:
        self.media = media
        self.registry = registry
        self.link = link
        self.config = config
        self.name = config.node_name
        self.nodes: dict[str, dict] = {}  # as last read from the registry
        self.connected = False
        self.draining = False
        # stream -> when a publish of it was admitted (0 once its publisher was seen here)
        self.claimed: dict[str, float] = {}
        self.edges: dict[str, EdgeRelay] = {}  # by stream
        self.outbound: dict[str, tuple[str, str]] = {}  # relay-out id -> (stream, edge node)
        self._setups: dict[str, asyncio.Task[None]] = {}
        self.refused: collections.Counter[str] = collections.Counter()  # node requests, by why
        self._task: asyncio.Task | None = None
        self.relay_setup = RelaySetup(media, link, config.node_name, config.relay_host)
        self._process = psutil.Process()
        self._process.cpu_percent()  # the first reading is always 0

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self.relay_setup.start()
        self._task = asyncio.create_task(self._run())

    async def drain(self) -> None:
        """Refuse new sessions and wait (at most drain_timeout) for the local ones to end."""
        self.draining = True
        log.info("draining: no new sessions; waiting up to %gs", self.config.drain_timeout)
        with contextlib.suppress(RegistryError):
            await self.registry.put_node(self.name, self.record(), TTL)
        deadline = time.monotonic() + self.config.drain_timeout
        while self.media.router.session_count() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        log.info("drained: %d sessions left", self.media.router.session_count())

    async def stop(self) -> None:
        """Leave the registry: claims released, record removed, relays closed."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for stream in list(self.edges):
            await self._close_edge(stream, "node leaving the cluster")
        for relay_id in list(self.outbound):
            self.media.relays.close(relay_id, "node leaving the cluster")
        with contextlib.suppress(RegistryError):
            for stream in list(self.claimed):
                await self.registry.release(stream, self.name)
            await self.registry.remove_node(self.name)
        await self.registry.close()
        await self.relay_setup.stop()

    async def _run(self) -> None:
        delay = HEARTBEAT
        while True:
            try:
                await self.sync()
            except RegistryError as exc:
                if self.connected or delay == HEARTBEAT:
                    log.warning("registry unreachable (%s); retrying with backoff", exc)
                self.connected = False
                delay = min(delay * 2, MAX_BACKOFF)
            except Exception:
                log.exception("cluster sync failed; continuing")
            else:
                if not self.connected:
                    log.info("node %s registered (%d nodes)", self.name, len(self.nodes))
                self.connected = True
                delay = HEARTBEAT
            await asyncio.sleep(delay)

    # --- what this node has -----------------------------------------------------------------

    def local_players(self) -> dict[str, int]:
        """Players of real peers per stream (relays to other nodes or workers left out)."""
        relayed = self.media.relays.relayed_players()
        streams = self.media.router.stream_summaries()
        counts = {name: s.players - relayed[name] for name, s in streams.items()}
        return {name: count for name, count in counts.items() if count > 0}

    def local_publishers(self) -> set[str]:
        """Streams with a publisher of this node's own (pending or live), relays left out."""
        return {
            name
            for name, stream in self.media.router.stream_summaries().items()
            if stream.has_publisher and not stream.publisher_relay
        }

    def record(self) -> dict:
        players = self.local_players()
        return {
            "url": self.config.public_url,
            "relay": [self.config.relay_host, self.media.endpoint.port],
            "candidates": list(self.config.candidates),
            "sessions": self.media.router.session_count(),
            "players": sum(players.values()),
            "cpu": self._process.cpu_percent(),
            "draining": self.draining,
            "streams": players,
            "publishing": sorted(self.local_publishers()),
            "relays": len(self.edges) + len(self.outbound),
        }

    # --- the heartbeat ----------------------------------------------------------------------

    async def sync(self) -> None:
        await self.registry.put_node(self.name, self.record(), TTL)
        self.nodes = await self.registry.nodes()
        await self._sync_claims()
        await self._sync_edges()
        self._sync_outbound()

    async def _sync_claims(self) -> None:
        now = time.monotonic()
        local = self.local_publishers()
        for stream in local | set(self.claimed):
            if stream in local or now - self.claimed[stream] < CLAIM_GRACE:
                owner = await self.registry.claim(stream, self.name, TTL)
                if stream in local:
                    self.claimed[stream] = 0.0  # the grace was for its offer: it is over
                if owner != self.name:
                    log.warning("stream %s: published here but claimed by %s", stream, owner)
            else:
                await self.registry.release(stream, self.name)
                del self.claimed[stream]

    def room_relays(self, rooms: Collection[str] | None = None) -> dict[str, str]:
        """stream -> owner of the participant streams other nodes publish in `rooms` (default:
        every room with a subscriber here), which this node relays in."""
        router = self.media.router
        chosen = router.room_names() if rooms is None else rooms
        return room_streams(self.nodes, self.name, chosen, router.config.max_room_participants)

    async def _sync_edges(self) -> None:
        players = self.local_players()
        for_rooms = self.room_relays()
        streams = self.media.router.stream_summaries()
        now = time.monotonic()
        for stream, edge in list(self.edges.items()):
            owner = await self.registry.owner(stream)
            relay = self.media.relays.inbound.get(edge.in_id)
            if relay is None:
                await self._close_edge(stream, "its relay ended")
            elif owner is not None and owner != edge.origin:
                await self._close_edge(stream, f"{owner} has the stream now")
            elif owner is None and now - relay.session.last_seen > SILENT:
                await self._close_edge(stream, f"{edge.origin} no longer has the stream")
            elif (
                stream not in players
                and stream not in for_rooms
                and now - edge.created > RELAY_GRACE
            ):
                await self._close_edge(stream, "no players or rooms left here")
        for stream in players:
            if streams[stream].has_publisher:
                continue
            owner = await self.registry.owner(stream)
            if owner is not None and owner != self.name and owner in self.nodes:
                await self._try_relay(stream, owner)
        await self._relay_rooms(for_rooms)

    async def _relay_rooms(self, wanted: dict[str, str]) -> None:
        """Relay in, at once, each of `wanted` (stream -> owner) not here already."""
        streams = self.media.router.stream_summaries()
        missing = [
            (stream, owner)
            for stream, owner in wanted.items()
            if stream not in self.edges
            and not (stream in streams and streams[stream].has_publisher)
        ]
        await asyncio.gather(*(self._try_relay(stream, owner) for stream, owner in missing))

    async def _try_relay(self, stream: str, owner: str) -> None:
        """ensure_relay, or a warning: the heartbeat tries again."""
        try:
            await self.ensure_relay(stream, owner)
        except ClusterUnavailable as exc:
            log.warning("stream %s: no relay from %s yet: %s", stream, owner, exc)

    def _sync_outbound(self) -> None:
        relays = self.media.relays
        for relay_id, (_, node) in list(self.outbound.items()):
            session = relays.outbound.get(relay_id)
            if session is None:
                del self.outbound[relay_id]
            elif node not in self.nodes and time.monotonic() - session.last_seen > SILENT:
                relays.close(relay_id, f"node {node} is gone")

    async def node(self, name: str) -> dict | None:
        """A live node's record: as last read, or read again for a node that joined since."""
        if name not in self.nodes:
            with contextlib.suppress(RegistryError):
                self.nodes = await self.registry.nodes()
        return self.nodes.get(name)

    # --- relays this node receives ----------------------------------------------------------

    async def ensure_relay(self, stream: str, owner: str) -> None:
        """A relay of `stream` from `owner` to here, set up once however many ask at once."""
        if stream in self.edges:
            return
        setup = self._setups.get(stream)
        if setup is None:
            setup = self._setups[stream] = asyncio.create_task(self._open_edge(stream, owner))
            setup.add_done_callback(lambda _: self._setups.pop(stream, None))
        await asyncio.shield(setup)

    async def _open_edge(self, stream: str, owner: str) -> None:
        node = await self.node(owner)
        if node is None:
            raise ClusterUnavailable(f"node {owner} that has the stream is not registered")
        edge = await self.relay_setup.open_edge(stream, owner, node)
        if edge is not None:
            self.edges[stream] = edge
            log.info("relay %s: from node %s", stream, owner)

    async def _close_edge(self, stream: str, why: str) -> None:
        edge = self.edges.pop(stream)
        await self.relay_setup.close_edge(edge, self.nodes.get(edge.origin), why)
        log.info("relay %s from node %s closed: %s", stream, edge.origin, why)

    # --- what the public handlers ask -------------------------------------------------------

    async def admit(self, request: web.Request, role: str, stream: str) -> None:
        """Before an offer is read: refuse while draining, claim a publish, relay for a play."""
        if self.draining:
            raise self._elsewhere(request, None, "this node is draining")
        if role == PUBLISH:
            await self._admit_publish(request, stream)
        else:
            await self._admit_play(stream)

    async def admit_room(self, request: web.Request, room: str) -> None:
        """Before a join's offer is read: refuse while draining, and relay in the streams other
        nodes publish in `room`, so that the joiner's first slots carry them."""
        if self.draining:
            raise self._elsewhere(request, None, "this node is draining")
        with contextlib.suppress(RegistryError):
            self.nodes = await self.registry.nodes()
        await self._relay_rooms(self.room_relays({room}))

    async def _admit_publish(self, request: web.Request, stream: str) -> None:
        try:
            owner = await self.registry.claim(stream, self.name, TTL)
        except RegistryError as exc:
            log.warning("publish %s without a claim (%s); claimed once it is back", stream, exc)
            self.claimed[stream] = time.monotonic()
            return
        if owner != self.name:
            raise self._elsewhere(request, owner, f"stream {stream} is published on {owner}")
        self.claimed[stream] = time.monotonic()
        if stream in self.edges:  # the owner we relayed from lost its claim: it is ours now
            await self._close_edge(stream, "published here now")

    async def _admit_play(self, stream: str) -> None:
        existing = self.media.router.stream_summary(stream)
        if (existing is not None and existing.has_publisher) or stream in self.edges:
            return
        try:
            owner = await self.registry.owner(stream)
        except RegistryError as exc:
            raise unavailable(f"cluster registry unreachable, cannot relay {stream}") from exc
        if owner is None or owner == self.name:
            return  # the player waits for a publisher, here or on any node
        try:
            await self.ensure_relay(stream, owner)
        except ClusterUnavailable as exc:
            raise unavailable(f"cannot relay {stream} from {owner}: {exc}") from exc

    def _elsewhere(self, request: web.Request, owner: str | None, reason: str) -> Rejection:
        """307 to the owner (or the least loaded other node) with --cluster-redirect, else
        409 for a stream owned elsewhere or 503 for a draining node."""
        target = self.nodes.get(owner) if owner is not None else self._least_loaded()
        if self.config.redirect and target is not None and target.get("url"):
            location = str(target["url"]).rstrip("/") + request.path_qs
            return Rejection(307, f"{reason}: see {location}", {"Location": location})
        return Rejection(409, reason) if owner is not None else unavailable(reason)

    def peer_urls(self) -> list[str]:
        """The other live nodes' base URLs: where this node's pages may connect."""
        return [str(r["url"]) for n, r in self.nodes.items() if n != self.name and r.get("url")]

    def reconnect_target(self) -> str | None:
        """The base URL of the node this one's clients should move to when it leaves: the
        least loaded other node that is not draining, or None when there is none."""
        target = self._least_loaded()
        return str(target["url"]) if target is not None and target.get("url") else None

    def _least_loaded(self) -> dict | None:
        others = [
            r for n, r in self.nodes.items() if n != self.name and not r.get("draining", False)
        ]
        return min(others, key=lambda r: r.get("sessions", 0), default=None)

    # --- views for the stats API ------------------------------------------------------------

    def streams_view(self) -> dict:
        """Per stream of the whole cluster: its owner and its players on each node."""
        view: dict[str, dict] = {}
        for node, record in sorted(self.nodes.items()):
            for stream in record.get("publishing", []):
                view.setdefault(stream, {"owner": None, "players": {}})["owner"] = node
            for stream, count in record.get("streams", {}).items():
                view.setdefault(stream, {"owner": None, "players": {}})["players"][node] = count
        return view

    def nodes_view(self) -> list[dict]:
        keys = ("url", "relay", "candidates", "sessions", "players", "cpu", "draining", "relays")
        return [
            {"name": name, **{k: record.get(k) for k in keys}}
            for name, record in sorted(self.nodes.items())
        ]
