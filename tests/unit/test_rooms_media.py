"""What a participant says of its own publication, muted kinds and a screen share on its
second video m-line, as the room carries it (the route: tests/unit/test_rooms_http.py)."""

from __future__ import annotations

import pytest

from sfu.routing.room_stats import OwnMedia
from tests.harness import Harness
from tests.unit.test_rooms import TWO_EACH, Participant, assert_receives_from, assigned

SHARER_KINDS = ("audio", "video", "video")  # camera, and a spare m-line for the screen


def say(h: Harness, who: Participant, said: OwnMedia, now: float) -> None:
    """What `who` says of its publication, as the /media route passes it on."""
    subscriber, room = h.router.subscriber_and_room(who.subscriber.session.id)
    room.say(subscriber, said, now)


def sharer_and_viewer(h: Harness) -> tuple[Participant, Participant]:
    """b publishes audio, camera and a (silent) second video m-line; a watches with room
    for two videos."""
    b = Participant(h, "r", "b", TWO_EACH, publish=False)
    b.publisher = h.publisher("r/b", kinds=SHARER_KINDS)
    a = Participant(h, "r", "a", ("audio", "video", "video"))
    h.connect(*a.peers, *b.peers)
    h.run(0.5)
    return a, b


def test_the_second_video_is_carried_only_while_its_participant_says_it_shares():
    h = Harness()
    a, b = sharer_and_viewer(h)
    assert set(assigned(a.view(h))) == {("b", "audio"), ("b", "video")}
    assert not any(s.screen for s in a.view(h).slots)
    assert a.view(h).participants[0].kinds == ("audio", "video")

    say(h, b, OwnMedia(screen=True), h.now)
    view = a.view(h)
    screens = [s for s in view.slots if s.screen]
    assert [(s.participant, s.kind) for s in screens] == [("b", "video")]
    assert view.participants[0].kinds == ("audio", "video", "screen")
    camera = next(
        s for s in view.slots if s.participant == "b" and s.kind == "video" and not s.screen
    )
    assert camera.mid != screens[0].mid
    h.run(1.0)
    assert len(a.on_slot(camera.mid)) > 10  # the camera still flows beside it
    assert a.on_slot(screens[0].mid) == []  # (the harness's spare m-line sends nothing)

    say(h, b, OwnMedia(), h.now)
    assert not any(s.screen for s in a.view(h).slots)


def test_a_muted_camera_frees_its_slot_and_the_others_see_the_muted_kinds():
    h = Harness()
    a, b = sharer_and_viewer(h)
    say(h, b, OwnMedia(muted=frozenset({"video", "audio"})), h.now)
    view = a.view(h)
    assert set(assigned(view)) == {("b", "audio")}  # muted audio is silence, still carried
    assert view.participants[0].muted == ("audio", "video")
    assert view.participants[0].kinds == ("audio",)
    say(h, b, OwnMedia(), h.now)
    h.run(1.0)
    assert set(assigned(a.view(h))) == {("b", "audio"), ("b", "video")}
    assert a.view(h).participants[0].muted == ()
    assert_receives_from(h, a, [b])
    with pytest.raises(KeyError):
        h.router.subscriber_and_room(b.publisher.session.id)  # type: ignore[union-attr]


def test_a_screen_share_asks_for_a_slot_and_gets_one_by_renegotiation():
    h = Harness()
    b = Participant(h, "r", "b", TWO_EACH, publish=False)
    b.publisher = h.publisher("r/b", kinds=SHARER_KINDS)
    a = Participant(h, "r", "a", ("audio", "video"))
    h.connect(*a.peers, *b.peers)
    h.run(0.5)
    say(h, b, OwnMedia(screen=True), h.now)
    view = a.view(h)
    assert [s.screen for s in view.slots if s.kind == "video"] == [False]  # the camera stays
    assert view.wanted == {"audio": 1, "video": 2}
    h.server.renegotiate(a.subscriber, ("audio", "video", "video"))
    h.run(0.5)
    assert [s.screen for s in a.view(h).slots if s.kind == "video"] == [False, True]
