"""The HTTP routes of a cluster node: relay set-up for other nodes, and the nodes list.

Routes under /cluster/v1/ take and answer bodies sealed under the cluster secret only
(signaling/cluster/link.py); anything else gets a 403 without a hint of why beyond "not sealed".
"""

from __future__ import annotations

import logging

from aiohttp import web

from signaling.cluster.link import MAX_SEALED_BYTES, SEALED_TYPE, LinkError, ReplayError
from signaling.cluster.node import Cluster
from signaling.cluster.relay_setup import keys_from_json
from signaling.serving.access import authorize_stats
from signaling.serving.plumbing import Rejection, read_bytes
from signaling.workers.internal import tracks_from_json, tracks_to_json
from signaling.workers.messages import address_from_data

log = logging.getLogger(__name__)

CLUSTER_NODE = web.AppKey("cluster_node", Cluster)


def add_cluster_routes(app: web.Application, cluster: Cluster) -> None:
    app[CLUSTER_NODE] = cluster
    app.router.add_post("/cluster/v1/relay-source", relay_source)
    app.router.add_post("/cluster/v1/relay-out", relay_out)
    app.router.add_post("/cluster/v1/relay-close", relay_close)
    app.router.add_get("/api/v1/nodes", list_nodes)


async def opened(request: web.Request) -> dict:
    """The sealed message of a node-to-node request; 403 for anything not sealed for it."""
    if request.content_length is not None and request.content_length > MAX_SEALED_BYTES:
        raise Rejection(413, "sealed body too large")
    body = await read_bytes(request, "sealed body")
    try:
        message = request.app[CLUSTER_NODE].link.open(request.path, body)
    except (LinkError, ValueError) as exc:
        why = "replayed" if isinstance(exc, ReplayError) else "unsealed"
        request.app[CLUSTER_NODE].refused[why] += 1
        raise Rejection(403, f"not sealed for this cluster: {exc}") from exc
    if not isinstance(message.get("stream", ""), str):
        request.app[CLUSTER_NODE].refused["malformed"] += 1
        raise Rejection(400, "stream must be a string")
    return message


def sealed(request: web.Request, message: dict, status: int = 200) -> web.Response:
    body = request.app[CLUSTER_NODE].link.seal(request.path, message)
    return web.Response(status=status, body=body, content_type=SEALED_TYPE)


async def relay_source(request: web.Request) -> web.Response:
    """The tracks of a stream published here and the address its relays come from."""
    message = await opened(request)
    cluster = request.app[CLUSTER_NODE]
    stream = message.get("stream", "")
    existing = cluster.media.router.stream_summary(stream)
    tracks = cluster.media.relays.source_tracks(stream)
    if tracks is None or existing is None or not existing.live or existing.publisher_relay:
        raise Rejection(404, f"stream {stream} is not live here")
    source = [cluster.config.relay_host, cluster.media.endpoint.port]
    return sealed(request, {"tracks": tracks_to_json(tracks), "source": source})


async def relay_out(request: web.Request) -> web.Response:
    """Send a stream to another node's relay address under the keys it chose; one per node."""
    message = await opened(request)
    cluster = request.app[CLUSTER_NODE]
    node = message.get("node")
    record = await cluster.node(node) if isinstance(node, str) else None
    if record is None:
        cluster.refused["unknown node"] += 1
        raise Rejection(403, f"node {node!r} is not registered")
    try:
        tracks = tracks_from_json(message.get("tracks"))
        target = address_from_data(message.get("target"), "target")
        keys = keys_from_json(message.get("keys"))
    except ValueError as exc:
        cluster.refused["malformed"] += 1
        raise Rejection(400, str(exc)) from exc
    if target[0] != record.get("relay", [None])[0]:
        cluster.refused["foreign target"] += 1
        raise Rejection(400, f"a relay goes to the relay host node {node} registered")
    stream = message["stream"]
    relays = cluster.media.relays
    for relay_id, (relayed, edge) in list(cluster.outbound.items()):
        if relayed == stream and edge == node:  # the edge lost track of it: the new one wins
            relays.close(relay_id, f"replaced by a new relay to {node}")
    session = relays.open_out(stream, tracks, target, keys)
    cluster.outbound[session.id] = (stream, node)
    return sealed(request, {"id": session.id}, status=201)


async def relay_close(request: web.Request) -> web.Response:
    message = await opened(request)
    cluster = request.app[CLUSTER_NODE]
    relay_id = message.get("id")
    if not isinstance(relay_id, str) or relay_id not in cluster.outbound:
        raise Rejection(404, "no such relay")
    cluster.media.relays.close(relay_id, "closed by its edge node")
    return sealed(request, {"closed": relay_id})


async def list_nodes(request: web.Request) -> web.Response:
    authorize_stats(request)
    cluster = request.app[CLUSTER_NODE]
    return web.json_response(
        {
            "node": cluster.name,
            "registry": cluster.connected,
            "nodes": cluster.nodes_view(),
            "refused": dict(cluster.refused),  # node-to-node requests refused, by why
        }
    )
