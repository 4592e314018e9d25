"""Room data on the in-memory harness: a participant's message reaches the others (or the names
it lists), stamped with its name by the server; bad messages, rates, limits, and re-offers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.config import MediaConfig
from sfu.media import DataParams
from sfu.protocol.datachannel import ChannelClosed, ChannelOpened, ChannelOptions
from sfu.routing.room_data import kept_data
from sfu.wire.room_message import BadRoomMessage, parse_text, stamp_text
from tests.harness import Harness, Peer
from tests.unit.room_peers import Participant, assert_receives_from, join

CHAT = ChannelOptions("chat")
CURSOR = ChannelOptions("cursor", ordered=False, max_retransmits=0)
KINDS = ("audio", "video")


def opened(peer: Peer) -> list[ChannelOpened]:
    return [e for e in peer.data_events if isinstance(e, ChannelOpened)]


def room(h: Harness, *names: str, data: bool = True) -> list[Peer]:
    """Subscribers of room "r" (no publishers: data needs none), connected, data up."""
    peers = [Participant(h, "r", n, KINDS, publish=False, data=data).subscriber for n in names]
    h.connect(*peers)
    h.run(0.5)
    assert all(p.data_up for p in peers) or not data
    return peers


def text(**envelope: object) -> bytes:
    return json.dumps(envelope).encode()


def received(peer: Peer) -> list[object]:
    return [json.loads(m) for m in peer.messages()]


def test_three_participants_chat_each_message_stamped_with_its_senders_name() -> None:
    h = Harness()
    alice, bob, carol = room(h, "alice", "bob", "carol")
    stream = alice.open_channel(CHAT)
    h.run(0.3)
    assert [[e.options for e in opened(p)] for p in (bob, carol)] == [[CHAT], [CHAT]]
    for peer in (bob, carol):
        peer.down.loss, peer.down.jitter = 0.1, 0.03
    for i in range(100):
        assert alice.send_message(stream, text(data=f"hi {i}"), text=True)
        h.run(0.005)
    h.run(8)
    sent = [{"from": "alice", "data": f"hi {i}"} for i in range(100)]
    assert received(bob) == sent and received(carol) == sent and alice.messages() == []
    # Bob answers on the channel the server opened toward him; his name, not his session's.
    bob.send_message(opened(bob)[0].stream, text(data={"emoji": "👍"}), text=True)
    h.run(1)
    assert received(alice) == [{"from": "bob", "data": {"emoji": "👍"}}]
    assert received(carol)[-1] == {"from": "bob", "data": {"emoji": "👍"}}
    assert len(bob.messages()) == 100  # nothing of its own comes back


def test_media_flows_on_the_slots_beside_the_chat() -> None:
    h = Harness()
    people = [join(h, name, data=True) for name in ("alice", "bob", "carol")]
    h.run(2)
    stream = people[0].subscriber.open_channel(CHAT)
    h.run(0.3)
    people[0].subscriber.send_message(stream, text(data="on camera"), text=True)
    h.run(1)
    for viewer in people:
        assert_receives_from(h, viewer, [p for p in people if p is not viewer])
    assert [received(p.subscriber) for p in people[1:]] == [
        [{"from": "alice", "data": "on camera"}]
    ] * 2


def test_a_message_to_listed_names_reaches_only_them() -> None:
    h = Harness()
    alice, bob, carol, dave = room(h, "alice", "bob", "carol", "dave")
    stream = alice.open_channel(CHAT)
    h.run(0.3)
    alice.send_message(stream, text(data="psst", to=["bob", "dave", "nobody", "alice"]), text=True)
    h.run(0.5)
    whisper = {"from": "alice", "data": "psst", "to": ["bob", "dave", "nobody", "alice"]}
    assert received(bob) == [whisper] and received(dave) == [whisper]
    assert carol.messages() == [] and alice.messages() == []


def test_binary_goes_to_everyone_else_prefixed_with_the_name() -> None:
    h = Harness()
    alice, bob = room(h, "alice", "bob")
    alice.open_channel(CHAT)
    h.run(0.3)
    bob.send_message(opened(bob)[0].stream, b"\x00\x01\x02")
    h.run(0.5)
    assert alice.messages() == [b"\x03bob\x00\x01\x02"]


@pytest.mark.parametrize(
    "body",
    [
        b"hello",  # not JSON
        b"\xff\xfe",  # not UTF-8
        b'["data"]',  # not an object
        b'{"to": ["bob"]}',  # no data
        b'{"data": 1, "from": "bob"}',  # speaking as another
        b'{"data": NaN}',  # Python's json would take it; JSON.parse would not
        b'{"data": 1, "to": "bob"}',  # to: not a list
        b'{"data": 1, "to": [1]}',  # to: not names
        b'{"data": 1, "to": ["a", "b", "c", "d"]}',  # more names than the room can hold
        b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # nested past the stack
    ],
)
def test_bad_text_messages_are_dropped_and_counted(body: bytes) -> None:
    h = Harness(config=MediaConfig(max_room_participants=3))
    alice, bob = room(h, "alice", "bob")
    stream = alice.open_channel(CHAT)
    h.run(0.3)
    alice.send_message(stream, body, text=True)
    alice.send_message(stream, text(data="fine"), text=True)
    h.run(0.5)
    assert h.router.sessions.drops["data_room_bad_message"] == 1
    assert received(bob) == [{"from": "alice", "data": "fine"}]


def test_the_senders_rate_size_and_the_rooms_channels_are_bounded() -> None:
    config = MediaConfig(data_message_rate=20, data_channels=2, data_max_message_size=1000)
    h = Harness(config=config)
    alice, bob = room(h, "alice", "bob")
    stream = alice.open_channel(CHAT)
    h.run(0.3)
    alice.send_message(stream, b"x" * 995)  # fits SCTP, but not with "\x05alice" before it
    h.run(0.3)
    drops = h.router.sessions.drops
    assert drops["data_room_too_large"] == 1 and bob.messages() == []
    for i in range(100):
        alice.send_message(stream, text(data=i), text=True)
    h.run(1)
    assert 15 <= len(bob.messages()) <= 25 and drops["data_sender_rate"] >= 75
    bob.open_channel(CURSOR)
    h.run(0.3)
    third = bob.open_channel(ChannelOptions("third"))  # bob's own limit is 2 too: refused
    h.run(0.3)
    assert [e.options for e in opened(alice)] == [CURSOR]
    bob.send_message(third, b"lost")
    h.run(0.3)
    assert drops["data_unknown_channel"] == 1 and alice.messages() == []


def test_room_channels_past_the_limit_are_relayed_to_no_one() -> None:
    """Every participant gets a copy of each room channel, so only one that closed a copy
    (an SCTP stream reset, as its session reports it) can bring the room one too many."""
    h = Harness(config=MediaConfig(data_channels=2))
    alice, bob = room(h, "alice", "bob")
    alice.open_channel(CHAT)
    alice.open_channel(CURSOR)
    h.run(0.5)
    assert [e.options for e in opened(bob)] == [CHAT, CURSOR]
    handler = bob.session.data.handler  # type: ignore[union-attr]
    handler.on_data(ChannelClosed(opened(bob)[0].stream), h.now)
    handler.on_data(ChannelOpened(8, ChannelOptions("third")), h.now)
    assert h.router.sessions.drops["data_room_channel_limit"] == 1
    assert h.router.rooms.by_name["r"].data.channels == {CHAT, CURSOR}
    assert [e.options for e in opened(alice)] == []


def test_a_late_joiner_gets_the_channels_and_one_without_data_gets_nothing() -> None:
    h = Harness()
    alice, plain = room(h, "alice")[0], room(h, "plain", data=False)[0]
    stream = alice.open_channel(CHAT)
    h.run(0.3)
    late = room(h, "late")[0]
    assert [e.options for e in opened(late)] == [CHAT]
    alice.send_message(stream, text(data="welcome"), text=True)
    h.run(0.5)
    assert received(late) == [{"from": "alice", "data": "welcome"}]
    assert plain.channels is None and plain.data_events == []
    assert "m=application 0 " in plain.answer_text or "m=application" not in plain.answer_text


def test_a_participant_that_leaves_gets_nothing_more() -> None:
    h = Harness()
    alice, bob, carol = room(h, "alice", "bob", "carol")
    stream = alice.open_channel(CHAT)
    h.run(0.3)
    h.router.close(bob.session.id, "left")
    bob.silent = True
    h.run(0.3)
    assert set(h.router.rooms.by_name["r"].data.members) == {"alice", "carol"}
    alice.send_message(stream, text(data="bye"), text=True)
    h.run(0.5)
    assert received(carol) == [{"from": "alice", "data": "bye"}]


def test_a_slow_receiver_loses_unreliable_messages() -> None:
    h = Harness(config=MediaConfig(data_receiver_buffer=20_000))
    alice, slow, fine = room(h, "alice", "slow", "fine")
    stream = alice.open_channel(CURSOR)
    h.run(0.3)
    slow.silent = True
    for _ in range(40):
        alice.send_message(stream, b"z" * 1000)
        h.run(0.01)
    h.run(0.5)
    assert h.router.sessions.drops["data_slow_receiver"] > 0 and len(fine.messages()) == 40
    assert slow.session.data.buffered <= 20_000  # type: ignore[union-attr]


def test_a_re_offer_keeps_the_data_m_line_and_the_channels() -> None:
    h = Harness()
    alice, bob = room(h, "alice", "bob")
    stream = alice.open_channel(CHAT)
    h.run(0.3)
    h.server.renegotiate(bob, KINDS)
    assert "m=application 8000 UDP/DTLS/SCTP webrtc-datachannel" in bob.answer_text
    alice.send_message(stream, text(data="still here"), text=True)
    h.run(0.5)
    assert received(bob) == [{"from": "alice", "data": "still here"}]
    kept = DataParams("2")
    assert kept_data(kept, DataParams("2", 5000, 1000)) is kept
    assert kept_data(None, kept) is None  # no channels after the start: refused in the answer
    for changed in (None, DataParams("4")):
        with pytest.raises(ValueError, match="removed or moved the data channel m-line"):
            kept_data(kept, changed)


def test_a_message_larger_than_a_receivers_max_message_size_skips_it_only() -> None:
    h = Harness()
    alice, small, large = room(h, "alice", "small", "large")
    stream = alice.open_channel(CHAT)
    h.run(0.3)
    small.session.data.channels.peer_max_message_size = 100  # type: ignore[union-attr]  # its offer's
    alice.send_message(stream, text(data="x" * 200), text=True)
    alice.send_message(stream, text(data="short"), text=True)
    h.run(0.5)
    assert h.router.sessions.drops["data_too_large_for_peer"] == 1
    assert received(small) == [{"from": "alice", "data": "short"}]  # still there: not "slow"
    assert len(large.messages()) == 2


ENVELOPES = st.fixed_dictionaries(
    {"data": st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists)},
    optional={"to": st.lists(st.text(max_size=8), max_size=4)},
).map(lambda envelope: json.dumps(envelope).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | ENVELOPES | ENVELOPES.map(lambda b: b[: len(b) // 2] + b"\xc3"))
def test_the_envelope_parser_fails_only_with_its_own_error(body: bytes) -> None:
    try:
        addressed = parse_text(body, max_to=3)
    except BadRoomMessage:
        return
    stamped = json.loads(stamp_text("alice", addressed))  # what a page's JSON.parse reads
    assert stamped["from"] == "alice" and stamped["data"] == json.loads(body)["data"]
    assert stamped.get("to") == json.loads(body).get("to")
