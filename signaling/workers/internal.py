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

from sfu.media import Codec, TrackSpec
from sfu.routing.router import StreamBusy
from signaling.http.state import MEDIA_SERVER
from signaling.security.clients import RateLimit
from signaling.serving.media_types import JSON_TYPE
from signaling.serving.plumbing import Rejection, read_bytes
from signaling.serving.scrapes import SCRAPES
from signaling.workers.link import CLIENT_HEADER, HOST_HEADER, SECRET_ENV, SECRET_HEADER
from signaling.workers.messages import (
    LoadReport,
    M,
    Message,
    MessageError,
    RelayCodec,
    RelayInOpened,
    RelayInRequest,
    RelayOutOpened,
    RelayOutRequest,
    RelaySource,
    RelayTrack,
    StreamLoad,
    tracks_from_data,
)

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
    app[SCRAPES] = RateLimit(0, 0)  # every client is the front's, which limits them itself
    app.middlewares.append(from_front)
    app.router.add_get("/internal/load", load)
    app.router.add_get("/internal/relay-source", relay_source)
    app.router.add_post("/internal/relay-in", relay_in)
    app.router.add_post("/internal/relay-out", relay_out)
    app.router.add_delete("/internal/relays/{id}", close_relay)


def track_message(track: TrackSpec) -> RelayTrack:
    codec = track.codecs[0]
    return RelayTrack(track.mid, track.kind, RelayCodec(**dataclasses.asdict(codec)))


def track_spec(track: RelayTrack) -> TrackSpec:
    return TrackSpec(track.mid, track.kind, [Codec(**dataclasses.asdict(track.codec))])


def tracks_to_json(tracks: list[TrackSpec]) -> list[dict]:
    return [track_message(t).to_data() for t in tracks]


def tracks_from_json(data: object) -> list[TrackSpec]:
    """Relay tracks as tracks_to_json wrote them; a MessageError (ValueError) for anything else."""
    return [track_spec(t) for t in tracks_from_data(data)]


async def message_body(request: web.Request, kind: type[M]) -> M:
    """The front's message of type `kind`, or a 400 saying what is wrong with it."""
    try:
        return kind.from_json(await read_bytes(request, f"{kind.KIND} message"))
    except MessageError as exc:
        raise Rejection(400, str(exc)) from exc


def message_response(message: Message, status: int = 200) -> web.Response:
    return web.Response(status=status, text=message.to_json(), content_type=JSON_TYPE)


async def load(request: web.Request) -> web.Response:
    """Players per stream (relays left out), live publishers and relay ends, for the front."""
    media = request.app[MEDIA_SERVER]
    relays = media.relays
    relayed = relays.relayed_players()
    streams = {
        name: StreamLoad(
            players=stream.players - relayed[name],
            publishing=stream.live and not stream.publisher_relay,
        )
        for name, stream in media.router.stream_summaries().items()
    }
    report = LoadReport(
        pid=os.getpid(),
        udp_port=media.endpoint.port,
        sessions=media.router.session_count(),
        streams=streams,
        relays_in={i: r.session.stream for i, r in relays.inbound.items()},
        relays_out={i: s.stream for i, s in relays.outbound.items()},
    )
    return message_response(report)


async def relay_source(request: web.Request) -> web.Response:
    """What an edge needs to take a live stream from this worker; 404 while it is not live."""
    media = request.app[MEDIA_SERVER]
    stream = request.query.get("stream", "")
    tracks = media.relays.source_tracks(stream)
    if tracks is None:
        raise Rejection(404, f"stream {stream} is not live here")
    source = (media.relays.host, media.endpoint.port)
    return message_response(RelaySource(tuple(track_message(t) for t in tracks), source))


async def relay_in(request: web.Request) -> web.Response:
    """Open the edge end: RelayInRequest -> RelayInOpened, the address to send the stream to."""
    asked = await message_body(request, RelayInRequest)
    tracks = [track_spec(t) for t in asked.tracks]
    try:
        relay = request.app[MEDIA_SERVER].relays.open_in(asked.stream, tracks, asked.peer)
    except StreamBusy as exc:
        raise Rejection(409, str(exc)) from exc
    return message_response(RelayInOpened(relay.session.id, relay.addr), status=201)


async def relay_out(request: web.Request) -> web.Response:
    """Open the origin end: RelayOutRequest -> RelayOutOpened; the stream goes to its peer."""
    asked = await message_body(request, RelayOutRequest)
    target = asked.peer
    if not is_loopback(target[0]) and target[0] != request.app[MEDIA_SERVER].relays.host:
        raise Rejection(400, "a relay goes to a worker of this server only")
    tracks = [track_spec(t) for t in asked.tracks]
    session = request.app[MEDIA_SERVER].relays.open_out(asked.stream, tracks, target)
    return message_response(RelayOutOpened(session.id), status=201)


async def close_relay(request: web.Request) -> web.Response:
    relay_id = request.match_info["id"]
    if not request.app[MEDIA_SERVER].relays.close(relay_id, "closed by the front"):
        raise Rejection(404, f"no relay {relay_id}")
    return web.Response(status=200, text="relay closed\n")
