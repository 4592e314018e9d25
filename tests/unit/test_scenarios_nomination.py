"""Several nominated pairs in memory: the session follows the best one (RFC 8445 §8.1.1).

A browser with ICE-TCP on checks from a UDP and a TCP candidate; both may be nominated. These
scenarios give a harness peer a second address (OtherPath) and send nominated checks from it
with the PRIORITY values browsers put on their candidates:

- Chromium: UDP host 2122260223 (type 126), TCP host 1518280447 (type 90);
- Firefox: UDP host 2122252543 (type 126), TCP host 2105524479 (type 125).

The nomination orders below are modelled on what the issue reports of real runs (Firefox
nominating TCP as well as UDP and keeping UDP; Chromium's TCP pair succeeding first); they are
not packet captures.
"""

from __future__ import annotations

import pytest

from bench.sdp import VIDEO_PT
from sfu.protocol.nomination import MAX_PAIRS, STALE_AFTER
from sfu.session.transport import Address
from sfu.wire.demux import DTLS, STUN, classify
from tests.harness import Harness, Peer

PRIORITIES = {
    "chromium": {"udp": 2122260223, "tcp": 1518280447},
    "firefox": {"udp": 2122252543, "tcp": 2105524479},
}


class MemoryTcp:
    """Stands where the ICE-TCP listener would: frames to a tcp: address go on the network."""

    def __init__(self, h: Harness) -> None:
        self.h = h

    def send(self, data: bytes, addr: Address) -> None:
        self.h.network.send(self.h.server.address, addr, data)


class OtherPath:
    """A second address of a peer: answers the checks and DTLS that reach it from there, and
    hands the peer the media."""

    def __init__(self, h: Harness, peer: Peer, address: Address) -> None:
        self.h = h
        self.peer = peer
        self.address = address
        self.received = 0
        h.network.receivers[address] = self

    def receive(self, data: bytes, src: Address, now: float) -> None:
        self.received += 1
        transport = self.peer.transport
        kind = classify(data)
        if kind is STUN:
            reply = transport.on_stun(data, src, now)
            if reply is not None:
                self.send(reply)
        elif kind is DTLS:
            for record in transport.on_dtls(data, now):
                self.send(record)
        else:
            self.peer.receive(data, src, now)

    def send(self, data: bytes) -> None:
        self.h.network.send(self.address, self.h.server.address, data)

    def nominate(self, priority: int) -> None:
        self.send(self.peer.transport.check(use_candidate=True, priority=priority))


def swap(h: Harness, peer: Peer, path: OtherPath) -> None:
    """The peer now sends from the path's address (the pair its ICE agent selected)."""
    del h.network.receivers[path.address]
    old = peer.address
    peer.move_to(path.address)
    path.address = old
    h.network.receivers[old] = path


def dual(h: Harness, stream: str = "s", *, tcp_first: bool = False) -> tuple[Peer, Peer, OtherPath]:
    """A publisher, and a player with a UDP and a TCP address, not yet connected; the player
    sends from TCP when tcp_first, and the other path is returned."""
    h.server.endpoint.tcp = MemoryTcp(h)  # type: ignore[assignment]
    publisher = h.publisher(stream)
    player = h.player(stream)
    udp = player.address
    tcp = (f"tcp:{udp[0]}", 40000)
    path = OtherPath(h, player, tcp)
    if tcp_first:
        swap(h, player, path)
    return publisher, player, path


@pytest.mark.parametrize("browser", sorted(PRIORITIES))
def test_a_later_tcp_nomination_does_not_take_the_session_from_udp(browser: str):
    h = Harness()
    publisher, player, tcp = dual(h)
    h.connect(publisher, player)
    udp = player.address
    for _ in range(5):
        tcp.nominate(PRIORITIES[browser]["tcp"])
        h.run(0.2)
    session = player.session
    assert session.addr == udp and session.transport == "udp"
    assert session.pairs.outranked >= 5
    assert h.router.sessions.by_pair[tcp.address] is session  # kept for a fall-back
    assert h.server.endpoint.drops["media_unknown_address"] == 0
    assert [r for r in player.media_packets(VIDEO_PT) if r.at > h.now - 0.3]


@pytest.mark.parametrize("browser", sorted(PRIORITIES))
def test_a_later_udp_nomination_moves_the_session_off_tcp(browser: str):
    h = Harness()
    publisher, player, udp = dual(h, tcp_first=True)
    h.connect(publisher, player)
    tcp = player.address
    assert player.session.addr == tcp
    udp.nominate(PRIORITIES[browser]["udp"])
    swap(h, player, udp)  # the browser selected UDP and sends there from now on
    h.run(1.0)
    session = player.session
    assert session.addr == player.address and session.transport == "udp"
    assert h.server.endpoint.drops["media_unknown_address"] == 0
    assert h.server.endpoint.drops["address_check_unanswered"] == 0
    assert [r for r in player.media_packets(VIDEO_PT) if r.at > h.now - 0.3]


@pytest.mark.parametrize("browser", sorted(PRIORITIES))
def test_nominations_interleaved_with_dtls_end_on_udp(browser: str):
    """TCP is nominated first (it answered first), UDP in the middle of the handshake, whose
    records keep coming on TCP: none is dropped, and the session ends on UDP."""
    h = Harness()
    publisher, player, udp = dual(h, tcp_first=True)
    h.connect(publisher)
    h.run(0.02)  # the player's first nominated check, from TCP, has bound the session
    assert player.session.transport == "tcp"
    udp.nominate(PRIORITIES[browser]["udp"])
    h.run(0.02)
    assert player.session.transport == "udp"
    h.connect(player)
    swap(h, player, udp)
    h.run(1.0)
    assert player.session.transport == "udp"
    assert h.server.endpoint.drops["dtls_unknown_address"] == 0
    assert h.server.endpoint.drops["media_unknown_address"] == 0
    assert [r for r in player.media_packets(VIDEO_PT) if r.at > h.now - 0.3]


def test_chromium_pattern_tcp_succeeds_first_then_udp_is_selected():
    """Chromium nominates the pair it selects; TCP's check answered first, then UDP became
    writable and, ranking higher, was selected; it keeps pinging TCP without nominating."""
    h = Harness()
    publisher, player, tcp = dual(h)
    h.connect(publisher)
    chromium = PRIORITIES["chromium"]
    tcp.nominate(chromium["tcp"])
    h.run(0.05)
    h.connect(player)
    for _ in range(4):
        tcp.send(player.transport.check(use_candidate=False, priority=chromium["tcp"]))
        h.run(0.5)
    assert player.session.transport == "udp"
    assert h.server.endpoint.drops["dtls_unknown_address"] == 0


def test_the_session_falls_back_to_tcp_when_udp_dies():
    h = Harness()
    publisher, player, tcp = dual(h)
    h.connect(publisher, player)
    tcp.nominate(PRIORITIES["firefox"]["tcp"])
    h.run(0.5)
    assert player.session.transport == "udp"
    udp = player.address
    swap(h, player, tcp)  # UDP is blocked from now on: the browser's media goes over TCP
    del h.network.receivers[udp]
    h.run(STALE_AFTER + 1.0)
    session = player.session
    assert session.transport == "tcp" and session.addr == player.address
    assert [r for r in player.media_packets(VIDEO_PT) if r.at > h.now - 0.5]
    assert session.state.value == "connected"


def test_an_ice_restart_forgets_the_pairs():
    h = Harness()
    publisher, player, tcp = dual(h)
    h.connect(publisher, player)
    tcp.nominate(PRIORITIES["firefox"]["tcp"])
    h.run(0.2)
    assert tcp.address in h.router.sessions.by_pair
    player.restart_ice()
    h.router.sessions.settle(player.session)
    assert tcp.address not in h.router.sessions.by_pair
    assert not player.session.pairs.by_addr


def test_pairs_per_session_are_bounded():
    h = Harness()
    publisher, player, _tcp = dual(h)
    h.connect(publisher, player)
    for i in range(MAX_PAIRS * 3):
        OtherPath(h, player, (f"10.0.7.{i}", 6000)).nominate(1000)
    h.run(0.2)
    assert len(player.session.pairs.by_addr) == MAX_PAIRS
    owned = [a for a, s in h.router.sessions.by_pair.items() if s is player.session]
    assert len(owned) == MAX_PAIRS
