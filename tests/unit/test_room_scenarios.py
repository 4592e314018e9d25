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


def paused_videos(h: Harness, viewer: Participant) -> list[str]:
    return [s.participant for s in viewer.view(h).slots if s.paused]  # type: ignore[misc]


def watch_pauses(h: Harness, viewer: Participant, seconds: float) -> list[list[str]]:
    """Whose video the allocation paused, looked at every half second (it runs once a
    second, on an estimate that swings around the cap)."""
    seen = []
    for _ in range(round(seconds / 0.5)):
        h.run(0.5)
        seen.append(paused_videos(h, viewer))
    return seen


def lowest_first(paused: list[str], order: list[str]) -> bool:
    """The paused videos are the lowest of `order` (highest priority first)."""
    return set(paused) == set(order[len(order) - len(paused) :])


def test_a_capped_link_pauses_the_lowest_priority_first_never_audio_nor_the_speaker() -> None:
    """b speaks, c spoke before it, d and e did not: as a's downlink is capped ever lower,
    videos pause lowest priority first (e, d, c, then b's), whatever the estimate's swings;
    the speaker's video stays while a cap leaves room for one; audio never pauses; once the
    cap lifts every video comes back."""
    h = Harness()
    a = join(h, "a", KINDS * 4, publish=False)
    b, c, _, _ = publish(h, "b", "c", "d", "e", audio_level=True)
    c.level = -20
    h.run(2.0)
    c.level, b.level = -127, -20
    h.run(2.5)
    assert a.view(h).speakers == ("b",)
    order = ["b", "c", "d", "e"]  # by priority: speaker, recent speaker, then by slot
    shown: dict[int, set[int]] = {}
    for cap in (2_200_000, 1_600_000, 950_000, 300_000):  # 4 videos need 2.5 Mbit/s
        a.subscriber.down.rate = cap
        h.run(1.0)
        seen = watch_pauses(h, a, 4.0)
        assert all(lowest_first(paused, order) for paused in seen), (cap, seen)
        shown[cap] = {len(order) - len(paused) for paused in seen}
        slots = assigned(a.view(h))
        for name in order:  # audio is never paused: each flowed all along
            assert len(a.on_slot(slots[(name, "audio")], since=h.now - 4.0)) > 150, (cap, name)
    print(f"videos shown under each cap: {shown}")
    assert max(shown[2_200_000]) >= 3 and min(shown[1_600_000]) >= 1  # b's all along
    assert shown[300_000] == {0}
    a.subscriber.down.rate = 0
    for _ in range(120):
        h.run(0.1)
        if not paused_videos(h, a):
            break
    assert paused_videos(h, a) == []
    h.run(0.5)
    slots = assigned(a.view(h))
    for name in order:
        assert a.on_slot(slots[(name, "video")], since=h.now - 0.3), name


def test_paused_videos_do_not_let_the_estimate_outgrow_a_capped_link() -> None:
    """Under a 600 kbit/s cap no video fits, so all four pause and only audio and probe
    padding flow: the send-side estimate must then stay near what was delivered, not grow
    15% a second past the cap (seen: 805 kbit/s) until the allocation resumes a video into
    a link that cannot carry it. Only a probe that held may lift it further."""
    h = Harness()
    a = join(h, "a", KINDS * 4, publish=False)
    b, _, _, _ = publish(h, "b", "c", "d", "e", audio_level=True)
    b.level = -20
    h.run(3.0)
    cap = 600_000
    a.subscriber.down.rate = cap
    h.run(5.0)
    bwe = a.subscriber.session.handler.bwe
    estimates = []
    for _ in range(120):  # 30 s, long enough for unbounded growth to pass the cap twice
        h.run(0.25)
        assert len(paused_videos(h, a)) == 4
        estimates.append(bwe.estimate)
    print(f"estimate under a {cap} bit/s cap, all video paused: max {max(estimates):.0f}")
    assert max(estimates) < cap


def test_speakers_are_ranked_from_their_audio_levels_through_the_server() -> None:
    """Levels in the publishers' packets (RFC 6464), read by the server: the louder leads,
    a silent one is not a speaker, and one who stops goes to the recent speakers, whose
    video the allocation keeps before the never-speakers'."""
    h = Harness()
    a = join(h, "a", KINDS * 4, publish=False)
    b, c, _, e = publish(h, "b", "c", "d", "e", audio_level=True)
    b.level, c.level, e.level = -30, -40, -20
    h.run(2.0)
    assert a.view(h).speakers == ("e", "b", "c")  # d is silent
    e.level = -127
    h.run(2.5)  # a speaker is held through a pause of up to 1.2 s, then stops
    assert a.view(h).speakers == ("b", "c")
    c.level = -15
    h.run(1.5)
    assert a.view(h).speakers == ("c", "b")
    a.subscriber.down.rate = 2_200_000
    h.run(1.0)
    seen = watch_pauses(h, a, 6.0)
    assert all(lowest_first(paused, ["c", "b", "e", "d"]) for paused in seen), seen
    assert ["d"] in seen, seen  # e, a recent speaker, kept while d paused


def test_the_sdp_stays_bounded_after_500_joins_and_leaves() -> None:
    """500 participants come and go, 5 at a time, while `a` stays and re-offers whenever
    the room asks: freed slots are reused, so a's offer and answer stop growing once they
    hold the most that were ever there at once, and the server's state with them."""
    h = Harness()
    a = join(h, "a", KINDS, publish=False)
    sizes = []
    for round_ in range(100):
        names = [f"x{round_ * 5 + i}" for i in range(5)]
        peers = publish(h, *names)
        for peer in peers:
            peer.sending = False  # the slots, not the media, are what this looks at
        h.run(SETTLE)
        view = a.view(h)
        if any(view.wanted[k] > sum(1 for s in view.slots if s.kind == k) for k in KINDS):
            reoffer(h, a)
        check_consistent(h, a, set(names))
        sizes.append((len(a.view(h).slots), len(a.subscriber.answer_text)))
        leave(h, *peers)
        h.run(SETTLE)
    print(f"m-lines and answer bytes after round 1: {sizes[0]}, after 100: {sizes[-1]}")
    assert sizes[-1][0] == 10 and all(m_lines == 10 for m_lines, _ in sizes)
    assert max(length for _, length in sizes) <= sizes[0][1] + 16  # (o= version digits)
    assert all(s.participant is None for s in a.view(h).slots)
    assert h.router.resources().player_tracks == 10
    assert h.router.stream_count() == 0
