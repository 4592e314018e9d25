"""What every data relay (stream data, room data) shares: its members, the sessions whose
channels it relays, and the bounds it holds: a sender's message and byte rate, and a
receiver's buffer, past which an unreliable channel loses the message and a
reliable one ends the session, which can no longer have them all. Drops are counted in the
session table's drops (stats and /metrics)."""

from __future__ import annotations

from typing import Any, Protocol

from sfu.config import MediaConfig
from sfu.protocol.datachannel import DataEvent
from sfu.session.peer import PeerSession
from sfu.session.table import SessionTable
from sfu.session.transport import SessionState


class Bucket:
    """A token bucket: `rate` a second, holding at most one second's worth."""

    __slots__ = ("_at", "_level", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self._level = rate
        self._at = now

    def take(self, amount: float, now: float) -> bool:
        self._level = min(self.rate, self._level + (now - self._at) * self.rate)
        self._at = now
        if amount > self._level:
            return False
        self._level -= amount
        return True


class SenderRate:
    """One sender's messages and bytes a second (--data-message-rate, --data-byte-rate)."""

    __slots__ = ("_bytes", "_messages")

    def __init__(self, config: MediaConfig, now: float) -> None:
        self._messages = Bucket(config.data_message_rate, now)
        self._bytes = Bucket(config.data_byte_rate, now)

    def allows(self, size: int, now: float) -> bool:
        return self._messages.take(1, now) and self._bytes.take(size, now)


class DataRelay(Protocol):
    config: MediaConfig

    def on_data(self, member: Any, event: DataEvent, now: float) -> None: ...


class DataMember:
    """A session's part in a relay: the handler its channels report to, and its send rate."""

    __slots__ = ("rate", "ready", "relay", "session")

    def __init__(self, relay: DataRelay, session: PeerSession, now: float) -> None:
        self.relay = relay
        self.session = session
        self.ready = False  # its SCTP association is up
        self.rate = SenderRate(relay.config, now)

    def on_data(self, event: DataEvent, now: float) -> None:
        self.relay.on_data(self, event, now)


def deliver(
    sessions: SessionTable,
    config: MediaConfig,
    session: PeerSession,
    stream: int,
    message: tuple[bytes, bool],
    reliable: bool,
    now: float,
) -> None:
    """One message (bytes, is text) to one session's channel on `stream`, within its buffer."""
    data = session.data
    if data is None or session.state is SessionState.CLOSED:
        return
    body, text = message
    if len(body) > data.channels.peer_max_message_size:
        sessions.drops["data_too_large_for_peer"] += 1  # its a=max-message-size: not its speed
        return
    if data.buffered + len(body) <= config.data_receiver_buffer and data.send(
        stream, body, text, now
    ):
        sessions.lower_timer_floor(session)
    elif reliable:
        sessions.drops["data_slow_receiver_closed"] += 1
        session.close("data receiver too slow: its buffer of reliable messages is full")
        sessions.settle(session)
    else:
        sessions.drops["data_slow_receiver"] += 1
