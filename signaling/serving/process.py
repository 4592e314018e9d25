"""What every serving process sets up the same way, the front or a media server: HTTPS, the
HTTP connection guard, and the signals that stop it."""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl

from signaling.serving.connections import ConnectionGuard


def tls_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """HTTPS for the pages and API when a certificate is given; ValueError says why a pair
    does not load (start-up checks it before anything binds)."""
    if not args.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--tls-cert/--tls-key: {exc}") from exc
    return context


def connection_guard(args: argparse.Namespace, worker: bool) -> ConnectionGuard:
    """The HTTP connection limits: a worker's only client is its front, so it has no per-address
    cap, and neither has a server behind a proxy, whose connections all come from the proxy."""
    per_ip = 0 if worker or args.trust_proxy else args.client_connections
    return ConnectionGuard(header_timeout=args.header_timeout, max_per_ip=per_ip)


def stop_event() -> asyncio.Event:
    """An event SIGINT and SIGTERM set."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop
