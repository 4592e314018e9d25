"""One media process: the media server, its HTTP app, observability and, with --redis-url, its
place in the cluster; it serves until SIGINT or SIGTERM (or, as a worker, its front's end)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os

from aiohttp import web

from sfu.config import MediaConfig
from sfu.io.server import BindError, MediaServer
from sfu.io.shared_port import SharedPort
from signaling.cluster.api import add_cluster_routes
from signaling.cluster.link import ClusterLink
from signaling.cluster.node import Cluster, ClusterConfig
from signaling.cluster.registry import RedisRegistry
from signaling.http.app import create_app
from signaling.http.state import CLUSTER
from signaling.observe.routes import HUB
from signaling.observe.wiring import add_observability
from signaling.sdp.candidates import AUTO, default_candidates, interface_addresses
from signaling.security.admission import Admission, AdmissionPolicy
from signaling.security.auth import Authenticator
from signaling.security.hooks import HttpHooks
from signaling.security.limits import Limits
from signaling.serving.binding import refuse_bind
from signaling.serving.connections import guarded, listen
from signaling.serving.page_headers import CONNECT_ORIGINS
from signaling.serving.plumbing import app_runner
from signaling.serving.process import connection_guard, stop_event, tls_context
from signaling.startup.values import ResolvedCandidate
from signaling.workers.internal import add_internal_routes
from signaling.workers.link import SECRET_ENV

log = logging.getLogger("litesfu")

PARENT_CHECK_INTERVAL = 1.0  # seconds between a worker's checks that its front still runs


def freeze_startup_objects() -> int:
    """Put what start-up made (modules, classes, the app) out of the cyclic collector's reach,
    and return how many objects that was. They live as long as the process, so a collection
    could never free them, yet each full one walked them all: about 62,000 objects and 15-17
    ms here, a pause in which no packet is forwarded. Full collections now walk only what came
    since (sessions, streams)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def serve(args: argparse.Namespace) -> None:
    guard = connection_guard(args, args.worker_index is not None)
    auto = args.candidate == [AUTO]
    config = MediaConfig(
        udp_host=args.udp_host,
        udp_port=args.udp_port,
        tcp_port=args.udp_port if args.tcp_port is None else args.tcp_port,
        tcp_connections=args.tcp_connections,
        tcp_per_address=args.tcp_per_address,
        stun_servers=args.stun_servers,
        session_timeout=args.session_timeout,
        pending_timeout=args.pending_timeout,
        max_room_participants=args.max_room_participants,
        stream_data_replies=args.stream_data_replies,
        record_dir=args.record_dir,
        record_patterns=tuple(args.record),
        record_segment=args.record_segment,
    )
    media = MediaServer(config)
    try:
        await media.start()
    except BindError as exc:
        flag = "--udp-port" if exc.protocol == "UDP" else "--tcp-port"
        raise refuse_bind(exc.protocol, exc.host, exc.port, flag, exc) from exc
    # Automatic candidates include IPv6 addresses only when the media port took IPv6.
    candidates = (
        default_candidates(interface_addresses(), ipv6=media.endpoint.ipv6)
        if auto
        else args.candidate
    )
    app = create_app(
        media,
        candidates,
        args.web_root,
        auth=Authenticator(args.auth_token, args.auth_secret, protect_stats=args.auth_stats),
        limits=Limits(args.max_sessions, args.max_players),
        hooks=HttpHooks(args.hook_url),
        admission=Admission(
            AdmissionPolicy(args.client_pending, args.client_rate, args.client_burst)
        ),
        guard=guard,
        trust_proxy=args.trust_proxy,
        auto_candidates=auto,
        ice_servers=args.ice_servers,
        candidate_from_host=args.candidate_from_host,
    )
    add_observability(app, media, args.metrics_per_stream, args.max_event_streams)
    if args.worker_index is not None:
        try:
            add_internal_routes(app, os.environ.pop(SECRET_ENV, ""))
        except ValueError as exc:
            log.error("cannot start: %s (--worker-index is for the front's workers)", exc)
            raise SystemExit(1) from exc
    cluster = join_cluster(app, media, args, candidates) if args.redis_url else None
    stop = stop_event()
    runner = app_runner(app, args.header_timeout)
    await runner.setup()
    tls = tls_context(args) if args.worker_index is None else None
    shares = args.http_ice_tcp and args.worker_index is None and args.http_port != 0
    try:
        if shares and media.endpoint.tcp is not None:
            server: asyncio.AbstractServer | SharedPort = SharedPort(
                guarded(runner, guard), media.endpoint.tcp, tls
            )
            await server.open(args.http_host, args.http_port)
            media.shared_tcp_port = args.http_port  # answers name it from now on
        else:
            server = await listen(runner, args.http_host, args.http_port, guard, tls)
    except OSError as exc:
        await media.stop()
        raise refuse_bind("HTTP", args.http_host, args.http_port, "--http-port", exc) from exc
    if cluster is not None:
        await cluster.start()
    log.debug("%d start-up objects frozen out of the cyclic GC", freeze_startup_objects())
    for address in candidates:
        if isinstance(address, ResolvedCandidate):
            log.info("--candidate %s resolved to %s at start", address.name, address)
    log.info(
        "LiteSFU ready: %s://%s:%d (pages and API), media UDP %d, ICE-TCP %s, candidates %s%s",
        "https" if tls else "http",
        args.http_host,
        args.http_port,
        media.endpoint.port,
        ", ".join(map(str, media.tcp_ports)) or "off",
        ", ".join(candidates),
        " (auto: led by the Host header's IP literal)" if auto else "",
    )
    watch = asyncio.create_task(exit_with_parent(stop)) if args.worker_index is not None else None
    await stop.wait()
    log.info("shutting down")
    if watch is not None:
        watch.cancel()
    await tell_to_reconnect(app, cluster.reconnect_target() if cluster is not None else None)
    if cluster is not None:
        await cluster.drain()
    server.close()
    if cluster is not None:
        await cluster.stop()
    await runner.cleanup()
    await media.stop()


async def tell_to_reconnect(app: web.Application, elsewhere: str | None) -> None:
    """Players and room participants get the `reconnect` event before this server goes: to
    another node when the cluster has one, else to this endpoint, which they retry."""
    told = await app[HUB].say_goodbye(elsewhere)
    where = f" to {elsewhere}" if elsewhere else ""
    log.info("told %d event stream(s) to reconnect%s", told, where)


def join_cluster(
    app: web.Application, media: MediaServer, args: argparse.Namespace, candidates: list[str]
) -> Cluster:
    """Make this server a node of the cluster whose registry is at --redis-url."""
    config = ClusterConfig(
        node_name=args.node_name,
        public_url=args.public_url,
        relay_host=args.relay_host,
        redirect=args.cluster_redirect,
        drain_timeout=args.drain_timeout,
        candidates=tuple(candidates),
    )
    registry = RedisRegistry(args.redis_url, prefix=args.redis_prefix)
    cluster = Cluster(media, registry, ClusterLink(args.cluster_secret), config)
    app[CLUSTER] = cluster
    app[CONNECT_ORIGINS] = cluster.peer_urls  # a draining node sends its players there
    add_cluster_routes(app, cluster)
    log.info("cluster node %s at %s, relays via %s", config.node_name, config.public_url,
             config.relay_host)  # fmt: skip
    return cluster


async def exit_with_parent(stop: asyncio.Event) -> None:
    """A worker ends with its front, even a front killed before it could stop its workers."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
    log.warning("the front (pid %d) is gone; stopping", parent)
    stop.set()
