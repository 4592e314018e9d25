"""Logs an operator can use: text or one JSON object per line, and one access line per request.

JSON lines carry `session_id`, `stream` and `role` when a record was logged with them as
`extra`. The access line has the path without its query string, where tokens may travel, and
with session ids and event keys as short hashes; quiet refusals (a flood's) have none.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from signaling.serving.plumbing import QUIET, logged_path

CONTEXT_FIELDS = ("session_id", "stream", "role", "reason", "duration")
access = logging.getLogger("litesfu.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and any known context."""

    def __init__(self, worker: int | None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker is not None:
            entry["worker"] = self.worker
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str, fmt: str, worker: int | None) -> None:
    """Configure the root logger for `--log-format text|json`."""
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter(worker))
    else:
        tag = "" if worker is None else f"w{worker} "
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s")
        )
    logging.basicConfig(level=level.upper(), handlers=[handler])


@web.middleware
async def access_log(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """One INFO line per request, when its answer is done: method, path, status, duration."""
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        if not request.get(QUIET):
            access.info(
                "%s %s %d %.1f ms",
                request.method,
                logged_path(request),
                status,
                1000 * (time.monotonic() - started),
            )
