"""The routes a worker offers its front only: load figures and relay setup, on loopback.

A worker of `--workers N` is a full server on 127.0.0.1; these routes let the front see how many
players each stream has and open or close the two ends of a loopback relay. Only the front may
use them: it makes a secret for each run and hands it to its workers in their environment
(never on a command line, which every local user can read), and sends it with every request.
Requests without it, or from any address but loopback, are refused; the client address the
front passes on is believed only with the secret.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from sfu.media import AUDIO, VIDEO, Codec, TrackSpec
from sfu.router import StreamBusy
from sfu.session import Address
from signaling.app import MEDIA_SERVER, Rejection
from signaling.worker_link import CLIENT_HEADER, HOST_HEADER, SECRET_ENV, SECRET_HEADER

FRONT_SECRET = web.AppKey("front_secret", bytes)


def is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_front(request: web.Request) -> bool:
    """True for a loopback request carrying the front's secret."""
    offered = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
    return is_loopback(request.remote) and hmac.compare_digest(offered, request.app[FRONT_SECRET])


@web.middleware
async def from_front(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse /internal/ to all but the front; take the client address and Host the front
    passes on."""
    front = is_front(request)
    if request.path.startswith("/internal/") and not front:
        raise Rejection(403, "internal routes answer the front only")
    client = request.headers.get(CLIENT_HEADER)
    host = request.headers.get(HOST_HEADER)
    if front and client:
        request = request.clone(remote=client)
    if front and host:
        headers = request.headers.copy()
        headers["Host"] = host
        request = request.clone(headers=headers)
    return await handler(request)


def add_internal_routes(app: web.Application, secret: str) -> None:
    """Turn the app of one server into the app of a worker whose front holds `secret`."""
    if not secret:
        raise ValueError(f"a worker needs its front's secret in {SECRET_ENV}")
    app[FRONT_SECRET] = secret.encode()
    app.middlewares.append(from_front)
    app.router.add_get("/internal/load", load)
    app.router.add_get("/internal/relay-source", relay_source)
    app.router.add_post("/internal/relay-in", relay_in)
    app.router.add_post("/internal/relay-out", relay_out)
    app.router.add_delete("/internal/relays/{id}", close_relay)


def tracks_to_json(tracks: list[TrackSpec]) -> list[dict]:
    return [
        {"mid": t.mid, "kind": t.kind, "codecs": [dataclasses.asdict(c) for c in t.codecs]}
        for t in tracks
    ]


def tracks_from_json(data: object) -> list[TrackSpec]:
    """Relay tracks as tracks_to_json wrote them; ValueError for anything else."""
    if not isinstance(data, list) or not data:
        raise ValueError("tracks must be a non-empty list")
    tracks = []
    for item in data:
        try:
            codecs = [Codec(**{**c, "rtcp_fb": tuple(c["rtcp_fb"])}) for c in item["codecs"]]
            track = TrackSpec(str(item["mid"]), item["kind"], codecs)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"bad track: {exc}") from exc
        if track.kind not in (AUDIO, VIDEO) or len(codecs) != 1:
            raise ValueError("a relay track is audio or video with exactly one codec")
        tracks.append(track)
    return tracks


def address_from_json(data: object) -> Address:
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[1], int)):
        raise ValueError("an address is [host, port]")
    return str(data[0]), data[1]


async def json_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except ValueError as exc:
        raise Rejection(400, "body must be JSON") from exc
    if not isinstance(body, dict) or not isinstance(body.get("stream"), str):
        raise Rejection(400, "body must be a JSON object with a stream")
    return body


async def load(request: web.Request) -> web.Response:
    """Players per stream (relays left out), live publishers and relay ends, for the front."""
    media = request.app[MEDIA_SERVER]
    relays = media.relays
    relayed = relays.relayed_players()
    streams = {
        name: {
            "players": stream.players - relayed[name],
            "publishing": stream.live and not stream.publisher_relay,
        }
        for name, stream in media.router.stream_summaries().items()
    }
    return web.json_response(
        {
            "pid": os.getpid(),
            "udp_port": media.endpoint.port,
            "sessions": media.router.session_count(),
            "streams": streams,
            "relays_in": {i: r.session.stream for i, r in relays.inbound.items()},
            "relays_out": {i: s.stream for i, s in relays.outbound.items()},
        }
    )


async def relay_source(request: web.Request) -> web.Response:
    """What an edge needs to take a live stream from this worker; 404 while it is not live."""
    media = request.app[MEDIA_SERVER]
    stream = request.query.get("stream", "")
    tracks = media.relays.source_tracks(stream)
    if tracks is None:
        raise Rejection(404, f"stream {stream} is not live here")
    return web.json_response(
        {"tracks": tracks_to_json(tracks), "source": [media.relays.host, media.endpoint.port]}
    )


async def relay_in(request: web.Request) -> web.Response:
    """Open the edge end: {stream, tracks, source} -> {id, addr} to send the stream to."""
    body = await json_body(request)
    try:
        tracks = tracks_from_json(body.get("tracks"))
        source = address_from_json(body.get("source"))
    except ValueError as exc:
        raise Rejection(400, str(exc)) from exc
    try:
        relay = request.app[MEDIA_SERVER].relays.open_in(body["stream"], tracks, source)
    except StreamBusy as exc:
        raise Rejection(409, str(exc)) from exc
    return web.json_response({"id": relay.session.id, "addr": list(relay.addr)}, status=201)


async def relay_out(request: web.Request) -> web.Response:
    """Open the origin end: {stream, tracks, target} -> {id}; the stream goes to target."""
    body = await json_body(request)
    try:
        tracks = tracks_from_json(body.get("tracks"))
        target = address_from_json(body.get("target"))
    except ValueError as exc:
        raise Rejection(400, str(exc)) from exc
    if not is_loopback(target[0]) and target[0] != request.app[MEDIA_SERVER].relays.host:
        raise Rejection(400, "a relay goes to a worker of this server only")
    session = request.app[MEDIA_SERVER].relays.open_out(body["stream"], tracks, target)
    return web.json_response({"id": session.id}, status=201)


async def close_relay(request: web.Request) -> web.Response:
    relay_id = request.match_info["id"]
    if not request.app[MEDIA_SERVER].relays.close(relay_id, "closed by the front"):
        raise Rejection(404, f"no relay {relay_id}")
    return web.Response(status=200, text="relay closed\n")
