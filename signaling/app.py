"""The HTTP face of the server: WHIP/WHEP, SRS-compatible routes, the stats API and web pages.

Handlers turn HTTP into calls on the router and the router's answers into HTTP; every failure a
client can cause becomes a status with a one-line reason, logged once, never a traceback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlparse

from aiohttp import web

from sfu.router import PLAY, PUBLISH, StreamBusy
from sfu.server import MediaServer
from signaling.answer import render_answer
from signaling.negotiate import (
    NegotiationError,
    UnsupportedMedia,
    negotiate_play,
    negotiate_publish,
)
from signaling.sdp import SdpError, parse_offer

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
STREAM_PATTERN = r"[A-Za-z0-9_.~-]+(?:/[A-Za-z0-9_.~-]+)?"
SDP_TYPE = "application/sdp"
MEDIA_SERVER = web.AppKey("media_server", MediaServer)
CANDIDATES = web.AppKey("candidates", list)

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Link, Accept-Post",
}


class Rejection(Exception):
    """A client error with its HTTP status and one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@web.middleware
async def cors_and_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """CORS on every answer; Rejection and unexpected errors become one-line text statuses."""
    try:
        response = await handler(request)
    except Rejection as exc:
        log.info("%s %s -> %d %s", request.method, request.path, exc.status, exc.reason)
        response = web.Response(status=exc.status, text=exc.reason + "\n")
    except web.HTTPException as exc:
        exc.headers.update(CORS_HEADERS)
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = web.Response(status=500, text="internal error\n")
    response.headers.update(CORS_HEADERS)
    return response


def create_app(media: MediaServer, candidates: list[str], web_root: Path | None) -> web.Application:
    """The aiohttp application for one media server."""
    app = web.Application(middlewares=[cors_and_errors], client_max_size=MAX_OFFER_BYTES)
    app[MEDIA_SERVER] = media
    app[CANDIDATES] = candidates
    app.router.add_post(f"/whip/{{stream:{STREAM_PATTERN}}}", whip)
    app.router.add_post(f"/whep/{{stream:{STREAM_PATTERN}}}", whep)
    app.router.add_route("OPTIONS", f"/whip/{{stream:{STREAM_PATTERN}}}", options)
    app.router.add_route("OPTIONS", f"/whep/{{stream:{STREAM_PATTERN}}}", options)
    app.router.add_delete("/sessions/{id}", delete_session)
    app.router.add_route("OPTIONS", "/sessions/{id}", options)
    app.router.add_post("/rtc/v1/whip/", srs_whip)
    app.router.add_post("/rtc/v1/whep/", srs_whep)
    app.router.add_route("OPTIONS", "/rtc/v1/{path:.*}", options)
    app.router.add_post("/rtc/v1/publish/", srs_publish)
    app.router.add_post("/rtc/v1/play/", srs_play)
    app.router.add_get("/api/v1/streams", list_streams)
    app.router.add_get("/api/v1/server", server_stats)
    if web_root is not None and web_root.is_dir():
        app.router.add_get("/", index_page(web_root))
        app.router.add_static("/", web_root, show_index=False)
    return app


def index_page(web_root: Path) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(web_root / "index.html")

    return handler


async def options(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"Accept-Post": SDP_TYPE})


async def read_offer(request: web.Request) -> str:
    """The SDP body of a WHIP/WHEP POST, or a Rejection saying what is wrong with it."""
    if request.content_type != SDP_TYPE:
        raise Rejection(415, f"Content-Type must be {SDP_TYPE}, not {request.content_type}")
    if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
        raise Rejection(413, f"offer larger than {MAX_OFFER_BYTES} bytes")
    body = await request.read()
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(400, "offer is not UTF-8") from exc


def start_session(request: web.Request, role: str, stream: str, offer_text: str) -> tuple[str, str]:
    """Negotiate, create the session and render the answer: (session id, answer SDP)."""
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
    now = time.monotonic()
    try:
        session = (
            router.publish(stream, peer, now) if role == PUBLISH else router.play(stream, peer, now)
        )
    except StreamBusy as exc:
        raise Rejection(409, str(exc)) from exc
    port = media.endpoint.port
    ssrcs = session.handler.ssrcs() if role == PLAY else None  # type: ignore[union-attr]
    answer = render_answer(
        offer,
        peer,
        direction="recvonly" if role == PUBLISH else "sendonly",
        ice_ufrag=session.ice.local_ufrag,
        ice_pwd=session.ice.local_pwd,
        fingerprint=media.certificate.fingerprint,
        candidates=[(address, port) for address in request.app[CANDIDATES]],
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
    return session.id, answer


async def whip_or_whep(request: web.Request, role: str, stream: str) -> web.Response:
    offer = await read_offer(request)
    session_id, answer = start_session(request, role, stream, offer)
    return web.Response(
        status=201,
        body=answer.encode(),
        content_type=SDP_TYPE,
        headers={"Location": f"/sessions/{session_id}", "ETag": f'"{session_id}"'},
    )


async def whip(request: web.Request) -> web.Response:
    return await whip_or_whep(request, PUBLISH, request.match_info["stream"])


async def whep(request: web.Request) -> web.Response:
    return await whip_or_whep(request, PLAY, request.match_info["stream"])


async def delete_session(request: web.Request) -> web.Response:
    session_id = request.match_info["id"]
    if not request.app[MEDIA_SERVER].router.close(session_id, "DELETE by client"):
        raise Rejection(404, f"no session {session_id}")
    return web.Response(status=200, text="session ended\n")


def srs_stream(app_name: str | None, stream: str | None) -> str:
    """SRS names a stream by app and stream; ours is `app/stream`."""
    if not app_name or not stream:
        raise Rejection(400, "app and stream query parameters are required")
    name = f"{app_name}/{stream}"
    if len(name.split("/")) != 2 or not all(part.strip() for part in name.split("/")):
        raise Rejection(400, f"bad stream name {name!r}")
    return name


async def srs_whip(request: web.Request) -> web.Response:
    stream = srs_stream(request.query.get("app"), request.query.get("stream"))
    return await whip_or_whep(request, PUBLISH, stream)


async def srs_whep(request: web.Request) -> web.Response:
    stream = srs_stream(request.query.get("app"), request.query.get("stream"))
    return await whip_or_whep(request, PLAY, stream)


async def srs_api(request: web.Request, role: str) -> web.Response:
    """SRS's /rtc/v1/publish/ and /rtc/v1/play/: JSON in, JSON out, code 0 on success."""
    try:
        body = json.loads(await request.read())
        url = urlparse(body["streamurl"])
        offer = body["sdp"]
        if not isinstance(offer, str):
            raise TypeError("sdp")
    except (ValueError, KeyError, TypeError) as exc:
        raise Rejection(400, "body must be JSON with streamurl and sdp") from exc
    parts = [part for part in url.path.split("/") if part]
    if url.scheme != "webrtc" or len(parts) != 2:
        raise Rejection(400, "streamurl must look like webrtc://host/app/stream")
    stream = srs_stream(*parts)
    try:
        session_id, answer = start_session(request, role, stream, offer)
    except Rejection as exc:
        log.info("%s %s -> %d %s", request.method, request.path, exc.status, exc.reason)
        return web.json_response({"code": exc.status, "msg": exc.reason}, status=exc.status)
    return web.json_response(
        {"code": 0, "server": "litesfu", "sdp": answer, "sessionid": session_id}
    )


async def srs_publish(request: web.Request) -> web.Response:
    return await srs_api(request, PUBLISH)


async def srs_play(request: web.Request) -> web.Response:
    return await srs_api(request, PLAY)


async def list_streams(request: web.Request) -> web.Response:
    return web.json_response({"streams": request.app[MEDIA_SERVER].router.snapshot()})


async def server_stats(request: web.Request) -> web.Response:
    media = request.app[MEDIA_SERVER]
    endpoint = media.endpoint
    return web.json_response(
        {
            "sessions": len(media.router.sessions),
            "streams": len(media.router.streams),
            "udp_port": endpoint.port,
            "datagrams_in": endpoint.datagrams_in,
            "datagrams_out": endpoint.datagrams_out,
            "drops": dict(endpoint.drops),
        }
    )
