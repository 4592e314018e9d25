"""A relay between two routers in memory: the origin's real Relays.open_out and, at the edge,
the PlainSession publisher that RelayIn wraps (RelayIn itself opens a socket, so its three
lines of wiring are repeated here)."""

from __future__ import annotations

from typing import cast

from bench.sdp import AUDIO_PT, VIDEO_PT
from sfu.relay import PlainSession, Relays
from sfu.router import PUBLISH
from sfu.session import Address, PeerSession
from tests.harness import Harness, MemorySocket

EDGE_RELAY: Address = ("10.0.0.2", 7000)


class EdgeRelayEnd:
    """The edge end of a relay: takes the origin's plain RTP, answers with plain RTCP."""

    def __init__(self, h: Harness, edge_router, stream: str, tracks, origin: Address) -> None:
        self.origin = origin
        self.foreign = 0
        socket = MemorySocket(h.network, EDGE_RELAY)
        self.session = PlainSession(PUBLISH, stream, tracks, origin, socket.sendto, h.now)
        edge_router.add_publisher(stream, cast(PeerSession, self.session))
        self.session.handler.on_connected(h.now)
        h.network.receivers[EDGE_RELAY] = self

    def receive(self, data: bytes, src: Address, now: float) -> None:
        if src != self.origin:
            self.foreign += 1
            return
        self.session.handle_srtp(data, now)


def test_a_relay_carries_a_stream_from_origin_to_an_edge_player():
    h = Harness()
    edge = h.add_server(("10.0.0.2", 8000))
    publisher = h.publisher("s")
    h.connect(publisher)
    h.run(0.3)
    relays = Relays(h.router, "10.0.0.1", 0, h.config.session_timeout)
    tracks = relays.source_tracks("s")
    assert tracks is not None
    EdgeRelayEnd(h, edge.router, "s", tracks, h.server.address)
    relays.open_out("s", tracks, EDGE_RELAY)
    plis_before = publisher.stats.plis
    player = h.player("s", server=edge)
    h.connect(player)
    h.run(1.0)
    assert publisher.stats.plis > plis_before  # the edge player's PLI crossed the relay
    video = player.media_packets(VIDEO_PT)
    assert video and video[0].keyframe
    assert len(player.media_packets(AUDIO_PT)) > 30
    assert relays.relayed_players()["s"] == 1
    relays.close_all("test over")
    assert h.router.resource_counts()["player_tracks"] == 0
