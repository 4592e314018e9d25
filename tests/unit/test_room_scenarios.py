"""Room scenarios on the fake clock (issue 22, item 10): joins and leaves in any order,
re-offers racing the room's changes, 50 participants, a capped link shared by priority,
speakers ranked from their audio levels, and the SDP bounded after 500 joins and leaves."""

from __future__ import annotations

import random

import pytest

from sfu.routing.router import FEEDBACK_INTERVAL
from signaling.sdp.negotiate import negotiate_subscribe
from signaling.sdp.parse import MAX_ROOM_MEDIA_SECTIONS, SdpError, parse_offer
from tests.harness import Harness, Peer
from tests.unit.room_peers import (
    Participant,
    assert_receives_from,
    assigned,
    join,
    leave,
)

KINDS = ("audio", "video")
SETTLE = 2 * FEEDBACK_INTERVAL  # a room syncs at the feedback tick after a stream changes


def reoffer(h: Harness, participant: Participant) -> None:
    """Answer the room's request to re-offer: append the m-lines `wanted` asks for."""
    view = participant.view(h)
    kinds = [s.kind for s in view.slots]
    for kind in KINDS:
        kinds += [kind] * (view.wanted[kind] - kinds.count(kind))
    h.server.renegotiate(participant.subscriber, tuple(kinds))


def check_consistent(h: Harness, viewer: Participant, live: set[str]) -> None:
    """What a subscriber's room must be after any order of events, `live` being the other
    participants who publish: a slot per live source while slots last, never its own, never
    one that left, never one twice; `wanted` asks for exactly the slots that are missing."""
    view = viewer.view(h)
    others = live - {viewer.name}
    carried = [(s.participant, s.kind) for s in view.slots if s.participant is not None]
    assert len(carried) == len(set(carried)), "a source on two slots"
    assert {who for who, _ in carried} <= others, (carried, others)
    for kind in KINDS:
        slots = sum(1 for s in view.slots if s.kind == kind)
        held = sum(1 for _, k in carried if k == kind)
        assert held == min(slots, len(others)), (viewer.name, kind, held, slots, others)
        assert view.wanted[kind] == max(slots, len(others))
    assert {p.name for p in view.participants if p.publishing} == others


def test_joins_and_leaves_in_any_order_leave_every_room_view_consistent() -> None:
    """Seeded random orders of publishers and subscribers coming and going, some of them
    re-offering when asked; then each re-offers and receives every live participant."""
    h = Harness(seed=7)
    order = random.Random(22)
    names = [f"n{i}" for i in range(6)]
    subscribers: dict[str, Participant] = {}
    publishers: dict[str, Peer] = {}
    for _ in range(40):
        name = order.choice(names)
        action = order.random()
        if action < 0.3 and name not in subscribers:
            subscribers[name] = Participant(h, "r", name, KINDS, publish=False)
            h.connect(subscribers[name].subscriber)
        elif action < 0.6 and name not in publishers:
            publishers[name] = h.publisher(f"r/{name}")
            h.connect(publishers[name])
        elif action < 0.75 and name in subscribers:
            leave(h, subscribers.pop(name).subscriber)
        elif action < 0.9 and name in publishers:
            leave(h, publishers.pop(name))
        elif name in subscribers:
            reoffer(h, subscribers[name])
        h.run(SETTLE)
        for viewer in subscribers.values():
            check_consistent(h, viewer, set(publishers))
        assert (len(h.router.rooms) == 1) == bool(subscribers)
    assert len(subscribers) >= 2 and len(publishers) >= 2, "the seed leaves a room to check"
    for viewer in subscribers.values():
        reoffer(h, viewer)
    h.run(1.5)
    for viewer in subscribers.values():
        check_consistent(h, viewer, set(publishers))
        slots = assigned(viewer.view(h))
        for name, publisher in publishers.items():
            if name == viewer.name:
                continue
            for kind in KINDS:
                got = viewer.on_slot(slots[(name, kind)], since=h.now - 0.5)
                assert got and {i for _, i, _ in got} == {publisher.media.index}  # type: ignore[union-attr]


def publish(h: Harness, *names: str, **options: bool) -> list[Peer]:
    """Publish-only participants (WHIP publishers of r/NAME), connected."""
    peers = [h.publisher(f"r/{name}", **options) for name in names]
    h.connect(*peers)
    return peers


@pytest.mark.parametrize(("d_leaves", "joiners"), [(True, ("e",)), (True, ()), (False, ("e", "f"))])
def test_a_reoffer_racing_the_rooms_change_ends_consistent(
    d_leaves: bool, joiners: tuple[str, ...]
) -> None:
    """The room asks `a` to re-offer for d (wanted 3); before a's offer arrives the room
    changes again. Whatever the change, the re-offer's new m-lines are slots like any other
    and `wanted` asks again only for what is still missing; a second round converges."""
    h = Harness()
    a = join(h, "a", KINDS * 2, publish=False)
    live = dict(zip("bc", publish(h, "b", "c"), strict=True))
    h.run(0.5)
    live["d"] = publish(h, "d")[0]
    h.run(SETTLE)
    assert a.view(h).wanted == {"audio": 3, "video": 3}  # the server asks a to re-offer
    if d_leaves:
        leave(h, live.pop("d"))
    for name in joiners:
        live[name] = publish(h, name)[0]
    reoffer_kinds = KINDS * 3  # made when wanted said 3, crossing the change
    h.server.renegotiate(a.subscriber, reoffer_kinds)
    check_consistent(h, a, set(live))  # at once: the re-offer's own sync
    h.run(SETTLE)
    check_consistent(h, a, set(live))
    stale = negotiate_subscribe(parse_offer(a.subscriber.offer(KINDS * 2)))
    with pytest.raises(ValueError, match="fewer"):  # an older offer arriving late: refused
        h.router.renegotiate(a.subscriber.session.id, stale, h.now)
    check_consistent(h, a, set(live))
    if a.view(h).wanted != {kind: 3 for kind in KINDS}:
        reoffer(h, a)
    h.run(1.5)
    check_consistent(h, a, set(live))
    slots = assigned(a.view(h))
    for name, publisher in live.items():
        got = a.on_slot(slots[(name, "video")], since=h.now - 0.5)
        assert got and {i for _, i, _ in got} == {publisher.media.index}  # type: ignore[union-attr]


def test_the_same_reoffer_twice_changes_nothing() -> None:
    """A client that retries its PATCH (or two tabs of a buggy page) sends one offer twice:
    the second is a no-op, not a second set of slots."""
    h = Harness()
    a = join(h, "a", KINDS, publish=False)
    publish(h, "b", "c")
    h.run(SETTLE)
    offer = KINDS * 2
    h.server.renegotiate(a.subscriber, offer)
    before = a.view(h).slots
    h.server.renegotiate(a.subscriber, offer)
    assert a.view(h).slots == before
    assert len(before) == 4


def test_fifty_participants_in_one_room() -> None:
    """50 participants, each publishing and subscribing with a slot for each of the 49
    others' audio and video (98 m-lines: the room offer's bound is 256, 126 others). All
    connect and are assigned; three of them send, and everyone gets their media on the right
    slots, with the Sender Reports of more slots than one RTCP compound holds."""
    h = Harness()
    people = []
    for i in range(50):
        person = Participant(h, "r", f"p{i:02}", KINDS * 49)
        assert person.publisher is not None
        person.publisher.sending = False  # 2450 flows of the harness's Python peers: too slow
        people.append(person)
    h.connect(*(peer for person in people for peer in person.peers), within=5.0)
    senders = people[:3]
    for person in senders:
        person.publisher.sending = True  # type: ignore[union-attr]
    h.run(1.2)  # past a report tick
    for viewer in people:
        view = viewer.view(h)
        assert view.wanted == {"audio": 49, "video": 49}
        assert len(assigned(view)) == 98 and len(view.participants) == 49
        assert_receives_from(h, viewer, [p for p in senders if p is not viewer])
        assert viewer.subscriber.stats.unprotect_errors == 0
        reported = {ssrc for _, ssrc in viewer.subscriber.stats.sender_reports}
        playing = {viewer.slot_ssrcs()[view_slot] for view_slot in started_slots(viewer)}
        assert playing and playing <= reported
    assert h.router.resources().player_tracks == 50 * 98


def started_slots(viewer: Participant) -> list[str]:
    """The mids of a viewer's slots that carried media."""
    seen = {int.from_bytes(plain[8:12], "big") for _, plain in viewer.packets}
    return [mid for mid, ssrc in viewer.slot_ssrcs().items() if ssrc in seen]


def test_sender_reports_of_forty_slots_come_in_compounds_srtp_can_protect() -> None:
    """A subscriber playing 40 slots gets a Sender Report for each, split in compounds of
    at most 32 (a single compound of 40 was longer than a datagram SRTP protects)."""
    h = Harness()
    names = [f"p{i:02}" for i in range(20)]
    a = join(h, "a", KINDS * 20, publish=False)
    publish(h, *names)
    h.run(1.3)
    view = a.view(h)
    assert len(assigned(view)) == 40
    ssrcs = {a.slot_ssrcs()[mid] for mid in started_slots(a)}
    assert len(ssrcs) == 40
    assert ssrcs <= {ssrc for _, ssrc in a.subscriber.stats.sender_reports}


def bare_offer(m_lines: int) -> str:
    """The fewest bytes an offer of `m_lines` audio m-lines can be: the parser's bound on
    m-lines, not its 64 KiB, is what refuses it."""
    head = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    return head + "".join(
        f"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:{mid}\r\n" for mid in range(m_lines)
    )


def test_a_room_offer_may_have_256_m_lines_and_other_offers_64() -> None:
    assert len(parse_offer(bare_offer(256), MAX_ROOM_MEDIA_SECTIONS).media) == 256
    with pytest.raises(SdpError, match="more than 256 m-lines"):
        parse_offer(bare_offer(257), MAX_ROOM_MEDIA_SECTIONS)
    assert len(parse_offer(bare_offer(64)).media) == 64
    with pytest.raises(SdpError, match="more than 64 m-lines"):
        parse_offer(bare_offer(65))  # WHIP and WHEP (which negotiate 16 at most)
