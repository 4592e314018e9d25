"""The public HTTP face of `--workers N`: pages, and every API call passed to the right worker.

WHIP and SRS publish go to the stream's origin worker, WHEP and SRS play where the balancer
says, a room join to its room's worker (where the room's streams are published), and
/sessions/w<i>-<id> and /rooms/v1/sessions/w<i>-<id> to worker i. Statuses, bodies and
headers come back as the worker sent them, with one change: session ids gain the `w<i>-`
prefix that routes their later requests. The stats API merges the workers' views so a stream
relayed to several workers shows once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from signaling.http.routes import PublicHandlers, add_public_routes
from signaling.observe.routes import HUB
from signaling.serving.connections import ConnectionGuard
from signaling.serving.names import NAME_SEGMENT
from signaling.serving.paging import MAX_LIMIT, requested_page
from signaling.serving.plumbing import (
    GUARD,
    MAX_OFFER_BYTES,
    REFUSED,
    Rejection,
    behind_proxy,
    cors_and_errors,
    quiet_refusals,
    read_bytes,
    unavailable,
)
from signaling.serving.scrapes import limit_scrapes
from signaling.serving.srs_url import parse_srs_body, query_stream
from signaling.workers.balancer import Balancer
from signaling.workers.messages import MessageError
from signaling.workers.pool import Worker, WorkerPool
from signaling.workers.proxy import (
    BALANCER,
    POOL,
    addressed,
    ask_worker,
    prefixed,
    relay_stream,
)
from signaling.workers.stats_answers import (
    OUT_COUNTERS,
    rooms_answer,
    server_stats_answer,
    streams_answer,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

SRS_JSON_ROUTES = frozenset({"/rtc/v1/publish/", "/rtc/v1/play/"})
ROOM_NAME = re.compile(NAME_SEGMENT)


def create_front(
    pool: WorkerPool,
    balancer: Balancer,
    web_root: Path | None,
    *,
    guard: ConnectionGuard | None = None,
    trust_proxy: bool = False,
) -> web.Application:
    """The front's aiohttp application; the workers do all the checking and the media."""
    # Bodies over the workers' limit still reach them, so they refuse them in their own words.
    app = web.Application(
        middlewares=[cors_and_errors, *behind_proxy(trust_proxy)],
        client_max_size=4 * MAX_OFFER_BYTES,
        logger=log,
    )
    app[POOL] = pool
    app[BALANCER] = balancer
    app[REFUSED] = collections.Counter()
    quiet_refusals(app)
    limit_scrapes(app)
    if guard is not None:
        app[GUARD] = guard
    add_public_routes(
        app,
        PublicHandlers(
            whip=whip,
            whep=whep,
            delete_session=to_session,
            patch_session=to_session,
            set_layer=to_session,
            srs_whip=srs_whip,
            srs_whep=srs_whep,
            srs_publish=srs_publish,
            srs_play=srs_play,
            list_streams=list_streams,
            list_rooms=list_rooms,
            server_stats=server_stats,
            join_room=join_room,
            reoffer_room=to_session,
            room_prefs=to_session,
            room_media=to_session,
            leave_room=to_session,
            room_events=room_events,
        ),
        web_root,
    )
    return app


async def forward(
    request: web.Request, worker: Worker, body: bytes | None = None, path: str | None = None
) -> web.Response:
    """The worker's answer as the client's; an SRS JSON answer's sessionid gains the prefix."""
    status, headers, payload = await ask_worker(request, worker, path, body)
    if status == 200 and request.path in SRS_JSON_ROUTES:
        try:
            answer = json.loads(payload)
            answer["sessionid"] = prefixed(worker.index, answer["sessionid"])
        except (ValueError, KeyError, TypeError):
            pass
        else:
            payload = json.dumps(answer).encode()
    return web.Response(status=status, headers=headers, body=payload)


async def publish(request: web.Request, stream: str | None, body: bytes | None) -> web.Response:
    """A publisher goes to its stream's origin; no stream name, to worker 0 to be refused."""
    pool = request.app[POOL]
    worker = request.app[BALANCER].origin(stream) if stream else pool.workers[0]
    return await forward(request, worker, body)


async def play(request: web.Request, stream: str | None, body: bytes | None) -> web.Response:
    """A player goes where the balancer places it, counted there unless the worker refuses."""
    balancer = request.app[BALANCER]
    if not stream:
        return await forward(request, request.app[POOL].workers[0], body)
    worker = await balancer.player_worker(stream)
    with balancer.placing(worker, stream) as placement:
        response = await forward(request, worker, body)
        placement.accepted = response.status < 300
    if placement.accepted and HUB in request.app:
        request.app[HUB].grant(request.remote or "", stream)  # before load reports show it
    return response


async def whip(request: web.Request) -> web.Response:
    return await publish(request, request.match_info["stream"], None)


async def whep(request: web.Request) -> web.Response:
    return await play(request, request.match_info["stream"], None)


def named_stream(request: web.Request) -> str | None:
    """The stream an SRS query names, or None (its worker then says what is wrong)."""
    try:
        return query_stream(request.query)
    except Rejection:
        return None


async def srs_whip(request: web.Request) -> web.Response:
    return await publish(request, named_stream(request), None)


async def srs_whep(request: web.Request) -> web.Response:
    return await play(request, named_stream(request), None)


def body_stream(body: bytes) -> str | None:
    """The stream an SRS JSON body names, or None (its worker then says what is wrong)."""
    try:
        return parse_srs_body(body)[0]
    except Rejection:
        return None


async def srs_api(
    request: web.Request,
    place: Callable[[web.Request, str | None, bytes | None], Awaitable[web.Response]],
) -> web.Response:
    body = await read_bytes(request, "body")
    return await place(request, body_stream(body), body)


async def srs_publish(request: web.Request) -> web.Response:
    return await srs_api(request, publish)


async def srs_play(request: web.Request) -> web.Response:
    return await srs_api(request, play)


async def to_session(request: web.Request) -> web.Response:
    """A request to a session URL, /sessions/w<i>-<id>[/layer] or
    /rooms/v1/sessions/w<i>-<id>[/prefs|/media]: to worker i, without the prefix."""
    worker, path = addressed(request)
    return await forward(request, worker, path=path)


async def join_room(request: web.Request) -> web.Response:
    """A join goes where its room's streams are published: the origin of the room's name
    (a malformed one, to worker 0 to be refused)."""
    room = request.match_info["room"]
    if not ROOM_NAME.fullmatch(room):
        return await publish(request, None, None)
    request.app[BALANCER].joined(room)
    return await publish(request, room, None)


async def room_events(request: web.Request) -> web.StreamResponse:
    """A room session's events, from its worker as they come."""
    worker, path = addressed(request)
    return await relay_stream(request, worker, path)


async def from_all(
    request: web.Request, read: Callable[[bytes], T], path: str | None = None
) -> list[tuple[Worker, T]] | web.Response:
    """The client's GET (to `path` if given) answered by every ready worker, each answer as
    `read` checks it; or the first refusal (a 401 for stats behind a token), to pass back as
    it is. A malformed answer is counted and refused with a 502 that names the worker."""
    ready = [w for w in request.app[POOL].workers if w.ready]
    if not ready:
        raise unavailable("no worker is ready")
    answers = await asyncio.gather(*(ask_worker(request, w, path) for w in ready))
    results = []
    for worker, (status, headers, payload) in zip(ready, answers, strict=True):
        if status != 200:
            return web.Response(status=status, headers=headers, body=payload)
        try:
            results.append((worker, read(payload)))
        except MessageError as exc:
            request.app[POOL].malformed[request.path] += 1
            log.warning("worker %d answered %s with %s", worker.index, request.path, exc)
            raise Rejection(502, f"worker {worker.index} answered with {exc}") from exc
    return results


def merge_streams(views: list[tuple[int, list[dict]]]) -> list[dict]:
    """One entry per stream name from each worker's /api/v1/streams.

    Players are those of all workers, relay players left out. What comes in is the origin's
    (the entry whose publisher is no relay); what goes out is every worker's, less what edges
    received by relay, which is what their origin sent them.
    """
    by_name: dict[str, list[tuple[int, dict]]] = collections.defaultdict(list)
    for index, streams in views:
        for stream in streams:
            by_name[stream["name"]].append((index, stream))
    merged = []
    for name in sorted(by_name):
        workers = sorted(index for index, _ in by_name[name])
        entries = [stream for _, stream in by_name[name]]
        edges = [s for s in entries if s.get("publisher_relay")]
        origins = [s for s in entries if not s.get("publisher_relay")]
        stream = dict((origins or edges)[0])
        stream["publisher_relay"] = False
        stream["player_sessions"] = [
            p for s in entries for p in s.get("player_sessions", []) if not p.get("relay")
        ]
        stream["players"] = len(stream["player_sessions"])
        for out_key, in_key in OUT_COUNTERS:
            total = sum(s[out_key] for s in entries) - sum(s[in_key] for s in edges)
            stream[out_key] = max(0, total)
        stream["workers"] = workers
        merged.append(stream)
    return merged


async def list_streams(request: web.Request) -> web.Response:
    """The workers' stream lists merged, then paged as a worker pages its own (each worker
    is asked for its first MAX_LIMIT streams)."""
    page = requested_page(request)
    answers = await from_all(request, streams_answer, f"/api/v1/streams?limit={MAX_LIMIT}")
    if isinstance(answers, web.Response):
        return answers
    merged = merge_streams([(worker.index, streams) for worker, streams in answers])
    return web.json_response(
        {
            "streams": merged[page.offset : page.offset + page.limit],
            **page.fields(len(merged), request.path),
        }
    )


async def list_rooms(request: web.Request) -> web.Response:
    """The workers' rooms, each with the workers it is on (a room lives on one: the one its
    name places it on), then paged; their refusals added up."""
    page = requested_page(request)
    answers = await from_all(request, rooms_answer, f"/api/v1/rooms?limit={MAX_LIMIT}")
    if isinstance(answers, web.Response):
        return answers
    rooms = sorted(
        ({**room, "workers": [worker.index]} for worker, (found, _) in answers for room in found),
        key=lambda room: (room["name"], room["workers"]),
    )
    refused: collections.Counter[str] = collections.Counter()
    for _, (_, counts) in answers:
        refused.update(counts)
    return web.json_response(
        {
            "rooms": rooms[page.offset : page.offset + page.limit],
            "refused": dict(refused),
            **page.fields(len(rooms), request.path),
        }
    )


def add_up(answers: list[dict]) -> dict:
    """The workers' figures added: numbers, and dicts of numbers (drops) key by key."""
    total: dict = {}
    for answer in answers:
        for key, value in answer.items():
            if isinstance(value, dict):
                counts = total.setdefault(key, collections.Counter())
                counts.update({k: v for k, v in value.items() if isinstance(v, int)})
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    return total


async def server_stats(request: web.Request) -> web.Response:
    """The workers' figures added up, the front's pid, and each worker with its own."""
    answers = await from_all(request, server_stats_answer)
    if isinstance(answers, web.Response):
        return answers
    by_index = {worker.index: answer for worker, answer in answers}
    workers = request.app[POOL].workers
    total = add_up(list(by_index.values()))
    total.pop("udp_port", None)
    total.setdefault("http_refused", collections.Counter()).update(request.app[REFUSED])
    if HUB in request.app:  # the front serves the events itself
        total.setdefault("events_refused", collections.Counter()).update(request.app[HUB].refused)
    return web.json_response(
        {
            **total,
            "streams": len(set().union(*(w.load.streams for w in workers))),
            "pid": os.getpid(),
            "relays": len(request.app[BALANCER].relays),
            "malformed_worker_messages": dict(request.app[POOL].malformed),
            "http": request.app[GUARD].stats() if GUARD in request.app else {},
            "workers": [
                {
                    **by_index.get(w.index, {}),
                    "index": w.index,
                    "pid": w.pid,
                    "ready": w.ready,
                    "restarts": w.restarts,
                }
                for w in workers
            ],
        }
    )
