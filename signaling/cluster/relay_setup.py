"""How one relay between two nodes is opened and closed, from the node that receives it.

node.py decides which relays should exist (the heartbeat, a play that needs one); this is the
exchange that makes one: ask the stream's owner for its tracks and source address, open our
relay-in end under fresh SRTP keys, and ask the owner to send to it (api.py answers on the
other node). Every request and answer is sealed (link.py), the keys included, in the form
keys_to_json writes and keys_from_json checks. Whatever keeps a relay from being had now is
ClusterUnavailable, which node.py turns into a 503 or retries at the next heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiohttp

from sfu.io.server import MediaServer
from sfu.protocol.dtls import SrtpKeys
from sfu.routing.relay import RELAY_KEY_BYTES, RELAY_PROFILE, mirrored, relay_keys
from sfu.routing.router import StreamBusy
from signaling.cluster.link import SEALED_TYPE, ClusterLink, LinkError
from signaling.workers.internal import tracks_from_json
from signaling.workers.messages import address_from_data

CALL_TIMEOUT = 3.0  # seconds a node-to-node request may take


class ClusterUnavailable(Exception):
    """A relay this node needs cannot be had now; the reason goes to the client with a 503."""


@dataclass
class EdgeRelay:
    """A stream this node receives from its owner."""

    origin: str  # the owner's node name
    in_id: str  # our relay-in end
    out_id: str  # the owner's relay-out end
    created: float


def keys_to_json(keys: SrtpKeys) -> dict:
    return {"profile": keys.profile, "local": keys.local_key.hex(), "remote": keys.remote_key.hex()}


def keys_from_json(data: object) -> SrtpKeys:
    if not isinstance(data, dict):
        raise ValueError("keys must be an object")
    try:
        keys = SrtpKeys(
            int(data["profile"]), bytes.fromhex(data["local"]), bytes.fromhex(data["remote"])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"bad keys: {exc}") from exc
    lengths = {len(keys.local_key), len(keys.remote_key)}
    if keys.profile != RELAY_PROFILE or lengths != {RELAY_KEY_BYTES}:
        raise ValueError("relay keys of the wrong profile or length")
    return keys


class RelaySetup:
    """The sealed requests this node makes to other nodes to open and close its relays."""

    def __init__(
        self, media: MediaServer, link: ClusterLink, node_name: str, relay_host: str
    ) -> None:
        self.media = media
        self.link = link
        self.node_name = node_name
        self.relay_host = relay_host
        self._http: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT))

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def open_edge(self, stream: str, owner: str, node: dict) -> EdgeRelay | None:
        """Open a relay of `stream` from `owner`, whose record is `node`; None when the stream
        is not live there yet or a publisher got here first."""
        status, source = await self.call(node, "/cluster/v1/relay-source", {"stream": stream})
        if status == 404:
            return None  # not live there yet: the players wait here, the heartbeat tries again
        if status != 200:
            raise ClusterUnavailable(f"node {owner} refused the relay: {source.get('reason')}")
        try:
            tracks = tracks_from_json(source.get("tracks"))
            origin_addr = address_from_data(source.get("source"), "source")
        except ValueError as exc:
            raise ClusterUnavailable(f"node {owner} sent a bad relay source: {exc}") from exc
        keys = relay_keys()
        try:
            relay = self.media.relays.open_in(
                stream, tracks, origin_addr, keys, host=self.relay_host
            )
        except StreamBusy:
            return None  # a publisher got here first
        body = {
            "stream": stream,
            "node": self.node_name,
            "target": list(relay.addr),
            "tracks": source["tracks"],
            "keys": keys_to_json(mirrored(keys)),
        }
        try:
            status, made = await self.call(node, "/cluster/v1/relay-out", body)
        except ClusterUnavailable:
            relay.session.close(f"node {owner} did not answer")
            raise
        if status != 201 or not isinstance(made.get("id"), str):
            relay.session.close(f"node {owner} refused")
            raise ClusterUnavailable(f"node {owner} refused the relay: {made.get('reason')}")
        return EdgeRelay(owner, relay.session.id, made["id"], time.monotonic())

    async def close_edge(self, edge: EdgeRelay, node: dict | None, why: str) -> None:
        """Close our end of `edge`, and ask its owner (when `node` has its record) to stop."""
        self.media.relays.close(edge.in_id, why)
        if node is not None:
            with contextlib.suppress(ClusterUnavailable):
                await self.call(node, "/cluster/v1/relay-close", {"id": edge.out_id})

    async def call(self, node: dict, path: str, message: dict) -> tuple[int, dict]:
        """POST a sealed message to another node; (status, its sealed answer or a reason)."""
        if self._http is None:
            raise ClusterUnavailable("cluster not started")
        url = str(node.get("url", "")).rstrip("/") + path
        try:
            async with self._http.post(
                url, data=self.link.seal(path, message), headers={"Content-Type": SEALED_TYPE}
            ) as response:
                body = await response.read()
                if response.content_type == SEALED_TYPE:
                    return response.status, self.link.open(path, body)
                return response.status, {"reason": body.decode(errors="replace").strip()}
        except (aiohttp.ClientError, asyncio.TimeoutError, LinkError, ValueError) as exc:
            raise ClusterUnavailable(f"{url}: {exc or type(exc).__name__}") from exc
