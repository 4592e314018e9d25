"""The Transport protocol: what players, publishers and tracks may use of a session."""

from __future__ import annotations

import pytest

from sfu.media import PeerParams
from sfu.protocol.certificate import Certificate
from sfu.routing.relay import PlainSession, mirrored, relay_keys
from sfu.session.peer import PeerSession
from sfu.session.transport import SessionClosed, Transport

CERTIFICATE = Certificate.generate()


def transports() -> list[Transport]:
    peer = PeerSession(
        "play", "s", PeerParams("u", "p", [], []), CERTIFICATE, lambda data, addr: None, 0.0
    )
    plain = PlainSession("play", "s", [], ("127.0.0.1", 9), lambda data, addr: None, 0.0)
    keyed = PlainSession(
        "play", "s", [], ("127.0.0.1", 9), lambda data, addr: None, 0.0, mirrored(relay_keys())
    )
    return [peer, plain, keyed]


def protocol_members() -> set[str]:
    names = {name for name in vars(Transport) if not name.startswith("_")}
    return names | set(Transport.__annotations__)


@pytest.mark.parametrize("transport", transports(), ids=["peer", "relay", "relay-srtp"])
def test_both_sessions_have_every_member_of_the_protocol(transport: Transport) -> None:
    members = protocol_members()
    assert {"handle_timer", "next_timer", "poll_events", "send_rtcp", "addr"} <= members
    assert {name for name in members if not hasattr(transport, name)} == set()


@pytest.mark.parametrize("transport", transports(), ids=["peer", "relay", "relay-srtp"])
def test_closing_reports_one_event_and_ends_the_timers(transport: Transport) -> None:
    assert transport.next_timer() is not None
    transport.close("test")
    transport.close("again")
    assert transport.poll_events() == [SessionClosed(transport)]
    assert transport.poll_events() == []
    assert transport.next_timer() is None
    assert transport.close_reason == "test"
