"""Ended sessions are freed by reference counting, with the cyclic collector off.

Before, a session and its media handler named each other (and a publisher's tracks named
themselves through their simulcast group), so nothing of an ended session was freed until a
full collection: its OpenSSL and libsrtp state (memory tracemalloc does not see) piled up across
churn runs. Here the collector is off while sessions of every kind come and go in rounds, and
after each round none of the server's per-session objects may be left.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator

import pytest

from sfu.config import MediaConfig
from sfu.protocol.dtls import DtlsEndpoint
from sfu.routing.player import Player
from sfu.routing.publisher import Publisher
from sfu.routing.publisher_track import PublisherTrack
from sfu.routing.stream import Stream
from sfu.routing.subscriber_track import SubscriberTrack
from sfu.session.peer import PeerSession
from tests.harness import Harness, Peer

PER_SESSION = (
    PeerSession,
    DtlsEndpoint,
    Publisher,
    Player,
    PublisherTrack,
    SubscriberTrack,
    Stream,
)
ROUNDS = 3
SESSION_TIMEOUT = 1.0


def live_counts() -> Counter[str]:
    """How many of the per-session objects exist (tracked by gc, so freed ones are gone)."""
    return Counter(type(o).__name__ for o in gc.get_objects() if isinstance(o, PER_SESSION))


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def forget(h: Harness, peers: list[Peer]) -> None:
    """Drop the test's peers as their owners would: what is left is what the server holds."""
    for peer in peers:
        h.network.peers.pop(peer.address, None)
        peer.session = None  # type: ignore[assignment]
    h.peers.clear()


def one_round(h: Harness, index: int) -> None:
    """Publishers (one simulcast) and players that leave by DELETE, close_notify and silence."""
    publisher, player = h.pair(f"plain{index}")
    simulcast, simulcast_player = h.simulcast_pair(f"simulcast{index}")
    vanishing, closing = h.player(f"plain{index}"), h.player(f"simulcast{index}")
    h.connect(vanishing, closing)
    h.run(1.0)
    assert player.received and simulcast_player.received
    for peer in (publisher, player, simulcast_player):
        assert h.router.close(peer.session.id, "DELETE")
    closing.close_dtls()
    simulcast.close_dtls()
    vanishing.silent = True
    h.run(SESSION_TIMEOUT + 0.5)
    assert len(h.router.sessions) == 0 and not h.router.streams
    forget(h, [publisher, player, simulcast, simulcast_player, vanishing, closing])


def test_ended_sessions_leave_nothing_for_the_collector(collector_off: None) -> None:
    h = Harness(config=MediaConfig(session_timeout=SESSION_TIMEOUT))
    baseline = live_counts()
    for index in range(ROUNDS):
        one_round(h, index)
        assert live_counts() == baseline, f"round {index}: {live_counts() - baseline}"
    assert h.router.sessions.ended_total == 6 * ROUNDS
