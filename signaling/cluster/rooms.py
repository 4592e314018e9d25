"""Which participant streams of other nodes a cluster node relays in for its rooms.

A room is not placed on one node. Each node holds the subscribe sessions that joined through it,
and every participant stream "ROOM/NAME" that another node publishes is relayed in once per
node, however many of its subscribers are in ROOM; a participant's own publish is claimed like
any stream. Who publishes what is read from the node records every node writes each heartbeat
(their `publishing` list), so no key is kept per room.
"""

from __future__ import annotations

from collections.abc import Collection

from sfu.routing.room import room_member


def room_streams(
    nodes: dict[str, dict], me: str, rooms: Collection[str], per_room: int
) -> dict[str, str]:
    """stream -> the node that publishes it, for the participant streams of `rooms` that other
    nodes publish; at most `per_room` a room (by name), whatever the records claim."""
    found: dict[str, str] = {}
    counts: dict[str, int] = {}
    for node, record in sorted(nodes.items()):
        publishing = record.get("publishing") if node != me else None
        if not isinstance(publishing, list):
            continue
        for stream in sorted(s for s in publishing if isinstance(s, str)):
            member = room_member(stream)
            if member is None or member[0] not in rooms or stream in found:
                continue
            if counts.get(member[0], 0) < per_room:
                counts[member[0]] = counts.get(member[0], 0) + 1
                found[stream] = node
    return found
