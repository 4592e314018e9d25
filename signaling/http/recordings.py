"""/api/v1/recordings: start (POST), stop (DELETE) and list (GET) recordings, behind the
stats token when auth is on; and the on_record_done hook for every finished file."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time

from aiohttp import web

from sfu.egress.recordings import RecordingsOff, TooManyRecordings
from signaling.http.state import HOOKS, MEDIA_SERVER
from signaling.serving.access import authorize_stats
from signaling.serving.names import STREAM_PATTERN
from signaling.serving.plumbing import Rejection, read_body

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
MAX_BODY = 1024  # bytes of {"stream": NAME}
DONE_POLL = 0.5  # seconds between looks for finished files to tell the hook of
RECORDINGS = "/api/v1/recordings"
DONE_TASK = web.AppKey("record_done_task", asyncio.Task)


async def _stream_of(request: web.Request) -> str:
    """The stream a POST or DELETE names, {"stream": NAME}; a Rejection for anything else."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise Rejection(413, f"body larger than {MAX_BODY} bytes")
    body = await read_body(request, JSON_TYPE, "body")
    if len(body) > MAX_BODY:
        raise Rejection(413, f"body larger than {MAX_BODY} bytes")
    try:
        fields = json.loads(body)
    except ValueError as exc:
        raise Rejection(400, 'body must be JSON: {"stream": NAME}') from exc
    stream = fields.get("stream") if isinstance(fields, dict) else None
    if not isinstance(stream, str) or not re.fullmatch(STREAM_PATTERN, stream):
        raise Rejection(400, "stream must be a stream name: 1-2 parts of A-Z a-z 0-9 _ . ~ -")
    return stream


async def start_recording(request: web.Request) -> web.Response:
    """201 with the recording; 409 when recording is off, 503 at the limit."""
    authorize_stats(request)
    stream = await _stream_of(request)
    recordings = request.app[MEDIA_SERVER].recordings
    try:
        recording = recordings.start(stream, time.monotonic())
    except RecordingsOff as exc:
        raise Rejection(409, str(exc)) from exc
    except TooManyRecordings as exc:
        raise Rejection(503, str(exc)) from exc
    return web.json_response(recording.to_json(), status=201)


async def stop_recording(request: web.Request) -> web.Response:
    """204 once stopped; 404 when the stream is not being recorded."""
    authorize_stats(request)
    stream = await _stream_of(request)
    if not request.app[MEDIA_SERVER].recordings.stop(stream):
        raise Rejection(404, f"stream {stream} is not being recorded")
    return web.Response(status=204)


async def list_recordings(request: web.Request) -> web.Response:
    authorize_stats(request)
    recordings = request.app[MEDIA_SERVER].recordings
    return web.json_response(
        {
            "enabled": recordings.directory is not None,
            "recordings": recordings.list(),
            "failures": dict(recordings.failures),  # by reason: disk_full, permission, ...
        }
    )


async def tell_hook_of_done_files(app: web.Application) -> None:
    """POST on_record_done (path, stream, duration, bytes) for each finished file."""
    recordings, hooks = app[MEDIA_SERVER].recordings, app[HOOKS]
    while True:
        await asyncio.sleep(DONE_POLL)
        for done in recordings.poll_done():
            fields = {"path": done.path, "duration": round(done.duration, 3), "bytes": done.bytes}
            await hooks.notify("on_record_done", done.stream, fields)


async def _start_done_task(app: web.Application) -> None:
    if app[HOOKS].url is not None:
        app[DONE_TASK] = asyncio.create_task(tell_hook_of_done_files(app))


async def _stop_done_task(app: web.Application) -> None:
    task = app.get(DONE_TASK)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def add_recording_routes(app: web.Application) -> None:
    app.router.add_post(RECORDINGS, start_recording)
    app.router.add_delete(RECORDINGS, stop_recording)
    app.router.add_get(RECORDINGS, list_recordings)
    app.on_startup.append(_start_done_task)
    app.on_cleanup.insert(0, _stop_done_task)
