"""The router's timer floor: idle ticks skip the sessions, and nothing due is ever missed."""

from __future__ import annotations

from sfu.session.transport import SessionState
from tests.harness import TICK, Harness


def test_ticks_before_the_floor_visit_no_session():
    """Connected sessions are next due at their silence deadline, 30 s out: the 50 ms ticks
    before it (feedback, reports) make no pass over the sessions, which would have moved
    the floor to their newer deadlines."""
    h = Harness()
    h.pair()
    # Past the deadlines the handshakes set (DTLS resends, pending timeouts), one pass has
    # found only the silence deadlines.
    h.run(1.5)
    table = h.router.sessions
    deadline = min(s.last_seen for s in table.by_id.values()) + h.config.session_timeout
    assert h.now + 20 < table.timer_floor <= deadline
    floor = table.timer_floor
    h.run(1.5)
    assert table.timer_floor == floor < min(s.next_timer() for s in table.by_id.values())
    assert all(s.state is SessionState.CONNECTED for s in table.by_id.values())


def test_a_session_added_later_lowers_the_floor_and_ends_on_time():
    """A player that never connects ends at its pending deadline, though the floor was set
    (to a later time) before it was created."""
    h = Harness()
    h.config.pending_timeout = 0.3
    h.pair()
    h.run(1.5)  # the floor is now the connected sessions' silence deadline, 30 s out
    assert h.router.sessions.timer_floor > h.now + 20
    silent = h.player("s")
    silent.silent = True
    session = silent.session
    assert h.router.sessions.timer_floor <= session.created + 0.3
    assert h.router.next_timer() <= session.created + 0.3
    h.run(0.3 + 2 * TICK)
    assert session.state is SessionState.CLOSED
    assert session.close_reason == "not connected within 0.3 s"


def test_the_floor_follows_a_silent_peer_to_its_timeout():
    """A publisher that goes silent is closed at its silence deadline: the floor is reached,
    the pass finds it due, and the next floor comes from the sessions left."""
    h = Harness()
    h.config.session_timeout = 0.5
    publisher, player = h.pair()
    publisher.silent = True
    player.silent = True
    h.run(0.5 + 4 * TICK)
    table = h.router.sessions
    assert publisher.session.state is SessionState.CLOSED
    assert publisher.session.close_reason == "no valid packet for 0.5 s"
    assert not table.by_id and table.timer_floor == float("inf")
