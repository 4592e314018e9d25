"""The server's timers on the fake clock, its injected randomness, and what its endpoint counts."""

from __future__ import annotations

from sfu.routing.router import FEEDBACK_INTERVAL
from sfu.session.transport import SessionState
from sfu.wire.demux import DTLS, classify
from tests.harness import TICK, Harness


def spy_dtls(h: Harness) -> list[tuple[float, bytes]]:
    """(time, datagram) of every DTLS datagram the server sends, as its socket passes it on."""
    sent: list[tuple[float, bytes]] = []
    socket = h.server.socket
    passing_on = socket.sendto

    def sendto(data: bytes, addr) -> int:
        if classify(data) is DTLS:
            sent.append((h.now, bytes(data)))
        return passing_on(data, addr)

    socket.sendto = sendto  # type: ignore[method-assign]
    return sent


def test_lost_server_flight_is_resent_at_fake_clock_times():
    """The server's first flight is lost: the router's next timer is its resend, which goes
    out 1 s later on the fake clock, byte for byte, and the peer connects."""
    h = Harness()
    sent = spy_dtls(h)
    publisher = h.publisher("s")
    publisher.down.lose_dtls = 1
    for _ in range(round(0.5 / TICK)):
        h.step(h.now + TICK)
        if sent:
            break
    assert len(sent) == 1 and not publisher.connected
    first_at, flight = sent[0]
    session = publisher.session
    assert session.dtls.next_timer() == first_at + 1.0
    assert h.router.next_timer() <= first_at + FEEDBACK_INTERVAL  # the ticks come first
    h.connect(publisher, within=1.5)
    resent_at, resent = sent[1]
    assert abs(resent_at - (first_at + 1.0)) <= TICK
    assert resent == flight
    assert session.dtls.retransmissions == 1
    assert session.state is SessionState.CONNECTED
    assert publisher.down.dropped == 1


def test_router_wakes_for_a_session_deadline_before_its_ticks():
    """A session that never connects ends at its pending deadline, which the router's
    next_timer names, not at a later tick."""
    h = Harness()
    h.config.pending_timeout = 0.2
    publisher = h.publisher("s")
    publisher.silent = True
    session = publisher.session
    h.router.handle_timer(h.now)  # the first feedback and report ticks
    assert h.router.next_timer() == min(session.created + 0.2, h.now + FEEDBACK_INTERVAL)
    h.run(0.3)
    assert session.state is SessionState.CLOSED
    assert session.close_reason == "not connected within 0.2 s"
    assert h.router.ended[session.id].reason == session.close_reason


def test_endpoint_counts_forwarded_media():
    """Media goes out beside the endpoint's send; its counters include it all the same:
    what the players received on a lossless link is exactly what it counts as sent."""
    h = Harness()
    publisher = h.publisher("s")
    players = [h.player("s") for _ in range(3)]
    h.connect(publisher, *players)
    endpoint = h.server.endpoint
    control_before = endpoint.control_datagrams_out
    h.run(1.0)
    received = sum(len(p.received) for p in players)
    assert received > 3 * 50
    assert endpoint.media_datagrams_out == received
    assert endpoint.datagrams_out == endpoint.control_datagrams_out + received
    assert endpoint.control_datagrams_out > control_before  # RTCP and consent answers


def test_seeded_router_is_reproducible():
    """The harness seeds each router: the same seed gives the same ids, credentials and
    SSRCs, another seed others."""

    def draw(seed: int) -> tuple:
        h = Harness(seed=seed)
        _, player = h.pair()
        session = player.session
        ssrcs = tuple(t.ssrc for t in session.handler.tracks)  # type: ignore[union-attr]
        return session.id, session.ice.local_ufrag, session.rtcp_ssrc, ssrcs

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)
