"""Rooms v1: a participant's subscribe session, its re-offers, preferences and events.

A participant publishes with plain WHIP (stream `ROOM/PARTICIPANT`) and receives everyone
else on one subscribe session made here. The server never offers: when it wants more slots it
says so in the `renegotiate` event and the client PATCHes a full new offer. The session URL
is the capability; with auth on, only the creating token may change or end it.
"""

from __future__ import annotations

import json
import logging
import re
import time

from aiohttp import web

from sfu.routing.room_stats import OwnMedia, RoomView, TrackPrefs
from sfu.routing.router import SUBSCRIBE, ParticipantBusy, RoomFull
from sfu.session.peer import PeerSession
from signaling.http.routes import ROOMS, ice_server_links
from signaling.http.state import CLUSTER, ETAGS, MEDIA_SERVER
from signaling.http.whip import (
    admit_client,
    already_ended,
    ask_hook,
    check_limits,
    created_headers,
    negotiated,
    remember_owner,
    session_answer,
)
from signaling.observe.room_events import room_listener
from signaling.observe.routes import HUB, quietly
from signaling.sdp.negotiate import negotiate_subscribe
from signaling.sdp.parse import MAX_ROOM_MEDIA_SECTIONS
from signaling.serving.access import AUTH, check_owner, request_token, unauthorized
from signaling.serving.media_types import JSON_TYPE, SDP_TYPE
from signaling.serving.names import NAME_SEGMENT
from signaling.serving.plumbing import (
    CORS_HEADERS,
    ROOM_REFUSED,
    Handler,
    Rejection,
    read_body,
    read_bytes,
)
from signaling.serving.redact import short_hash

log = logging.getLogger(__name__)

MAX_PREFS_BODY = 8 * 1024
MAX_MEDIA_BODY = 256  # {"muted": ["audio", "video"], "screen": false} is 45 bytes
MUTABLE = ("audio", "video")
MAX_SIZE = 16384  # pixels: the largest maxWidth / maxHeight a preference may ask for
PREF_FIELDS = {"pinned": "pinned", "off": "off", "maxWidth": "max_width", "maxHeight": "max_height"}
_NAME = re.compile(NAME_SEGMENT)


def counted(action: str, handler: Handler) -> Handler:
    """`handler` with each of its refusals counted under "ACTION STATUS" (/api/v1/rooms,
    /metrics), as well as by status alone like every refusal."""

    async def counting(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Rejection as exc:
            request.app[ROOM_REFUSED][f"{action} {exc.status}"] += 1
            raise

    return counting


def session_location(session_id: str) -> str:
    return f"{ROOMS}/sessions/{session_id}"


def checked_name(request: web.Request, part: str) -> str:
    """A room or participant name from the path, in the shape of a stream name's part."""
    name = request.match_info[part]
    if not _NAME.fullmatch(name):
        raise Rejection(400, f"{part} name must be 1 to 64 of A-Z a-z 0-9 _ . ~ -")
    return name


def authorize_join(request: web.Request, token: str | None, room: str, participant: str) -> None:
    """A static token, or a room token that lets `participant` subscribe in `room` (a stream
    token for ROOM/PARTICIPANT joins no room: it would receive every participant)."""
    if not request.app[AUTH].allows_join(token, room, participant):
        raise unauthorized(token)


def room_session(request: web.Request) -> tuple[PeerSession, RoomView]:
    """The live subscribe session a room session URL names and its view, if the request may
    act on it; a WHIP or WHEP session id is no room session."""
    session_id = request.match_info["id"]
    router = request.app[MEDIA_SERVER].router
    session = router.live_session(session_id)
    view = router.room_view(session_id)
    if session is None or view is None:
        raise Rejection(404, "no such room session")
    check_owner(request, session_id)
    return session, view


async def _join(request: web.Request) -> web.Response:
    """POST an offer of recvonly m-lines -> 201, the sendonly answer and the session URLs."""
    room, participant = checked_name(request, "room"), checked_name(request, "participant")
    stream = f"{room}/{participant}"
    token = request_token(request)
    authorize_join(request, token, room, participant)
    admit_client(request)
    check_limits(request, SUBSCRIBE, stream)
    cluster = request.app.get(CLUSTER)
    if cluster is not None:
        await cluster.admit_room(request, room)
    text = await read_body(request, SDP_TYPE, "offer")
    offer, peer = negotiated(text, negotiate_subscribe, MAX_ROOM_MEDIA_SECTIONS)
    await ask_hook(request, SUBSCRIBE, stream, token)
    check_limits(request, SUBSCRIBE, stream)
    router = request.app[MEDIA_SERVER].router
    try:
        session = router.subscribe(room, participant, peer, time.monotonic())
    except RoomFull as exc:
        raise Rejection(403, str(exc)) from exc
    except ParticipantBusy as exc:
        raise Rejection(409, str(exc)) from exc
    except ValueError as exc:
        raise Rejection(400, str(exc)) from exc
    remember_owner(request, session, token)
    answer = session_answer(request, offer, peer, session, "sendonly", room)
    location = session_location(session.id)
    headers = created_headers(request, session.id, location)
    headers.add("Link", f'<{location}/events>; rel="events"')
    headers.extend(ice_server_links(request))
    log.info(
        "room %s: %s joined, session #%s from %s (%d slots)",
        room,
        participant,
        short_hash(session.id),
        request.remote,
        len(peer.tracks),
    )
    return web.Response(status=201, body=answer.encode(), content_type=SDP_TYPE, headers=headers)


async def _reoffer(request: web.Request) -> web.Response:
    """PATCH a full new offer (earlier m-lines kept, new ones appended) -> 200 and the answer."""
    session, view = room_session(request)
    etags = request.app[ETAGS]
    if_match = request.headers.get("If-Match")
    if if_match is not None and not etags.matches(session.id, if_match):
        raise Rejection(412, "If-Match does not match the session's current ETag")
    text = await read_body(request, SDP_TYPE, "offer")
    offer, peer = negotiated(text, negotiate_subscribe, MAX_ROOM_MEDIA_SECTIONS)
    router = request.app[MEDIA_SERVER].router
    try:
        session = router.renegotiate(session.id, peer, time.monotonic())
    except KeyError as exc:
        raise Rejection(404, "no such room session") from exc
    except ValueError as exc:
        raise Rejection(400, str(exc)) from exc
    # The earlier m-lines are answered as they were accepted (session.peer), not as re-offered.
    answer = session_answer(request, offer, session.peer, session, "sendonly", view.room)
    return web.Response(
        body=answer.encode(), content_type=SDP_TYPE, headers={"ETag": etags.renew(session.id)}
    )


def parse_prefs(body: bytes, max_entries: int) -> dict[str, dict[str, bool | int]]:
    """`{"NAME": {"pinned": bool, "off": bool, "maxWidth": int, "maxHeight": int}}` -> name ->
    TrackPrefs keyword arguments; ValueError with a one-line reason for anything else."""
    try:
        prefs = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("body must be a JSON object") from exc
    if not isinstance(prefs, dict):
        raise ValueError("body must be a JSON object of participant names")
    if len(prefs) > max_entries:
        raise ValueError(f"at most {max_entries} participants")
    parsed: dict[str, dict[str, bool | int]] = {}
    for name, fields in prefs.items():
        if not _NAME.fullmatch(name):
            raise ValueError("participant names must be 1 to 64 of A-Z a-z 0-9 _ . ~ -")
        if not isinstance(fields, dict) or not set(fields) <= PREF_FIELDS.keys():
            raise ValueError(f"each participant's value is an object of {', '.join(PREF_FIELDS)}")
        for key, value in fields.items():
            if key in ("pinned", "off") and not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
            if key in ("maxWidth", "maxHeight") and not (
                type(value) is int and 0 < value <= MAX_SIZE
            ):
                raise ValueError(f"{key} must be a whole number of pixels, 1 to {MAX_SIZE}")
        parsed[name] = {PREF_FIELDS[key]: value for key, value in fields.items()}
    return parsed


async def read_json(request: web.Request, what: str, limit: int) -> bytes:
    """A JSON body of at most `limit` bytes, or a 415 or 413 saying why not."""
    if request.content_type != JSON_TYPE:
        raise Rejection(415, f"Content-Type must be {JSON_TYPE}, not {request.content_type}")
    too_large = Rejection(413, f"{what} larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = await read_bytes(request, what)  # a chunked body: within the app's bound
    if len(body) > limit:
        raise too_large
    return body


async def _set_prefs(request: web.Request) -> web.Response:
    """POST per-participant preferences (pin, off, a size cap) -> 204."""
    session, _ = room_session(request)
    body = await read_json(request, "preferences", MAX_PREFS_BODY)
    media = request.app[MEDIA_SERVER]
    try:
        prefs = parse_prefs(body, media.config.max_room_participants)
    except ValueError as exc:
        raise Rejection(400, str(exc)) from exc
    chosen = {name: TrackPrefs(**fields) for name, fields in prefs.items()}  # type: ignore[arg-type]
    try:
        media.router.set_prefs(session.id, chosen, time.monotonic())
    except KeyError as exc:
        raise Rejection(404, "no such room session") from exc
    except ValueError as exc:
        raise Rejection(400, str(exc)) from exc
    return web.Response(status=204)


def parse_own_media(body: bytes) -> OwnMedia:
    """`{"muted": ["audio", "video"], "screen": bool}` (either may be left out) -> OwnMedia;
    ValueError with a one-line reason for anything else."""
    try:
        said = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("body must be a JSON object") from exc
    if not isinstance(said, dict) or not set(said) <= {"muted", "screen"}:
        raise ValueError('body must be a JSON object of "muted" and "screen"')
    muted = said.get("muted", [])
    if not isinstance(muted, list) or not set(muted) <= set(MUTABLE) or len(muted) > 2:
        raise ValueError('muted must be a list of "audio" and "video"')
    screen = said.get("screen", False)
    if not isinstance(screen, bool):
        raise ValueError("screen must be true or false")
    return OwnMedia(frozenset(muted), screen)


async def _set_media(request: web.Request) -> web.Response:
    """POST what the participant says of its own publication (muted kinds, screen share),
    which the others' participants and slots events then show -> 204."""
    session, _ = room_session(request)
    body = await read_json(request, "media state", MAX_MEDIA_BODY)
    try:
        said = parse_own_media(body)
    except ValueError as exc:
        raise Rejection(400, str(exc)) from exc
    try:
        subscriber, room = request.app[MEDIA_SERVER].router.subscriber_and_room(session.id)
    except KeyError as exc:
        raise Rejection(404, "no such room session") from exc
    room.say(subscriber, said, time.monotonic())
    return web.Response(status=204)


async def _leave(request: web.Request) -> web.Response:
    """DELETE the subscribe session (the page ends its WHIP session the same way)."""
    answer = already_ended(request)
    if answer is not None:
        return answer
    router = request.app[MEDIA_SERVER].router
    session, _ = room_session(request)
    router.close(session.id, "DELETE by client", time.monotonic())
    request.app[ETAGS].forget(session.id)
    return web.Response(status=200, text="left the room\n")


async def _events(request: web.Request) -> web.StreamResponse:
    """The participant's server-sent events; the URL is the capability (EventSource sends no
    Authorization header)."""
    hub = request.app.get(HUB)
    if hub is None:
        raise Rejection(404, "this server serves no event streams")
    session_id = request.match_info["id"]
    router = request.app[MEDIA_SERVER].router
    if router.room_view(session_id) is None:
        raise hub.refuse("not_found", 404, "no such room session")
    listener, first = room_listener(lambda: router.room_view(session_id))
    return await hub.serve(request, listener, first, CORS_HEADERS, session=session_id)


events = quietly(_events)
join = counted("join", _join)
reoffer = counted("reoffer", _reoffer)
set_prefs = counted("prefs", _set_prefs)
set_media = counted("media", _set_media)
leave = counted("leave", _leave)
