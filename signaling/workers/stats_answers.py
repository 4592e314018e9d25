"""The workers' public stats answers, as the front reads them to merge into one.

These are the clients' interface (/api/v1/server, /api/v1/streams), not messages of the
front-worker link: they carry no version or type, and the front checks only what its merge
relies on (stream names, the counters it adds up, the relay flags it leaves out) and passes
the rest on as it is. Bad answers are still a MessageError, read with messages.py's Fields, and
like messages.py this module loads no media code.
"""

from __future__ import annotations

from signaling.workers.messages import MAX_ENTRIES, MAX_NAME, Fields, MessageError, decode

# Stream counters that add up across workers; an edge's inflow is the origin's relay outflow.
OUT_COUNTERS = (
    ("packets_out", "packets_in"),
    ("bytes_out", "bytes_in"),
    ("bitrate_out", "bitrate_in"),
)


def checked_number(value: object, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise MessageError(f"{where} must be a number, 0 or more")
    return value


def server_stats_answer(raw: bytes) -> dict:
    """A worker's /api/v1/server answer: any JSON object (the front adds up its numbers)."""
    return Fields(decode(raw, "server stats"), "server stats").data


def streams_answer(raw: bytes) -> list[dict]:
    """A worker's /api/v1/streams list, each entry checked for the fields the front merges by
    (name, counters, publisher_relay, player_sessions and their relay flags) and otherwise
    passed on as it is."""
    streams = Fields(decode(raw, "streams"), "streams").items("streams", MAX_ENTRIES)
    for i, entry in enumerate(streams):
        stream = Fields(entry, f"streams[{i}]")
        stream.text("name", MAX_NAME)
        for key in (key for pair in OUT_COUNTERS for key in pair):
            checked_number(stream.value(key), f"streams[{i}].{key}")
        if not isinstance(stream.data.get("publisher_relay", False), bool):
            raise MessageError(f"streams[{i}].publisher_relay must be true or false")
        players = stream.data.get("player_sessions", [])
        if not isinstance(players, list) or len(players) > MAX_ENTRIES:
            raise MessageError(
                f"streams[{i}].player_sessions must be a list of at most {MAX_ENTRIES}"
            )
        for j, player in enumerate(players):
            where = f"streams[{i}].player_sessions[{j}]"
            if not isinstance(Fields(player, where).data.get("relay", False), bool):
                raise MessageError(f"{where}.relay must be true or false")
    return streams


def rooms_answer(raw: bytes) -> tuple[list[dict], dict[str, int]]:
    """A worker's /api/v1/rooms: its rooms, each checked for a name (the front sorts by it)
    and passed on as it is; and its refusals, "ACTION STATUS" -> a count."""
    answer = Fields(decode(raw, "rooms"), "rooms")
    rooms = answer.items("rooms", MAX_ENTRIES)
    for i, entry in enumerate(rooms):
        Fields(entry, f"rooms[{i}]").text("name", MAX_NAME)
    refused = {}
    for key, count in answer.entries("refused").items():
        if not isinstance(key, str) or len(key) > MAX_NAME:
            raise MessageError("rooms.refused must be keyed by action and status")
        refused[key] = int(checked_number(count, f"rooms.refused[{key!r}]"))
    return rooms, refused
