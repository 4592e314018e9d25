"""Stream data on the in-memory harness: a publisher's channels reach every player in order, the
one-way rule, the sender's rate, slow receivers, late players and a new publisher."""

from __future__ import annotations

import dataclasses
import random

from sfu.config import MediaConfig
from sfu.protocol.datachannel import (
    ChannelOpened,
    ChannelOptions,
    DataChannels,
    encode_open,
    parse_open,
)
from signaling.startup.flags import parse_args
from tests.harness import Harness, Peer

CHAT = ChannelOptions("chat")
LOSSY = ChannelOptions("cursor", ordered=False, max_retransmits=0)


def opened(peer: Peer) -> list[ChannelOpened]:
    return [e for e in peer.data_events if isinstance(e, ChannelOpened)]


def start(harness: Harness, players: int = 2) -> tuple[Peer, list[Peer]]:
    publisher = harness.publisher("s", data=True)
    audience = [harness.player("s", data=True) for _ in range(players)]
    harness.connect(publisher, *audience)
    harness.run(0.5)
    assert publisher.data_up and all(p.data_up for p in audience)
    return publisher, audience


def test_every_player_gets_the_channel_and_every_message_in_order_through_loss() -> None:
    harness = Harness()
    publisher, players = start(harness)
    stream = publisher.open_channel(CHAT)
    harness.run(0.3)
    assert [[e.options for e in opened(p)] for p in players] == [[CHAT], [CHAT]]
    for player in players:
        player.down.loss, player.down.jitter = 0.1, 0.03  # the server's link to each player
    sent = [f"score {i}".encode() for i in range(300)]
    for message in sent:
        assert publisher.send_message(stream, message, text=True)
        harness.run(0.005)
    harness.run(8)
    assert [p.messages() for p in players] == [sent, sent]


def test_unreliable_channel_loses_messages_under_loss_without_stalling() -> None:
    harness = Harness()
    publisher, (player,) = start(harness, players=1)
    stream = publisher.open_channel(LOSSY)
    harness.run(0.3)
    assert [e.options for e in opened(player)] == [LOSSY]
    player.down.loss = 0.1
    for i in range(300):
        publisher.send_message(stream, f"{i}".encode())
        harness.run(0.005)
    player.down.loss = 0.0
    publisher.send_message(stream, b"end")
    harness.run(3)
    received = player.messages()
    assert b"end" in received and 200 < len(received) < 301


def test_a_late_player_gets_the_open_channels_and_players_are_one_way() -> None:
    harness = Harness()
    publisher, (first,) = start(harness, players=1)
    stream = publisher.open_channel(CHAT)
    harness.run(0.3)
    late = harness.player("s", data=True)
    harness.connect(late)
    harness.run(0.5)
    assert [e.options for e in opened(late)] == [CHAT]
    publisher.send_message(stream, b"hello")
    harness.run(0.5)
    assert late.messages() == [b"hello"] and first.messages() == [b"hello"]
    late.send_message(opened(late)[0].stream, b"reply")
    harness.run(0.5)
    assert harness.router.sessions.drops["data_from_player"] == 1
    assert publisher.messages() == []


def test_replies_reach_the_publisher_when_allowed() -> None:
    harness = Harness(config=MediaConfig(stream_data_replies=True))
    publisher, (player,) = start(harness, players=1)
    publisher.open_channel(CHAT)
    harness.run(0.3)
    player.send_message(opened(player)[0].stream, b"hand up", text=True)
    harness.run(0.5)
    assert publisher.messages() == [b"hand up"]


def test_a_player_without_data_channels_gets_none_and_media_still_flows() -> None:
    harness = Harness()
    publisher = harness.publisher("s", data=True)
    plain = harness.player("s")
    harness.connect(publisher, plain)
    harness.run(0.5)
    stream = publisher.open_channel(CHAT)
    publisher.send_message(stream, b"x")
    harness.run(1)
    assert plain.channels is None and plain.data_events == []
    assert plain.received  # its RTP


def test_the_senders_rate_is_held() -> None:
    harness = Harness(config=MediaConfig(data_message_rate=20))
    publisher, (player,) = start(harness, players=1)
    stream = publisher.open_channel(CHAT)
    harness.run(0.3)
    for i in range(100):
        publisher.send_message(stream, f"{i}".encode())
    harness.run(1)
    assert 15 <= len(player.messages()) <= 25
    assert harness.router.sessions.drops["data_sender_rate"] >= 75


def test_a_slow_receiver_loses_unreliable_messages_and_its_session_on_reliable_ones() -> None:
    harness = Harness(config=MediaConfig(data_receiver_buffer=20_000))
    publisher, (slow, fine) = start(harness)
    lossy = publisher.open_channel(LOSSY)
    harness.run(0.3)
    slow.silent = True  # acknowledges nothing from now on
    for _ in range(40):
        publisher.send_message(lossy, b"z" * 1000)
        harness.run(0.01)
    harness.run(0.5)
    drops = harness.router.sessions.drops
    assert drops["data_slow_receiver"] > 0 and len(fine.messages()) == 40
    assert slow.session.data.buffered <= 20_000  # type: ignore[union-attr]
    chat = publisher.open_channel(CHAT)
    harness.run(0.3)
    for _ in range(40):
        publisher.send_message(chat, b"z" * 1000)
        harness.run(0.01)
    assert drops["data_slow_receiver_closed"] == 1
    assert slow.session.close_reason.startswith("data receiver too slow")
    assert len(fine.messages()) == 80


def test_a_new_publisher_reuses_the_players_idle_channel() -> None:
    harness = Harness()
    publisher, (player,) = start(harness, players=1)
    publisher.open_channel(CHAT)
    harness.run(0.3)
    harness.router.close(publisher.session.id, "gone")
    publisher.silent = True
    harness.run(0.3)
    again = harness.publisher("s", data=True)
    harness.connect(again)
    harness.run(0.5)
    stream = again.open_channel(CHAT)
    harness.run(0.3)
    again.send_message(stream, b"back")
    harness.run(0.5)
    assert len(opened(player)) == 1 and player.messages() == [b"back"]


def test_dcep_bounds_channel_numbers_and_the_limit() -> None:
    server = DataChannels(
        random.Random(1), max_message_size=1000, peer_max_message_size=1000,
        max_channels=2,
    )  # fmt: skip
    assert parse_open(encode_open(LOSSY)) == LOSSY
    timed = dataclasses.replace(CHAT, max_packet_lifetime=500, protocol="json")
    assert parse_open(encode_open(timed)) == timed
    ok, _ = server.send(1, b"x", False, 0.0)
    assert not ok and server.drops["data_unknown_channel"] == 1
    assert server.open(CHAT, 0.0) == (None, [])  # no association yet: nothing queued
    assert server.drops["sctp_send_before_association"] == 1


def test_replies_flag_and_variable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SFU_STREAM_DATA_REPLIES", raising=False)
    assert parse_args([]).stream_data_replies is False
    assert parse_args(["--stream-data-replies"]).stream_data_replies is True
    monkeypatch.setenv("SFU_STREAM_DATA_REPLIES", "1")
    assert parse_args([]).stream_data_replies is True
