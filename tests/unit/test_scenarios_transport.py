"""Addresses, credentials and lifetimes in memory: NAT rebinding, stealing, ICE restart, ends."""

from __future__ import annotations

import itertools

import pytest

from bench.sdp import AUDIO_PT, VIDEO_PT
from sfu.config import MediaConfig
from sfu.session.peer import ADDRESS_STALE_AFTER
from tests.harness import Harness, MemorySocket


@pytest.mark.parametrize("new_address", [("10.0.9.9", 6000), ("2001:db8::9", 6000)])
def test_media_follows_a_player_whose_nat_rebinds(new_address: tuple[str, int]):
    """Also across IP families: the player's tracks re-bind to the other family's socket."""
    h = Harness()
    endpoint = h.server.endpoint
    # The server's IPv6 socket: another stand-in on the same address, told apart by identity.
    endpoint.sock6 = MemorySocket(h.network, h.server.address)  # type: ignore[assignment]
    _publisher, player = h.pair()
    h.run(0.5)
    tracks = [t for t in player.session.handler.tracks if t.source is not None]
    assert tracks and all(t._sendto.__self__ is endpoint.sock for t in tracks)
    player.move_to(new_address)
    h.run(ADDRESS_STALE_AFTER + 3.0)  # stale, then the next consent check moves the session
    assert player.session.addr == new_address
    arrived = [r for r in player.media_packets(VIDEO_PT) if r.at > h.now - 1.0]
    assert len(arrived) > 30
    assert h.router.sessions.by_addr[new_address] is player.session
    assert ("10.0.1.2", 5000) not in h.router.sessions.by_addr
    family_socket = endpoint.sock6 if ":" in new_address[0] else endpoint.sock
    assert all(t._sendto.__self__ is family_socket for t in tracks)


def test_media_follows_a_publisher_whose_nat_rebinds():
    h = Harness()
    publisher, player = h.pair()
    h.run(0.5)
    publisher.move_to(("10.0.9.8", 6000))
    h.run(ADDRESS_STALE_AFTER + 3.0)
    assert publisher.session.addr == ("10.0.9.8", 6000)
    arrived = [r for r in player.media_packets(AUDIO_PT) if r.at > h.now - 1.0]
    assert len(arrived) > 40
    assert h.server.endpoint.drops["media_unknown_address"] > 0  # until the session moved


def test_a_peer_cannot_take_over_another_sessions_address():
    h = Harness()
    publisher = h.publisher("s")
    victim = h.player("s")
    thief = h.player("other")
    h.connect(publisher, victim, thief)
    h.run(0.5)
    # The thief checks from the victim's address with the victim's server ufrag but without
    # its password, then sends media from there: neither moves nor disturbs the victim.
    victim_address = victim.address
    thief.move_to(("10.0.9.7", 6000))
    victim_ufrag = victim.session.ice.local_ufrag
    assert thief.transport.answer is not None
    thief.transport.answer.ice_ufrag = victim_ufrag
    h.network.send(victim_address, h.server.address, thief.transport.check(use_candidate=True))
    h.run(0.5)
    assert h.router.sessions.by_addr[victim_address] is victim.session
    assert h.server.endpoint.drops["media_unknown_address"] == 0
    before = len(victim.media_packets(VIDEO_PT))
    h.run(0.5)
    assert len(victim.media_packets(VIDEO_PT)) > before + 10
    assert victim.stats.unprotect_errors == 0


def test_ice_restart_gives_new_credentials_and_media_carries_on():
    h = Harness()
    _publisher, player = h.pair()
    h.run(0.5)
    old_ufrag = player.session.ice.local_ufrag
    player.restart_ice()
    assert player.session.ice.local_ufrag != old_ufrag
    assert old_ufrag not in h.router.sessions.by_ufrag
    consent_before = player.transport.consent_ok
    h.run(ADDRESS_STALE_AFTER)
    assert player.transport.consent_ok > consent_before  # checks with the new credentials pass
    video = player.media_packets(VIDEO_PT)
    assert [r for r in video if r.at > h.now - 0.5]
    seqs = [r.seq for r in video]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))


def test_late_delete_after_dtls_close_is_in_ended():
    h = Harness()
    publisher = h.publisher("s")
    h.connect(publisher)
    h.run(0.2)
    publisher.close_dtls()
    h.run(0.1)
    assert h.router.close(publisher.session.id, "DELETE") is False
    ended = h.router.ended[publisher.session.id]
    assert ended.reason == "peer closed DTLS"
    assert ended.stream == "s"


def test_silent_sessions_time_out_and_free_everything():
    h = Harness(config=MediaConfig(session_timeout=3.0))
    publisher = h.publisher("s")
    players = [h.player("s") for _ in range(2)]
    h.connect(publisher, *players)
    h.run(1.0)
    assert h.router.resource_counts()["player_tracks"] == 4
    for peer in (publisher, *players):
        peer.silent = True
    h.run(4.0)
    counts = h.router.resource_counts()
    assert counts == dict.fromkeys(counts, 0)
    assert all("no valid packet" in h.router.ended[p.session.id].reason for p in h.peers)


def test_consent_keeps_an_idle_player_alive_past_the_timeout():
    h = Harness(config=MediaConfig(session_timeout=3.0))
    player = h.player("s")
    h.connect(player)
    h.run(8.0)
    assert player.session.id in h.router.sessions.by_id


def test_the_closed_line_measures_from_creation_to_the_close(caplog: pytest.LogCaptureFixture):
    """A player that only receives sends no STUN or DTLS after connecting; its DELETE comes 5 s
    later, and the logged duration is those 5 s, not the time to its last handshake record."""
    h = Harness()
    _publisher, player = h.pair()
    h.run(5.0)
    created = player.session.created
    with caplog.at_level("INFO", logger="sfu.session.peer"):
        assert h.router.close(player.session.id, "DELETE by client", h.now)
    closed = [r for r in caplog.records if "closed" in r.getMessage()]
    assert len(closed) == 1
    assert closed[0].duration == pytest.approx(h.now - created, abs=0.01)  # type: ignore[attr-defined]
