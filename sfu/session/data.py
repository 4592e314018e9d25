"""A session's data channels: DTLS application data to SCTP and back (RFC 8261).

Each SCTP packet travels in one DTLS record. What the channels report (opened, messages,
closed) goes to the data handler the router attached, as it happens.
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable
from typing import Protocol

from sfu.config import MediaConfig
from sfu.media import DataParams
from sfu.protocol.datachannel import ChannelOptions, DataChannels, DataEvent
from sfu.protocol.dtls import DtlsEndpoint


class DataHandler(Protocol):
    """What the router attaches to a session to receive its data channel events."""

    def on_data(self, event: DataEvent, now: float) -> None: ...


class SessionData:
    """The data channels of one peer session, over its DTLS endpoint."""

    def __init__(
        self,
        dtls: DtlsEndpoint,
        params: DataParams,
        config: MediaConfig,
        rng: random.Random,
        send: Callable[[list[bytes]], None],
    ) -> None:
        self.params = params
        self.channels = DataChannels(
            rng,
            max_message_size=config.data_max_message_size,
            peer_max_message_size=min(params.max_message_size, config.data_max_message_size),
            max_channels=config.data_channels,
            port=params.sctp_port,
        )
        self.handler: DataHandler | None = None
        self._dtls = dtls
        self._send = send
        dtls.keep_application_data = True

    def share_drops(self, drops: collections.Counter[str]) -> None:
        """Count into the session table's drops, as the rest of the session does."""
        self.channels.drops = self.channels.association.drops = drops

    def on_records(self, now: float) -> None:
        """Feed what DTLS decrypted to SCTP; send the answers, report the events."""
        for record in self._dtls.take_received():
            self._out(self.channels.receive(record, now))
        self._report(now)

    def open(self, options: ChannelOptions, now: float) -> int | None:
        """Open a channel toward the peer; its stream number, None at the channel limit."""
        stream, packets = self.channels.open(options, now)
        self._out(packets)
        return stream

    def send(self, stream: int, data: bytes, text: bool, now: float) -> bool:
        """One message on an open channel; False (counted) when it cannot be queued."""
        ok, packets = self.channels.send(stream, data, text, now)
        self._out(packets)
        return ok

    @property
    def buffered(self) -> int:
        """Bytes queued or unacknowledged toward the peer."""
        return self.channels.buffered

    def next_timer(self) -> float | None:
        return self.channels.next_timer()

    def handle_timer(self, now: float) -> None:
        self._out(self.channels.handle_timer(now))
        self._report(now)

    def close(self, reason: str) -> None:
        """ABORT the association while DTLS can still carry it."""
        self._out(self.channels.close(reason))
        self.handler = None

    def _out(self, packets: list[bytes]) -> None:
        for packet in packets:
            self._send(self._dtls.send(packet))

    def _report(self, now: float) -> None:
        for event in self.channels.poll_events():
            if self.handler is not None:
                self.handler.on_data(event, now)
