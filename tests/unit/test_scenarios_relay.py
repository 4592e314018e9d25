"""A relay between two routers in memory: the origin's real Relays.open_out and, at the edge,
the PlainSession publisher that RelayIn wraps (RelayIn itself opens a socket, so its three
lines of wiring are repeated here)."""

from __future__ import annotations

import pytest

from bench.sdp import AUDIO_PT, VIDEO_PT
from sfu.routing.relay import PlainSession, Relays, mirrored, relay_keys
from sfu.routing.router import PUBLISH
from sfu.session.transport import Address
from tests.harness import Harness, MemorySocket

EDGE_RELAY: Address = ("10.0.0.2", 7000)


class EdgeRelayEnd:
    """The edge end of a relay: takes the origin's plain RTP, answers with plain RTCP."""

    def __init__(
        self, h: Harness, edge_router, stream: str, tracks, origin: Address, keys=None
    ) -> None:
        self.origin = origin
        self.foreign = 0
        socket = MemorySocket(h.network, EDGE_RELAY)
        self.session = PlainSession(PUBLISH, stream, tracks, origin, socket.sendto, h.now, keys)
        edge_router.add_publisher(stream, self.session)
        self.session.handler.on_connected(h.now)
        h.network.receivers[EDGE_RELAY] = self

    def receive(self, data: bytes, src: Address, now: float) -> None:
        if src != self.origin:
            self.foreign += 1
            return
        self.session.handle_srtp(data, now)


def relayed(edge_keys, origin_keys):
    """A live publisher on the origin, relayed to an edge under the keys given to each end;
    (harness, publisher, origin relays, edge end, a connected player on the edge)."""
    h = Harness()
    edge = h.add_server(("10.0.0.2", 8000))
    publisher = h.publisher("s")
    h.connect(publisher)
    h.run(0.3)
    relays = Relays(h.router, "10.0.0.1", 0, h.config.session_timeout)
    tracks = relays.source_tracks("s")
    assert tracks is not None
    end = EdgeRelayEnd(h, edge.router, "s", tracks, h.server.address, edge_keys)
    relays.open_out("s", tracks, EDGE_RELAY, origin_keys)
    plis_before = publisher.stats.plis
    player = h.player("s", server=edge)
    h.connect(player)
    h.run(1.0)
    return h, publisher.stats.plis - plis_before, relays, end, player


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "srtp"])
def test_a_relay_carries_a_stream_from_origin_to_an_edge_player(encrypted: bool):
    keys = relay_keys() if encrypted else None
    h, plis, relays, end, player = relayed(keys, mirrored(keys) if keys else None)
    assert plis > 0  # the edge player's PLI crossed the relay
    video = player.media_packets(VIDEO_PT)
    assert video and video[0].keyframe
    assert len(player.media_packets(AUDIO_PT)) > 30
    assert relays.relayed_players()["s"] == 1
    assert end.session.srtp_errors == 0
    relays.close_all("test over")
    assert h.router.resource_counts()["player_tracks"] == 0


def test_a_relay_under_other_keys_delivers_nothing_and_counts_every_packet():
    """What a node without the relay's keys sends is refused: nothing forged reaches players."""
    _, _, relays, end, player = relayed(relay_keys(), mirrored(relay_keys()))
    assert not player.media_packets(VIDEO_PT)
    assert not player.media_packets(AUDIO_PT)
    assert end.session.srtp_errors > 30
    relays.close_all("test over")


def test_a_relay_closed_from_outside_is_freed_at_the_next_timer():
    """The cluster closes a relay's session directly: the next handle_timer of the relays
    frees its address in the origin's table, and a silent one times out on the fake clock."""
    h, _, relays, end, _ = relayed(None, None)
    [session] = relays.outbound.values()
    assert h.router.sessions.by_addr[EDGE_RELAY] is session
    session.close("node gone")
    assert EDGE_RELAY in h.router.sessions.by_addr  # nothing drained its event yet
    relays.handle_timer(h.now)
    assert EDGE_RELAY not in h.router.sessions.by_addr and not relays.outbound
    assert relays.next_timer() is None
    end.session.close("test over")


def test_a_silent_relay_times_out_at_its_next_timer():
    h, _, relays, end, _ = relayed(None, None)
    [session] = relays.outbound.values()
    end.session.close("edge gone")  # it answers nothing from now on
    deadline = relays.next_timer()
    assert deadline is not None and deadline <= h.now + h.config.session_timeout
    relays.handle_timer(deadline + 0.01)
    assert (
        session.close_reason == f"nothing from the other end for {h.config.session_timeout:.0f} s"
    )
    assert not relays.outbound and EDGE_RELAY not in h.router.sessions.by_addr
