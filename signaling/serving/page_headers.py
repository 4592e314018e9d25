"""Headers on every answer that make the pages harder to abuse from elsewhere.

The pages load their scripts and styles from this server only (no inline code), talk to it
only (fetch, server-sent events over fetch), show camera and remote video through srcObject
(which no policy governs) and have an empty `data:` favicon. So the policy allows 'self' and
that favicon, and nothing may frame them (clickjacking a publish page would share a camera).
`Server` names the program, not the versions of aiohttp and Python an attacker would look up.
"""

from __future__ import annotations

from aiohttp import web

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
