"""The one table of public URLs, shared by a single server and the `--workers` front.

Each side fills a PublicHandlers with its own handlers (a worker's answer the request, the
front's pass it on); the preflight, HEAD and static pages are the same for both.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from multidict import CIMultiDict

from signaling.sdp.ice_servers import IceServers
from signaling.serving.media_types import SDP_TYPE, SDPFRAG_TYPE
from signaling.serving.names import STREAM_PATTERN
from signaling.serving.page_headers import add_page_headers
from signaling.serving.plumbing import Handler

ICE_SERVERS = web.AppKey("ice_servers", IceServers)
ROOMS = "/rooms/v1"  # the room API, versioned in its path


@dataclass(frozen=True)
class PublicHandlers:
    """What answers each public route: a worker's own handlers, or the front's proxies."""

    whip: Handler
    whep: Handler
    delete_session: Handler
    patch_session: Handler
    set_layer: Handler
    srs_whip: Handler
    srs_whep: Handler
    srs_publish: Handler
    srs_play: Handler
    list_streams: Handler
    list_rooms: Handler
    server_stats: Handler
    join_room: Handler
    reoffer_room: Handler
    room_prefs: Handler
    room_media: Handler
    leave_room: Handler
    room_events: Handler


def add_public_routes(
    app: web.Application, handlers: PublicHandlers, web_root: Path | None
) -> None:
    """Every public URL of the server, answered by `handlers`; pages from `web_root`; the
    page headers (CSP, no framing, no versions) on every answer."""
    add_page_headers(app)
    stream = f"{{stream:{STREAM_PATTERN}}}"
    app.router.add_post(f"/whip/{stream}", handlers.whip)
    app.router.add_post(f"/whep/{stream}", handlers.whep)
    for path in (f"/whip/{stream}", f"/whep/{stream}"):
        app.router.add_route("OPTIONS", path, options)
        app.router.add_route("HEAD", path, head)
    app.router.add_delete("/sessions/{id}", handlers.delete_session)
    app.router.add_patch("/sessions/{id}", handlers.patch_session)
    app.router.add_route("OPTIONS", "/sessions/{id}", session_options)
    app.router.add_post("/sessions/{id}/layer", handlers.set_layer)
    app.router.add_route("OPTIONS", "/sessions/{id}/layer", options)
    app.router.add_post("/rtc/v1/whip/", handlers.srs_whip)
    app.router.add_post("/rtc/v1/whep/", handlers.srs_whep)
    app.router.add_route("OPTIONS", "/rtc/v1/{path:.*}", options)
    app.router.add_post("/rtc/v1/publish/", handlers.srs_publish)
    app.router.add_post("/rtc/v1/play/", handlers.srs_play)
    participant = f"{ROOMS}/{{room}}/participants/{{participant}}"
    room_session = f"{ROOMS}/sessions/{{id}}"
    app.router.add_post(participant, handlers.join_room)
    app.router.add_route("OPTIONS", participant, options)
    app.router.add_patch(room_session, handlers.reoffer_room)
    app.router.add_delete(room_session, handlers.leave_room)
    app.router.add_route("OPTIONS", room_session, room_session_options)
    app.router.add_post(f"{room_session}/prefs", handlers.room_prefs)
    app.router.add_route("OPTIONS", f"{room_session}/prefs", options)
    app.router.add_post(f"{room_session}/media", handlers.room_media)
    app.router.add_route("OPTIONS", f"{room_session}/media", options)
    app.router.add_get(f"{room_session}/events", handlers.room_events)
    app.router.add_get("/api/v1/streams", handlers.list_streams)
    app.router.add_get("/api/v1/rooms", handlers.list_rooms)
    app.router.add_get("/api/v1/server", handlers.server_stats)
    if web_root is not None and web_root.is_dir():
        app.router.add_get("/", index_page(web_root))
        app.router.add_static("/", web_root, show_index=False)


def index_page(web_root: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(web_root / "index.html")

    return handler


def ice_server_links(request: web.Request) -> list[tuple[str, str]]:
    """RFC 9725 §4.6 Link headers of the operator's STUN/TURN servers, fresh credentials each."""
    servers = request.app.get(ICE_SERVERS)
    if servers is None:
        return []
    return [("Link", link) for link in servers.link_headers(time.time())]


async def options(request: web.Request) -> web.Response:
    """The CORS preflight, and where a page learns the ICE servers before it makes an offer."""
    return web.Response(
        status=204, headers=CIMultiDict([("Accept-Post", SDP_TYPE), *ice_server_links(request)])
    )


async def head(request: web.Request) -> web.Response:
    """WHEP draft: HEAD on an endpoint answers 200, so a client can probe it (with CORS)."""
    return web.Response(status=200, headers={"Accept-Post": SDP_TYPE})


async def session_options(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Accept-Patch": SDPFRAG_TYPE})


async def room_session_options(request: web.Request) -> web.Response:
    """A room session is re-offered whole: its PATCH carries SDP, not a trickle fragment."""
    return web.Response(status=204, headers={"Accept-Patch": SDP_TYPE})
