"""A worker's SRS-compatible routes: /rtc/v1/whip/ and /whep/ by query, /publish/ and /play/
by JSON, answered as SRS's JavaScript SDK expects."""

from __future__ import annotations

from aiohttp import web

from sfu.routing.router import PLAY, PUBLISH
from signaling.http.whip import (
    admit_client,
    admit_cluster,
    check_limits,
    start_session,
    whip_or_whep,
)
from signaling.serving.access import authorize, request_token
from signaling.serving.plumbing import Rejection, note_refusal, read_bytes
from signaling.serving.srs_url import parse_srs_body, query_stream


async def srs_whip(request: web.Request) -> web.Response:
    return await whip_or_whep(request, PUBLISH, query_stream(request.query))


async def srs_whep(request: web.Request) -> web.Response:
    return await whip_or_whep(request, PLAY, query_stream(request.query))


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
        note_refusal(request, exc)
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
