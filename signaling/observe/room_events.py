"""A room participant's events: what its subscribe session sees of the room, as it changes.

The router is never asked to call back: the hub polls `Router.room_view` of each open room
stream a few times a second, and this module turns the change between two views into
server-sent events. A view names participants by name only; no event carries a session id or
an address, so one participant's stream tells it nothing it could use against another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from signaling.observe.events import Listener, frame, reconnect_frame

if TYPE_CHECKING:
    from sfu.routing.room_stats import RoomView

KINDS = ("audio", "video")


@dataclass(frozen=True)
class RoomState:
    """The parts of a RoomView a page acts on, in the shape its events carry."""

    # (name, publishing, tracks carried, kinds muted) of each other participant
    participants: tuple[tuple[str, bool, tuple[str, ...], tuple[str, ...]], ...]
    slots: tuple[tuple[str, str, str, str], ...]  # (mid, kind, participant, track) assigned
    wanted: tuple[tuple[str, int], ...]  # (kind, count) while more slots are wanted than offered
    speakers: tuple[str, ...]
    paused: frozenset[tuple[str, str]]  # (mid, participant) of paused assigned slots
    layers: tuple[tuple[str, str | None], ...]  # (mid, rid) of assigned video slots


def room_state(view: RoomView) -> RoomState:
    offered = {kind: sum(1 for s in view.slots if s.kind == kind) for kind in KINDS}
    short = any(view.wanted.get(kind, 0) > offered[kind] for kind in KINDS)
    assigned = [s for s in view.slots if s.participant is not None]
    return RoomState(
        participants=tuple(
            (p.name, p.publishing, tuple(p.kinds), p.muted) for p in view.participants
        ),
        slots=tuple(
            (s.mid, s.kind, s.participant, "screen" if s.screen else s.kind)  # type: ignore[misc]
            for s in assigned
        ),
        wanted=tuple((k, max(view.wanted.get(k, 0), offered[k])) for k in KINDS) if short else (),
        speakers=tuple(view.speakers),
        paused=frozenset((s.mid, s.participant) for s in assigned if s.paused),  # type: ignore[misc]
        layers=tuple((s.mid, s.rid) for s in assigned if s.kind == "video"),
    )


def room_frames(before: RoomState | None, after: RoomState | None) -> Iterator[bytes]:
    """The events that take a page from `before` (None: it knows nothing yet) to `after`
    (None: the session has ended)."""
    if after is None:
        yield frame("ended", {})
        return
    was = before
    if was is None or after.participants != was.participants:
        yield frame(
            "participants",
            [
                {"name": n, "publishing": p, "tracks": list(k), "muted": list(m)}
                for n, p, k, m in after.participants
            ],
        )
    if was is None or after.slots != was.slots:
        yield frame(
            "slots",
            {mid: {"participant": who, "kind": k, "track": t} for mid, k, who, t in after.slots},
        )
    if after.wanted and (was is None or after.wanted != was.wanted):
        yield frame("renegotiate", dict(after.wanted))
    if was is None or after.speakers != was.speakers:
        yield frame("speakers", list(after.speakers))
    paused_before = was.paused if was is not None else frozenset()
    for mid, who in sorted(after.paused - paused_before):
        yield frame("paused", {"participant": who, "mid": mid})
    still_assigned = {(mid, who) for mid, _, who, _ in after.slots}
    for mid, who in sorted((paused_before - after.paused) & still_assigned):
        yield frame("resumed", {"participant": who, "mid": mid})
    if after.layers and (was is None or after.layers != was.layers):
        yield frame("layers", {mid: rid for mid, rid in after.layers})


def room_listener(view: Callable[[], RoomView | None]) -> tuple[Listener, list[bytes]]:
    """A listener that polls one subscribe session's view, and the frames of its state now.

    It follows no stream by name: each hub tick calls its `poll`, which sends the change since
    the last one, and after `ended` nothing more.
    """
    first = view()
    last: list[RoomState | None] = [room_state(first) if first is not None else None]
    listener = Listener(lambda _name: False, lambda _name, _before, _after: [])
    listener.farewell = lambda base: [reconnect_frame(base)]  # the page rejoins the room

    def poll() -> list[bytes]:
        current = view()
        state = room_state(current) if current is not None else None
        frames = [] if state == last[0] else list(room_frames(last[0], state))
        last[0] = state
        if state is None:
            listener.ending = True
        return frames

    listener.poll = poll
    opening = list(room_frames(None, last[0]))
    if last[0] is None:
        listener.ending = True
    return listener, opening
