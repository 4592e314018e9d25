"""A worker's aiohttp application: the public routes answered by this process's media server.

The handlers live by concern (whip.py, srs_routes.py, stats_routes.py); this module wires them
and the server's policies into one app. Its logger, `signaling.http.app`, carries every refusal.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path

from aiohttp import web

from sfu.io.server import MediaServer
from signaling.http import rooms
from signaling.http.hls import add_hls_routes
from signaling.http.recordings import add_recording_routes
from signaling.http.routes import ICE_SERVERS, PublicHandlers, add_public_routes
from signaling.http.srs_routes import srs_play, srs_publish, srs_whep, srs_whip
from signaling.http.state import (
    ADMISSION,
    AUTO_CANDIDATES,
    CANDIDATES,
    ETAGS,
    HOOKS,
    HOST_CANDIDATE,
    HOST_NAMES,
    LIMITS,
    MEDIA_SERVER,
)
from signaling.http.stats_routes import list_rooms, list_streams, server_stats
from signaling.http.whip import delete_session, patch_session, set_layer, whep, whip
from signaling.sdp.host_name import OFF, RESOLVE, HostNames, host_name
from signaling.sdp.ice_servers import IceServers
from signaling.sdp.trickle import EntityTags
from signaling.security.admission import Admission
from signaling.security.auth import Authenticator, SessionOwners
from signaling.security.hooks import HttpHooks
from signaling.security.limits import Limits
from signaling.serving.access import AUTH, OWNERS
from signaling.serving.connections import ConnectionGuard
from signaling.serving.plumbing import (
    GUARD,
    MAX_OFFER_BYTES,
    REFUSED,
    ROOM_REFUSED,
    Handler,
    behind_proxy,
    cors_and_errors,
    quiet_refusals,
)
from signaling.serving.scrapes import limit_scrapes

log = logging.getLogger(__name__)

WORKER_HANDLERS = PublicHandlers(
    whip=whip,
    whep=whep,
    delete_session=delete_session,
    patch_session=patch_session,
    set_layer=set_layer,
    srs_whip=srs_whip,
    srs_whep=srs_whep,
    srs_publish=srs_publish,
    srs_play=srs_play,
    list_streams=list_streams,
    list_rooms=list_rooms,
    server_stats=server_stats,
    join_room=rooms.join,
    reoffer_room=rooms.reoffer,
    room_prefs=rooms.set_prefs,
    room_media=rooms.set_media,
    leave_room=rooms.leave,
    room_events=rooms.events,
)


def create_app(
    media: MediaServer,
    candidates: list[str],
    web_root: Path | None,
    *,
    auth: Authenticator | None = None,
    limits: Limits | None = None,
    hooks: HttpHooks | None = None,
    admission: Admission | None = None,
    guard: ConnectionGuard | None = None,
    trust_proxy: bool = False,
    auto_candidates: bool = False,
    ice_servers: IceServers | None = None,
    candidate_from_host: str = OFF,
) -> web.Application:
    """The aiohttp application for one media server; with no policy given, everything is open
    but for the per-client admission defaults."""
    app = web.Application(
        middlewares=[
            cors_and_errors,
            *behind_proxy(trust_proxy),
            *([resolve_host_name] if candidate_from_host == RESOLVE else []),
        ],
        client_max_size=MAX_OFFER_BYTES,
        logger=log,
    )
    app[HOST_CANDIDATE] = candidate_from_host
    app[HOST_NAMES] = HostNames()
    app[MEDIA_SERVER] = media
    app[CANDIDATES] = candidates
    app[AUTO_CANDIDATES] = auto_candidates
    if ice_servers is not None:
        app[ICE_SERVERS] = ice_servers
    app[AUTH] = auth or Authenticator()
    app[LIMITS] = limits or Limits()
    app[HOOKS] = hooks or HttpHooks()
    app[ETAGS] = EntityTags()
    app[OWNERS] = SessionOwners()
    app[REFUSED] = collections.Counter()
    app[ROOM_REFUSED] = collections.Counter()
    quiet_refusals(app)
    limit_scrapes(app)
    app[ADMISSION] = admission if admission is not None else Admission()
    if guard is not None:
        app[GUARD] = guard
    app.on_cleanup.append(close_hooks)
    add_public_routes(app, WORKER_HANDLERS, web_root)
    add_recording_routes(app)
    add_hls_routes(app)
    return app


@web.middleware
async def resolve_host_name(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Before an offer is answered (POST, PATCH), the Host header's name is resolved, so its
    addresses can lead the candidates (--candidate-from-host resolve)."""
    if request.method in ("POST", "PATCH"):
        name = host_name(request.headers.get("Host"))
        if name is not None:
            await request.app[HOST_NAMES].prepare(name)
    return await handler(request)


async def close_hooks(app: web.Application) -> None:
    await app[HOOKS].close()
