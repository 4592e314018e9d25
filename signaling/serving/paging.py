"""Pages of the stream list: `?limit=&offset=`, with a default and a largest page, so one
answer costs a page's worth of streams however many the server holds."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from signaling.serving.plumbing import Rejection

DEFAULT_LIMIT = 100  # streams in a page when the client names no limit
MAX_LIMIT = 1000  # the largest page a client may ask for
MAX_OFFSET = 10**9


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int

    def fields(self, total: int, path: str) -> dict[str, object]:
        """What a paged answer adds: how many there are, and the URL of the next page."""
        end = self.offset + self.limit
        following = f"{path}?offset={end}&limit={self.limit}" if end < total else None
        return {"total": total, "next": following}


def requested_page(request: web.Request) -> Page:
    """The page a request asks for; a 400 naming the bad parameter otherwise."""
    return Page(
        whole_number(request, "offset", 0, 0, MAX_OFFSET),
        whole_number(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
    )


def whole_number(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and low <= int(text) <= high):
        raise Rejection(400, f"{name} must be a whole number from {low} to {high}")
    return int(text)
