"""A room data message, as a participant sends it and as the others get it.

Text: the sender sends a JSON object {"data": ANY, "to": [NAME, ...]} ("to" optional: without
it everyone else in the room gets the message); each receiver gets {"from": NAME, "data": ANY}
plus the "to" list when there was one. Binary goes to everyone else, prefixed with one byte
of the sender's name length and the name (UTF-8). The server writes "from" itself, so no one
can speak as another.
"""

from __future__ import annotations

import json
from typing import NamedTuple


class BadRoomMessage(ValueError):
    """A text message that is not the envelope above; the reason in one line."""


class Addressed(NamedTuple):
    data: object  # the JSON value to relay
    to: tuple[str, ...] | None  # None: everyone else


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")  # Python's json takes NaN; JSON.parse does not


def parse_text(body: bytes, max_to: int) -> Addressed:
    """The envelope of a text message, with at most `max_to` names; BadRoomMessage if not."""
    try:
        message = json.loads(body, parse_constant=_not_json)
    except (ValueError, RecursionError) as error:  # bad UTF-8 or JSON, or nested too deep
        raise BadRoomMessage(f"not JSON: {type(error).__name__}") from None
    if not isinstance(message, dict) or "data" not in message or message.keys() - {"data", "to"}:
        raise BadRoomMessage('not an object of "data" and an optional "to"')
    to = message.get("to")
    if to is None:
        return Addressed(message["data"], None)
    if not isinstance(to, list) or len(to) > max_to or not all(isinstance(n, str) for n in to):
        raise BadRoomMessage(f'"to" is not a list of at most {max_to} names')
    return Addressed(message["data"], tuple(to))


def stamp_text(sender: str, message: Addressed) -> bytes:
    """What each receiver of a text message gets, its sender's name written by the server."""
    out: dict[str, object] = {"from": sender, "data": message.data}
    if message.to is not None:
        out["to"] = list(message.to)
    try:
        return json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode()
    except RecursionError:  # parse_text accepted it, so only a smaller stack gets here
        raise BadRoomMessage("nested too deep") from None


def stamp_binary(sender: str, body: bytes) -> bytes:
    """What each receiver of a binary message gets: the name's length, the name, the bytes."""
    name = sender.encode()
    if len(name) > 255:
        raise BadRoomMessage("sender name longer than 255 bytes")
    return bytes((len(name),)) + name + body
