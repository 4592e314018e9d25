"""The --workers front's process: start and supervise the workers, serve HTTP for all of them.

Imports no media-plane module: the workers are separate processes that load it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from signaling.observe.routes import HUB
from signaling.security.auth import Authenticator
from signaling.serving.binding import refuse_bind
from signaling.serving.connections import listen
from signaling.serving.plumbing import app_runner
from signaling.serving.process import connection_guard, stop_event, tls_context
from signaling.workers.balancer import Balancer
from signaling.workers.front import create_front
from signaling.workers.observe import add_front_observability
from signaling.workers.pool import WorkerPool

log = logging.getLogger("litesfu")


async def serve_front(args: argparse.Namespace) -> None:
    """`--workers N`: start and supervise the workers, serve HTTP for all of them."""
    stop = stop_event()
    pool = WorkerPool(args.workers, args.udp_port, args.argv, args.tcp_port)
    balancer = Balancer(pool, args.worker_players)
    guard = connection_guard(args, worker=False)
    front = create_front(pool, balancer, args.web_root, guard=guard, trust_proxy=args.trust_proxy)
    auth = Authenticator(args.auth_token, args.auth_secret, protect_stats=args.auth_stats)
    add_front_observability(front, auth, args.max_event_streams)
    runner = app_runner(front, args.header_timeout)
    server: asyncio.AbstractServer | None = None
    try:
        await pool.start()
        balancer.start()
        await runner.setup()
        tls = tls_context(args)
        try:
            server = await listen(runner, args.http_host, args.http_port, guard, tls)
        except OSError as exc:
            raise refuse_bind("HTTP", args.http_host, args.http_port, "--http-port", exc) from exc
        log.info(
            "LiteSFU ready: %s://%s:%d (pages and API), %d workers, media UDP %s",
            "https" if tls else "http",
            args.http_host,
            args.http_port,
            len(pool.workers),
            ", ".join(str(w.bound_udp_port) for w in pool.workers),
        )
        await stop.wait()
        log.info("shutting down")
        await front[HUB].say_goodbye(None)  # players and participants retry here
    finally:
        if server is not None:
            server.close()
        await balancer.stop()
        # Workers stop while the HTTP side drains: a slow client does not delay them.
        await asyncio.gather(runner.cleanup(), pool.stop())
