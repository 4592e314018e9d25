"""Capabilities in logs only as short hashes.

A session id or an event-stream key is a bearer secret: whoever holds its URL may end the
session or read its events. A log line therefore names one by the first 8 hex digits of its
SHA-256, enough to match the lines of one session and of no use to replay.
"""

from __future__ import annotations

import hashlib
import re

# A WHIP/WHEP or room session URL (with the `w<i>-` routing prefix of a --workers front kept in
# clear, so the front's lines and its worker's match) or an event-stream URL; the secret is one
# segment.
CAPABILITY_IN_PATH = re.compile(
    r"^(/(?:rooms/v1/)?sessions/(?:w\d{1,3}-)?|/events/streams/)([^/?#]+)"
)


def short_hash(secret: str) -> str:
    """The name a log line gives a session id or event key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def redacted_path(path: str) -> str:
    """`path` with the session id or event key it carries as `#` and its short hash."""
    return CAPABILITY_IN_PATH.sub(lambda m: f"{m.group(1)}#{short_hash(m.group(2))}", path)
