"""A rate per client address on the stats answers, whose cost grows with the server's size.

/metrics and the stats API walk every stream (10-13 ms with 300 streams), so one client in a
loop could keep a core busy. Each address may ask SCRAPE_RATE times a second (SCRAPE_BURST at
once); past that it gets a 429 with Retry-After, counted and logged once per interval.
"""

from __future__ import annotations

from aiohttp import web

from signaling.security.clients import RateLimit, client_key
from signaling.serving.plumbing import Handler, Rejection

SCRAPE_RATE = 5.0  # stats answers per second and client address, sustained
SCRAPE_BURST = 10  # stats answers at once after a quiet spell
SCRAPE_PATHS = frozenset(
    {"/metrics", "/api/v1/streams", "/api/v1/rooms", "/api/v1/server", "/api/v1/nodes"}
)
SCRAPES = web.AppKey("scrape_limit", RateLimit)


def limit_scrapes(app: web.Application, limit: RateLimit | None = None) -> None:
    """Put the stats answers of `app` behind a per-address rate (by default 5/s, burst 10).

    Add it after the middleware that sets the client's address from a trusted proxy."""
    app[SCRAPES] = limit or RateLimit(SCRAPE_RATE, SCRAPE_BURST)
    app.middlewares.append(scrape_rate)


@web.middleware
async def scrape_rate(request: web.Request, handler: Handler) -> web.StreamResponse:
    limit = request.app.get(SCRAPES)
    if limit is not None and request.path in SCRAPE_PATHS:
        wait = limit.wait(request.remote or "")
        if wait:
            raise Rejection(
                429,
                f"too many stats requests from {client_key(request.remote or '')}: "
                f"{limit.rate:g}/s",
                {"Retry-After": str(wait)},
                quiet=True,
            )
    return await handler(request)
