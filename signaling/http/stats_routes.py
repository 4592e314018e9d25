"""A worker's stats API: /api/v1/streams (per stream and track, a page at a time) and
/api/v1/server (totals)."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from sfu.protocol import fastpath
from signaling.http.state import ADMISSION, CLUSTER, MEDIA_SERVER
from signaling.observe.routes import HUB
from signaling.serving.access import authorize_stats
from signaling.serving.paging import requested_page
from signaling.serving.plumbing import GUARD, REFUSED, ROOM_REFUSED


async def list_streams(request: web.Request) -> web.Response:
    """The streams by name, a page of them (`?offset=&limit=`), with `total` and `next`."""
    authorize_stats(request)
    page = requested_page(request)
    router = request.app[MEDIA_SERVER].router
    body: dict = {"streams": router.snapshot(page.offset, page.limit)}
    if CLUSTER in request.app:
        body["cluster"] = request.app[CLUSTER].streams_view()
    body.update(page.fields(router.stream_count(), request.path))
    return web.json_response(body)


async def list_rooms(request: web.Request) -> web.Response:
    """The rooms by name, a page of them, each subscriber's estimate, allocation and paused
    videos; and the room requests refused, by "ACTION STATUS"."""
    authorize_stats(request)
    page = requested_page(request)
    router = request.app[MEDIA_SERVER].router
    rooms = router.room_stats(page.offset, page.limit)
    return web.json_response(
        {
            "rooms": [room.to_json() for room in rooms],
            "refused": dict(request.app[ROOM_REFUSED]),
            **page.fields(len(router.room_names()), request.path),
        }
    )


async def server_stats(request: web.Request) -> web.Response:
    authorize_stats(request)
    media = request.app[MEDIA_SERVER]
    endpoint = media.endpoint
    return web.json_response(
        {
            **media.router.resource_counts(),
            "tasks": len(asyncio.all_tasks()),
            "open_files": open_file_count(),
            "forwarding_path": fastpath.PATH,  # "compiled" (sfu.protocol._fanout) or "python"
            "srtp_aes": fastpath.SRTP_AES,  # "vaes", "aes-ni", "openssl" or "libsrtp"
            "udp_port": endpoint.port,
            "datagrams_in": endpoint.datagrams_in,
            # STUN, DTLS and RTCP; forwarded media is media_packets_out
            "control_datagrams_out": endpoint.control_datagrams_out,
            "drops": dict(endpoint.drops),  # traffic refused or lost
            "housekeeping": housekeeping(request.app),  # routine closes, not trouble
            "admission_refused": dict(request.app[ADMISSION].refused),
            "http_refused": dict(request.app[REFUSED]),  # by status: 400, 401, 413, 429, ...
            "http": request.app[GUARD].stats() if GUARD in request.app else {},
            "events_refused": dict(request.app[HUB].refused) if HUB in request.app else {},
            # malloc_trim after mass teardown (sfu.io.memory): how often, and what it cost
            "heap_trims": {"count": media.trimmer.trims, "seconds": media.trimmer.seconds},
        }
    )


def housekeeping(app: web.Application) -> dict[str, int]:
    """Closes that are the server tidying up: ICE-TCP connections no session used, event
    streams that stayed idle too long."""
    tcp = app[MEDIA_SERVER].endpoint.tcp
    counts = dict(tcp.housekeeping) if tcp is not None else {}
    counts["event_streams_idle_closed"] = app[HUB].ended_idle if HUB in app else 0
    return counts


def open_file_count() -> int | None:
    """File descriptors this process holds (Linux), to see leaks from outside."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None
