"""GET /hls/{stream}/index.m3u8 and the init sections, segments and parts it lists: LL-HLS
from the media process's in-memory packagers (sfu/egress/hls.py). Plain HTTP with no
session: a CDN edge may pull it for any number of viewers. With auth on, a play token."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from aiohttp import web

from sfu.egress.hls import SEGMENT_TARGET, HlsStream
from sfu.egress.hls_streams import HlsRefused, HlsStreams
from sfu.routing.router import PLAY
from signaling.http.state import MEDIA_SERVER
from signaling.serving.access import authorize, request_token
from signaling.serving.names import STREAM_PATTERN
from signaling.serving.plumbing import Rejection

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
READY_TIMEOUT = 3 * SEGMENT_TARGET + 2  # seconds a first request waits for the first segment
BLOCK_TIMEOUT = 3 * SEGMENT_TARGET  # seconds a blocking reload waits (RFC 8216bis 6.2.5.2)
WAIT_STEP = 0.02  # seconds between looks at the packagers while requests wait
MAX_SEQUENCE = 2**31
RESOURCE = (
    r"[0-9]{1,9}-(?:init-[0-9]{1,9}\.mp4|seg-[0-9]{1,10}\.m4s|part-[0-9]{1,10}-[0-9]{1,3}\.m4s)"
)
IMMUTABLE = "public, max-age=31536000, immutable"  # every name is used once, ever
PLAYLIST_CACHE = "public, max-age=1"
BLOCKING_CACHE = f"public, max-age={int(BLOCK_TIMEOUT)}"  # its URL names the state it shows


def _packager(request: web.Request) -> HlsStream:
    stream = request.match_info["stream"]
    authorize(request, request_token(request), stream, PLAY)
    try:
        return request.app[MEDIA_SERVER].hls.get(stream, time.monotonic())
    except HlsRefused as exc:
        raise Rejection(exc.status, str(exc)) from exc


def _sequence(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    if not text.isdigit() or int(text) >= MAX_SEQUENCE:
        raise Rejection(400, f"{name} must be a whole number below {MAX_SEQUENCE}")
    return int(text)


class Waiters:
    """What requests waiting for a part (a blocking reload, a first segment) wait on: one
    task looks at the packagers' versions every WAIT_STEP while anyone waits, and wakes the
    waiters only when a part was added, so a waiting viewer costs no work of its own."""

    def __init__(self, streams: HlsStreams) -> None:
        self._streams = streams
        self._news = asyncio.Event()
        self._waiting = 0
        self._task: asyncio.Task | None = None

    async def wait(self, ready: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        self._waiting += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch())
        try:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._news.wait(), left)
            return True
        finally:
            self._waiting -= 1

    async def _watch(self) -> None:
        seen: dict[str, int] = {}
        while self._waiting:
            await asyncio.sleep(WAIT_STEP)
            now = {name: hls.version for name, hls in self._streams.active.items()}
            if now != seen:
                seen = now
                news, self._news = self._news, asyncio.Event()
                news.set()


WAITERS = web.AppKey("hls_waiters", Waiters)


async def playlist(request: web.Request) -> web.Response:
    """The playlist once the first segment is there; with _HLS_msn (and _HLS_part) only once
    that segment (part) is there too, or BLOCK_TIMEOUT passed (a blocking reload)."""
    msn, part = _sequence(request, "_HLS_msn"), _sequence(request, "_HLS_part")
    if part is not None and msn is None:
        raise Rejection(400, "_HLS_part needs _HLS_msn")
    hls = _packager(request)
    waiters = request.app[WAITERS]
    if not await waiters.wait(lambda: hls.ready, READY_TIMEOUT):
        raise Rejection(503, "the stream has no HLS segment yet; try again", {"Retry-After": "2"})
    cache = PLAYLIST_CACHE
    if msn is not None:
        if msn > hls.next_number() + 1:
            raise Rejection(400, f"_HLS_msn {msn} is more than two segments ahead")
        await waiters.wait(lambda: hls.has(msn, part), BLOCK_TIMEOUT)
        cache = BLOCKING_CACHE
    headers = {"Cache-Control": cache}
    return web.Response(text=hls.playlist(), content_type=PLAYLIST_TYPE, headers=headers)


async def resource(request: web.Request) -> web.Response:
    hls = _packager(request)
    name = request.match_info["name"]
    data = hls.resource(name)
    if data is None:
        raise Rejection(404, f"{name} is not (or no longer) there")
    kind = "video/mp4" if name.endswith(".mp4") else "video/iso.segment"
    return web.Response(body=data, content_type=kind, headers={"Cache-Control": IMMUTABLE})


def add_hls_routes(app: web.Application) -> None:
    app[WAITERS] = Waiters(app[MEDIA_SERVER].hls)
    base = f"/hls/{{stream:{STREAM_PATTERN}}}"
    app.router.add_get(f"{base}/index.m3u8", playlist)
    app.router.add_get(f"{base}/{{name:{RESOURCE}}}", resource)
