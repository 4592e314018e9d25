"""The HTTP face of the server: WHIP/WHEP, SRS-compatible routes, the stats API and web pages.

Handlers turn HTTP into calls on the router and the router's answers into HTTP; every failure a
client can cause becomes a status with a one-line reason, logged once, never a traceback.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict

from sfu.router import PLAY, PUBLISH, StreamBusy
from sfu.server import MediaServer
from sfu.session import PeerSession
from sfu.simulcast import AUTO, Choice
from signaling.admission import Admission, forwarded_client
from signaling.answer import render_answer
from signaling.auth import Authenticator, SessionOwners, bearer_token
from signaling.candidates import for_request
from signaling.connections import ConnectionGuard
from signaling.events import whep_link
from signaling.hooks import HookRejected, HookUnavailable, HttpHooks
from signaling.ice_servers import IceServers
from signaling.layer_request import (
    MAX_LAYER_BODY,
    LayerRequestError,
    layer_link,
    parse_layer_request,
    rid_choice,
)
from signaling.limits import RETRY_AFTER, Limits
from signaling.negotiate import (
    NegotiationError,
    UnsupportedMedia,
    negotiate_play,
    negotiate_publish,
)
from signaling.sdp import SdpError, parse_offer
from signaling.trickle import SDPFRAG_TYPE, EntityTags, FragmentError, parse_sdpfrag, render_restart

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
BODY_TIMEOUT = 10.0  # seconds a client has to send a request's body once its headers are in
NAME_SEGMENT = r"[A-Za-z0-9_.~-]{1,64}"  # one part of a stream name
STREAM_PATTERN = rf"{NAME_SEGMENT}(?:/{NAME_SEGMENT})?"
SEGMENT = re.compile(NAME_SEGMENT)
# Session ids are lowercase hex (sfu/session.py); the front forwards nothing else.
SESSION_ID_PATTERN = r"[0-9a-f]{32}"
SDP_TYPE = "application/sdp"
JSON_TYPE = "application/json"
MEDIA_SERVER = web.AppKey("media_server", MediaServer)
CANDIDATES = web.AppKey("candidates", list)
AUTO_CANDIDATES = web.AppKey("auto_candidates", bool)  # lead with the Host header's literal
AUTH = web.AppKey("auth", Authenticator)
LIMITS = web.AppKey("limits", Limits)
HOOKS = web.AppKey("hooks", HttpHooks)
ETAGS = web.AppKey("etags", EntityTags)
OWNERS = web.AppKey("owners", SessionOwners)
ADMISSION = web.AppKey("admission", Admission)
GUARD = web.AppKey("guard", ConnectionGuard)
REFUSED = web.AppKey("refused", collections.Counter)  # client errors answered, by status
ICE_SERVERS = web.AppKey("ice_servers", IceServers)


class ClusterHooks(Protocol):
    """What the public handlers ask of signaling/cluster.py's Cluster, with --redis-url only."""

    async def admit(self, request: web.Request, role: str, stream: str) -> None: ...
    def streams_view(self) -> dict: ...


CLUSTER = web.AppKey("cluster", ClusterHooks)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, If-Match, ETag",
    "Access-Control-Expose-Headers": (
        "Location, ETag, Link, Accept-Post, Accept-Patch, Retry-After, WWW-Authenticate"
    ),
}


class Rejection(Exception):
    """A client error with its HTTP status, one-line reason and any headers the status needs."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}


def unavailable(reason: str) -> Rejection:
    """A 503 that tells the client when to try again."""
    return Rejection(503, reason, {"Retry-After": str(RETRY_AFTER)})


def count_refusal(request: web.Request, status: int) -> None:
    refused = request.app.get(REFUSED)
    if refused is not None:
        refused[str(status)] += 1


def logged_path(request: web.Request) -> str:
    """The path as the client sent it, still percent-encoded: a %0D%0A cannot forge log lines."""
    return request.rel_url.raw_path


@web.middleware
async def cors_and_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """CORS on every answer; Rejection and unexpected errors become one-line text statuses."""
    try:
        response = await handler(request)
    except Rejection as exc:
        count_refusal(request, exc.status)
        log.info("%s %s -> %d %s", request.method, logged_path(request), exc.status, exc.reason)
        response = web.Response(status=exc.status, text=exc.reason + "\n", headers=exc.headers)
    except web.HTTPException as exc:
        exc.headers.update(CORS_HEADERS)
        raise
    except Exception:
        log.exception("%s %s failed", request.method, logged_path(request))
        response = web.Response(status=500, text="internal error\n")
    response.headers.update(CORS_HEADERS)
    return response


def behind_proxy(trust_proxy: bool) -> list:
    """The middleware that makes request.remote the client a reverse proxy names, if trusted."""

    @web.middleware
    async def real_client(request: web.Request, handler: Handler) -> web.StreamResponse:
        client = forwarded_client(request.headers.get("X-Forwarded-For"))
        if client is not None:
            request = request.clone(remote=client)
        return await handler(request)

    return [real_client] if trust_proxy else []


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
) -> web.Application:
    """The aiohttp application for one media server; with no policy given, everything is open
    but for the per-client admission defaults."""
    app = web.Application(
        middlewares=[cors_and_errors, *behind_proxy(trust_proxy)], client_max_size=MAX_OFFER_BYTES
    )
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
    app[ADMISSION] = admission if admission is not None else Admission()
    if guard is not None:
        app[GUARD] = guard
    app.on_cleanup.append(close_hooks)
    add_public_routes(
        app,
        PublicHandlers(
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
            server_stats=server_stats,
        ),
        web_root,
    )
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    server_stats: Handler


def add_public_routes(
    app: web.Application, handlers: PublicHandlers, web_root: Path | None
) -> None:
    """The one table of public URLs, shared by a single server and the --workers front."""
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
    app.router.add_get("/api/v1/streams", handlers.list_streams)
    app.router.add_get("/api/v1/server", handlers.server_stats)
    if web_root is not None and web_root.is_dir():
        app.router.add_get("/", index_page(web_root))
        app.router.add_static("/", web_root, show_index=False)


def index_page(web_root: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(web_root / "index.html")

    return handler


async def close_hooks(app: web.Application) -> None:
    await app[HOOKS].close()


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


def request_token(request: web.Request) -> str | None:
    return bearer_token(request.headers.get("Authorization"))


def unauthorized(token: str | None) -> Rejection:
    """401 with the RFC 6750 challenge; the reason never says why a given token failed."""
    if token is None:
        return Rejection(
            401, "bearer token required", {"WWW-Authenticate": 'Bearer realm="litesfu"'}
        )
    challenge = 'Bearer realm="litesfu", error="invalid_token"'
    return Rejection(401, "token not valid for this request", {"WWW-Authenticate": challenge})


def authorize(request: web.Request, token: str | None, stream: str, role: str) -> None:
    if not request.app[AUTH].allows(token, stream, role):
        raise unauthorized(token)


async def read_bytes(request: web.Request, what: str) -> bytes:
    """A request's body within BODY_TIMEOUT; a stalled or aborted upload is a Rejection (the
    client that aborted never sees it, but the log gets one line, not a traceback)."""
    try:
        return await asyncio.wait_for(request.read(), BODY_TIMEOUT)
    except asyncio.TimeoutError as exc:
        raise Rejection(408, f"{what} not received within {BODY_TIMEOUT:g} s") from exc
    except web.HTTPRequestEntityTooLarge as exc:
        raise Rejection(413, f"{what} larger than {MAX_OFFER_BYTES} bytes") from exc
    except (ConnectionError, aiohttp.ClientPayloadError, HttpProcessingError) as exc:
        raise Rejection(400, f"{what} upload aborted: {exc}") from exc


async def read_body(request: web.Request, content_type: str, what: str) -> str:
    """The UTF-8 body of a POST or PATCH, or a Rejection saying what is wrong with it."""
    if request.content_type != content_type:
        raise Rejection(415, f"Content-Type must be {content_type}, not {request.content_type}")
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        raise Rejection(413, f"{what} larger than {MAX_OFFER_BYTES} bytes")
    body = await read_bytes(request, what)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(400, f"{what} is not UTF-8") from exc


def answer_candidates(request: web.Request) -> list[tuple[str, int]]:
    """The (address, UDP port) host candidates of one answer or restart."""
    base = request.app[CANDIDATES]
    addresses = for_request(
        base,
        request.headers.get("Host"),  # a --workers front passes on the client's
        request.app[AUTO_CANDIDATES],
        ipv6=request.app[MEDIA_SERVER].endpoint.ipv6,
    )
    port = request.app[MEDIA_SERVER].endpoint.port
    return [(address, port) for address in addresses]


def check_limits(request: web.Request, role: str, stream: str) -> None:
    refusal = request.app[LIMITS].refusal(request.app[MEDIA_SERVER].router, role, stream)
    if refusal is not None:
        raise unavailable(refusal)


def admit_client(request: web.Request) -> None:
    """Before any offer is read: the client's own creation rate and half-open sessions (429)."""
    router = request.app[MEDIA_SERVER].router
    refusal = request.app[ADMISSION].check(request.remote or "", router.session_state)
    if refusal is not None:
        raise Rejection(429, refusal.reason, {"Retry-After": str(refusal.retry_after)})


async def ask_hook(request: web.Request, role: str, stream: str, token: str | None) -> None:
    try:
        await request.app[HOOKS].check(f"on_{role}", stream, request.remote, token)
    except HookRejected as exc:
        raise Rejection(403, f"refused by hook: {exc}") from exc
    except HookUnavailable as exc:
        raise unavailable(str(exc)) from exc


async def start_session(
    request: web.Request, role: str, stream: str, offer_text: str, token: str | None
) -> tuple[PeerSession, str]:
    """Negotiate, pass limits and the hook, create the session and render the answer.

    The caller admitted the client and checked the limits before reading the offer. Nothing is
    created until every check has passed; limits are checked again after the hook because
    other offers may have filled the server while it was being asked. The token's digest is
    kept: only that token may end or change the session later.
    """
    media = request.app[MEDIA_SERVER]
    router = media.router
    try:
        offer = parse_offer(offer_text)
        if role == PUBLISH:
            peer = negotiate_publish(offer)
        else:
            peer = negotiate_play(offer, router.preferred_codecs(stream))
    except UnsupportedMedia as exc:
        raise Rejection(422, str(exc)) from exc
    except (SdpError, NegotiationError) as exc:
        raise Rejection(400, str(exc)) from exc
    await ask_hook(request, role, stream, token)
    check_limits(request, role, stream)
    now = time.monotonic()
    try:
        session = (
            router.publish(stream, peer, now) if role == PUBLISH else router.play(stream, peer, now)
        )
    except StreamBusy as exc:
        raise Rejection(409, str(exc)) from exc
    owners = request.app[OWNERS]
    owners.prune(
        lambda session_id: session_id in router.sessions.by_id or session_id in router.ended
    )
    owners.remember(session.id, token)
    request.app[ADMISSION].created(request.remote or "", session.id)
    ssrcs = session.handler.ssrcs() if role == PLAY else None  # type: ignore[union-attr]
    answer = render_answer(
        offer,
        peer,
        direction="recvonly" if role == PUBLISH else "sendonly",
        ice_ufrag=session.ice.local_ufrag,
        ice_pwd=session.ice.local_pwd,
        fingerprint=media.certificate.fingerprint,
        candidates=answer_candidates(request),
        tcp_port=media.tcp_port,
        ssrcs=ssrcs,
        stream_id=stream.replace("/", "-"),
    )
    log.info(
        "%s %s: session %s from %s (%s)",
        role,
        stream,
        session.id,
        request.remote,
        ", ".join(f"{t.kind} {t.codecs[0].name}" for t in peer.tracks),
    )
    return session, answer


async def admit_cluster(request: web.Request, role: str, stream: str) -> None:
    """In a cluster: claim the stream of a publish, set up the relay a play needs (or refuse)."""
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        await cluster.admit(request, role, stream)


async def whip_or_whep(request: web.Request, role: str, stream: str) -> web.Response:
    token = request_token(request)
    authorize(request, token, stream, role)
    admit_client(request)
    check_limits(request, role, stream)
    await admit_cluster(request, role, stream)
    choice = first_layer_choice(request, stream) if role == PLAY else None
    offer = await read_body(request, SDP_TYPE, "offer")
    session, answer = await start_session(request, role, stream, offer, token)
    router = request.app[MEDIA_SERVER].router
    etags = request.app[ETAGS]
    etags.prune(router.sessions.by_id)
    location = f"/sessions/{session.id}"
    headers = CIMultiDict([("Location", location), ("ETag", etags.renew(session.id))])
    if role == PLAY:
        headers.add("Link", f"{whep_link(stream)}, {layer_link(location)}")
        if choice is not None:
            router.set_layer(session.id, None, choice, time.monotonic())
    headers.extend(ice_server_links(request))
    return web.Response(status=201, body=answer.encode(), content_type=SDP_TYPE, headers=headers)


def first_layer_choice(request: web.Request, stream: str) -> Choice | None:
    """The `?layer=` of a WHEP POST, checked against the live publisher's layers if any."""
    rid = request.query.get("layer")
    if rid is None:
        return None
    try:
        choice = rid_choice(rid)
    except LayerRequestError as exc:
        raise Rejection(400, str(exc)) from exc
    known = request.app[MEDIA_SERVER].router.layer_rids(stream)
    if choice.rid is not None and known is not None and choice.rid not in known:
        raise Rejection(400, f"the stream sends no layer with rid {choice.rid!r}")
    return choice


async def set_layer(request: web.Request) -> web.Response:
    """The WHEP layer extension: pin a rid, cap the size, or "auto" -> 200."""
    session = session_for(request)
    if request.content_type != JSON_TYPE:
        raise Rejection(415, f"Content-Type must be {JSON_TYPE}, not {request.content_type}")
    if request.content_length is not None and request.content_length > MAX_LAYER_BODY:
        raise Rejection(413, f"layer request larger than {MAX_LAYER_BODY} bytes")
    try:
        mid, choice = parse_layer_request(await read_bytes(request, "layer request"))
        request.app[MEDIA_SERVER].router.set_layer(session.id, mid, choice, time.monotonic())
    except LayerRequestError as exc:
        raise Rejection(400, str(exc)) from exc
    except KeyError as exc:
        raise Rejection(400, "layers are chosen by playing (WHEP) sessions only") from exc
    except LookupError as exc:
        raise Rejection(400, str(exc)) from exc
    return web.json_response({"mediaId": mid, "rid": choice.rid or AUTO})


async def whip(request: web.Request) -> web.Response:
    return await whip_or_whep(request, PUBLISH, request.match_info["stream"])


async def whep(request: web.Request) -> web.Response:
    return await whip_or_whep(request, PLAY, request.match_info["stream"])


def check_owner(request: web.Request, session_id: str) -> None:
    """With auth on, only the token that created a session may end or change it; the session
    URL alone is the capability when auth is off."""
    if not request.app[AUTH].enabled:
        return
    token = request_token(request)
    if not request.app[OWNERS].is_owner(session_id, token):
        raise unauthorized(token)


def session_for(request: web.Request) -> PeerSession:
    """The live session a /sessions/{id} URL names, if the request may act on it."""
    session_id = request.match_info["id"]
    session = request.app[MEDIA_SERVER].router.sessions.by_id.get(session_id)
    if session is None:
        raise Rejection(404, "no such session")
    check_owner(request, session_id)
    return session


async def delete_session(request: web.Request) -> web.Response:
    router = request.app[MEDIA_SERVER].router
    ended = router.ended.get(request.match_info["id"])
    if ended is not None:
        # The peer's DTLS close or a timeout got there first; the client's intent is met.
        check_owner(request, request.match_info["id"])
        return web.Response(status=200, text=f"session already ended: {ended.reason}\n")
    session = session_for(request)
    request.app[MEDIA_SERVER].router.close(session.id, "DELETE by client")
    request.app[ETAGS].forget(session.id)
    return web.Response(status=200, text="session ended\n")


async def patch_session(request: web.Request) -> web.Response:
    """RFC 9725 §4.3: trickled candidates -> 204; new ice-ufrag/pwd -> ICE restart, 200."""
    session = session_for(request)
    if request.content_type != SDPFRAG_TYPE:
        raise Rejection(415, f"Content-Type must be {SDPFRAG_TYPE}, not {request.content_type}")
    # Trickle needs no If-Match (several clients never keep the ETag); one that is sent must
    # match, and an ICE restart, which changes the session, must send one.
    if_match = request.headers.get("If-Match")
    etags = request.app[ETAGS]
    if if_match is not None and not etags.matches(session.id, if_match):
        raise Rejection(412, "If-Match does not match the session's current ETag")
    try:
        fragment = parse_sdpfrag(await read_body(request, SDPFRAG_TYPE, "fragment"))
    except FragmentError as exc:
        raise Rejection(400, str(exc)) from exc
    if fragment.ufrag is None or fragment.ufrag == session.ice.remote_ufrag:
        return web.Response(status=204)  # an ICE-lite server has no use for client candidates
    if if_match is None:
        raise Rejection(428, 'an ICE restart needs If-Match (the ETag, or "*")')
    if fragment.pwd is None:
        raise Rejection(400, "an ICE restart needs a=ice-pwd with the new a=ice-ufrag")
    media = request.app[MEDIA_SERVER]
    restarted = media.router.restart_ice(session.id, fragment.ufrag, fragment.pwd)
    if restarted is None:
        raise Rejection(404, "no such session")
    first = restarted.peer.tracks[0]
    body = render_restart(
        restarted.ice.local_ufrag,
        restarted.ice.local_pwd,
        first.kind,
        first.mid,
        answer_candidates(request),
        media.tcp_port,
    )
    log.info("session %s: ICE restart over HTTP from %s", session.id, request.remote)
    return web.Response(
        status=200,
        body=body.encode(),
        content_type=SDPFRAG_TYPE,
        headers={"ETag": etags.renew(session.id)},
    )


def srs_stream(app_name: str | None, stream: str | None) -> str:
    """SRS names a stream by app and stream; ours is `app/stream`, each part a WHIP name
    segment (no control characters, no bare dots, at most 64 characters)."""
    if not app_name or not stream:
        raise Rejection(400, "app and stream are required")
    for part in (app_name, stream):
        if not SEGMENT.fullmatch(part) or not part.strip("."):
            raise Rejection(400, f"bad stream name part {part[:64]!r}")
    return f"{app_name}/{stream}"


async def srs_whip(request: web.Request) -> web.Response:
    stream = srs_stream(request.query.get("app"), request.query.get("stream"))
    return await whip_or_whep(request, PUBLISH, stream)


async def srs_whep(request: web.Request) -> web.Response:
    stream = srs_stream(request.query.get("app"), request.query.get("stream"))
    return await whip_or_whep(request, PLAY, stream)


def parse_srs_body(raw: bytes) -> tuple[str, str]:
    """(stream, offer) of an SRS /rtc/v1/publish/ or /play/ body; a 400 Rejection naming what
    is wrong with any other shape."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(400, "body is not UTF-8") from exc
    try:
        body = json.loads(text)
    except RecursionError as exc:
        raise Rejection(400, "body nests too deep") from exc
    except ValueError as exc:
        raise Rejection(400, "body is not JSON") from exc
    if not isinstance(body, dict):
        raise Rejection(400, "body must be a JSON object with streamurl and sdp")
    url, offer = body.get("streamurl"), body.get("sdp")
    if not isinstance(url, str):
        raise Rejection(400, "streamurl must be a string")
    if not isinstance(offer, str):
        raise Rejection(400, "sdp must be a string")
    try:
        parsed = urlparse(url)
    except ValueError as exc:
        raise Rejection(400, "streamurl is not a URL") from exc
    parts = parsed.path.split("/")[1:]
    if parsed.scheme != "webrtc" or len(parts) != 2:
        raise Rejection(400, "streamurl must look like webrtc://host/app/stream")
    return srs_stream(*parts), offer


async def srs_api(request: web.Request, role: str) -> web.Response:
    """SRS's /rtc/v1/publish/ and /rtc/v1/play/: JSON in, JSON out, code 0 on success."""
    try:
        admit_client(request)
        stream, offer = parse_srs_body(await read_bytes(request, "body"))
        token = request_token(request)
        authorize(request, token, stream, role)
        check_limits(request, role, stream)
        await admit_cluster(request, role, stream)
        session, answer = await start_session(request, role, stream, offer, token)
    except Rejection as exc:
        count_refusal(request, exc.status)
        log.info("%s %s -> %d %s", request.method, logged_path(request), exc.status, exc.reason)
        return web.json_response(
            {"code": exc.status, "msg": exc.reason}, status=exc.status, headers=exc.headers
        )
    return web.json_response(
        {"code": 0, "server": "litesfu", "sdp": answer, "sessionid": session.id}
    )


async def srs_publish(request: web.Request) -> web.Response:
    return await srs_api(request, PUBLISH)


async def srs_play(request: web.Request) -> web.Response:
    return await srs_api(request, PLAY)


def authorize_stats(request: web.Request) -> None:
    token = request_token(request)
    if not request.app[AUTH].allows_stats(token):
        raise unauthorized(token)


async def list_streams(request: web.Request) -> web.Response:
    authorize_stats(request)
    body: dict = {"streams": request.app[MEDIA_SERVER].router.snapshot()}
    if CLUSTER in request.app:
        body["cluster"] = request.app[CLUSTER].streams_view()
    return web.json_response(body)


async def server_stats(request: web.Request) -> web.Response:
    authorize_stats(request)
    media = request.app[MEDIA_SERVER]
    endpoint = media.endpoint
    return web.json_response(
        {
            **media.router.resource_counts(),
            "tasks": len(asyncio.all_tasks()),
            "open_files": open_file_count(),
            "udp_port": endpoint.port,
            "datagrams_in": endpoint.datagrams_in,
            # STUN, DTLS and RTCP; forwarded media is media_packets_out
            "control_datagrams_out": endpoint.control_datagrams_out,
            "drops": dict(endpoint.drops),
            "admission_refused": dict(request.app[ADMISSION].refused),
            "http_refused": dict(request.app[REFUSED]),  # by status: 400, 401, 413, 429, ...
            "http": request.app[GUARD].stats() if GUARD in request.app else {},
        }
    )


def open_file_count() -> int | None:
    """File descriptors this process holds (Linux), to see leaks from outside."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None
