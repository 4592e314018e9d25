"""SRS's names for a stream, parsed once for the worker that answers and the front that routes.

SRS names a stream by app and stream, in a query (`/rtc/v1/whip/?app=A&stream=S`) or in the
`streamurl` of a JSON body (`webrtc://host/A/S`); ours is `A/S`. Anything else is a 400.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from urllib.parse import urlparse

from signaling.serving.names import NAME_SEGMENT
from signaling.serving.plumbing import Rejection

SEGMENT = re.compile(NAME_SEGMENT)


def srs_stream(app_name: str | None, stream: str | None) -> str:
    """`app/stream`, each part a WHIP name segment (no control characters, no bare dots, at
    most 64 characters)."""
    if not app_name or not stream:
        raise Rejection(400, "app and stream are required")
    for part in (app_name, stream):
        if not SEGMENT.fullmatch(part) or not part.strip("."):
            raise Rejection(400, f"bad stream name part {part[:64]!r}")
    return f"{app_name}/{stream}"


def query_stream(query: Mapping[str, str]) -> str:
    """The stream of an SRS WHIP/WHEP URL's `?app=&stream=`."""
    return srs_stream(query.get("app"), query.get("stream"))


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
