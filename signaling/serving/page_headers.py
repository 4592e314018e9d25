"""Headers on every answer that make the pages harder to abuse from elsewhere.

The pages load their scripts and styles from this server only (no inline code), talk to it
only (fetch, server-sent events over fetch), show camera and remote video through srcObject
(which no policy governs) and have an empty `data:` favicon. So the policy allows 'self' and
that favicon, and nothing may frame them (clickjacking a publish page would share a camera).
`Server` names the program, not the versions of aiohttp and Python an attacker would look up.
A cluster node also lets its pages connect to the other nodes (CONNECT_ORIGINS), where a
player goes when its node drains.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web

ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)
# Where else the pages may connect: the other nodes' base URLs, asked per answer.
CONNECT_ORIGINS = web.AppKey("connect_origins", Callable[[], Iterable[str]])
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob:",  # HLS through hls.js plays from a Media Source blob: URL
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Server": "LiteSFU",
}


def add_page_headers(app: web.Application) -> None:
    """Send PAGE_HEADERS with every answer of `app`, pages, API and event streams alike."""
    app.on_response_prepare.append(set_page_headers)


async def set_page_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(PAGE_HEADERS)
    others = request.app.get(CONNECT_ORIGINS)
    if others is not None:
        response.headers["Content-Security-Policy"] = with_connect_origins(others())


def origin(url: str) -> str | None:
    """The scheme://host[:port] of an http(s) URL, or None for anything that is not one
    plainly (nothing from a registry record reaches a header unless it is an origin)."""
    parts = urlsplit(url)
    found = f"{parts.scheme}://{parts.netloc}"
    return found if ORIGIN.fullmatch(found) else None


def with_connect_origins(urls: Iterable[str]) -> str:
    """The page policy, with `connect-src` opened to 'self' and the origins of `urls`."""
    origins = sorted({o for o in map(origin, urls) if o is not None})
    if not origins:
        return CONTENT_SECURITY_POLICY
    return f"{CONTENT_SECURITY_POLICY}; connect-src 'self' {' '.join(origins)}"
