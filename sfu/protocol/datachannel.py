"""Data channels on one SCTP association: DCEP (RFC 8832) and the PPIDs of RFC 8831.

A channel is an SCTP stream with a label and delivery options. The peer opens one with a DCEP
OPEN, which we acknowledge; we open ours on odd stream numbers (the server is the DTLS server;
the client end, for tests and benches, uses even ones) and may send on them at once, ordered
until the peer's ACK arrives. Messages go in and out as bytes and
a flag for text; everything else is the association's (sfu.protocol.sctp).
"""

from __future__ import annotations

import collections
import random
import struct
from dataclasses import dataclass

from sfu.protocol.sctp import (
    Association,
    AssociationClosed,
    AssociationUp,
    StreamsReset,
)
from sfu.protocol.sctp_receive import Received

PPID_DCEP = 50
PPID_STRING = 51
PPID_BINARY = 53
PPID_STRING_EMPTY = 56
PPID_BINARY_EMPTY = 57
DCEP_ACK = 0x02
DCEP_OPEN = 0x03
MAX_LABEL_BYTES = 1024  # label and protocol each: a name, not a payload
MAX_CHANNELS = 16

_OPEN = struct.Struct("!BBHIHH")
_RELIABLE, _REXMIT, _TIMED, _UNORDERED = 0x00, 0x01, 0x02, 0x80


class DcepError(ValueError):
    """A DCEP message we cannot read."""


@dataclass(frozen=True)
class ChannelOptions:
    """A channel as RTCDataChannelInit describes it."""

    label: str
    protocol: str = ""
    ordered: bool = True
    max_retransmits: int | None = None
    max_packet_lifetime: int | None = None  # milliseconds
    priority: int = 0

    @property
    def reliable(self) -> bool:
        return self.max_retransmits is None and self.max_packet_lifetime is None


def parse_open(data: bytes) -> ChannelOptions:
    if len(data) < _OPEN.size:
        raise DcepError("DATA_CHANNEL_OPEN is too short")
    kind, channel_type, priority, parameter, label_len, protocol_len = _OPEN.unpack_from(data)
    if kind != DCEP_OPEN or channel_type & 0x7F not in (_RELIABLE, _REXMIT, _TIMED):
        raise DcepError(f"DCEP message type {kind} / channel type {channel_type} unknown")
    if max(label_len, protocol_len) > MAX_LABEL_BYTES:
        raise DcepError("DATA_CHANNEL_OPEN label or protocol is too long")
    if len(data) != _OPEN.size + label_len + protocol_len:
        raise DcepError("DATA_CHANNEL_OPEN lengths do not add up")
    text = data[_OPEN.size :]
    try:
        label = text[:label_len].decode()
        protocol = text[label_len:].decode()
    except UnicodeDecodeError:
        raise DcepError("DATA_CHANNEL_OPEN label is not UTF-8") from None
    reliability = channel_type & 0x7F
    return ChannelOptions(
        label,
        protocol,
        ordered=not channel_type & _UNORDERED,
        max_retransmits=parameter if reliability == _REXMIT else None,
        max_packet_lifetime=parameter if reliability == _TIMED else None,
        priority=priority,
    )


def encode_open(options: ChannelOptions) -> bytes:
    channel_type, parameter = _RELIABLE, 0
    if options.max_retransmits is not None:
        channel_type, parameter = _REXMIT, options.max_retransmits
    elif options.max_packet_lifetime is not None:
        channel_type, parameter = _TIMED, options.max_packet_lifetime
    channel_type |= 0 if options.ordered else _UNORDERED
    label, protocol = options.label.encode(), options.protocol.encode()
    head = _OPEN.pack(
        DCEP_OPEN, channel_type, options.priority, parameter, len(label), len(protocol)
    )
    return head + label + protocol


@dataclass(frozen=True)
class DataReady:
    """The association is up: channels may be opened toward the peer."""


@dataclass(frozen=True)
class ChannelOpened:
    """The peer opened a channel on SCTP stream `stream`."""

    stream: int
    options: ChannelOptions


@dataclass(frozen=True)
class ChannelMessage:
    stream: int
    data: bytes
    text: bool


@dataclass(frozen=True)
class ChannelClosed:
    stream: int


@dataclass(frozen=True)
class DataClosed:
    reason: str


DataEvent = DataReady | ChannelOpened | ChannelMessage | ChannelClosed | DataClosed


class DataChannels:
    """The channels of one peer's association, the server end."""

    def __init__(
        self,
        rng: random.Random,
        *,
        max_message_size: int,
        peer_max_message_size: int,
        max_channels: int = MAX_CHANNELS,
        port: int = 5000,
        client: bool = False,
    ) -> None:
        self.association = Association(rng, port=port, max_message_size=max_message_size)
        self.peer_max_message_size = peer_max_message_size
        self.channels: dict[int, ChannelOptions] = {}
        self.max_channels = max_channels
        self._own_parity = 0 if client else 1  # RFC 8832: the DTLS client's numbers are even
        self._unacked: set[int] = set()  # ours, opened, no ACK yet: sent ordered
        self._events: list[DataEvent] = []
        self.drops: collections.Counter[str] = self.association.drops

    def connect(self, now: float) -> list[bytes]:
        """Start the association as the DTLS client does (tests and benches play that end)."""
        return self.association.connect(now)

    def receive(self, packet: bytes, now: float) -> list[bytes]:
        """One SCTP packet from the peer; the packets to send back."""
        out = self.association.receive(packet, now)
        return out + self._after(now)

    def _after(self, now: float) -> list[bytes]:
        out: list[bytes] = []
        for event in self.association.poll_events():
            if isinstance(event, Received):
                out += self._message(event, now)
            elif isinstance(event, AssociationUp):
                self._events.append(DataReady())
            elif isinstance(event, StreamsReset):
                for stream in event.streams or tuple(self.channels):
                    if self.channels.pop(stream, None) is not None:
                        self._unacked.discard(stream)
                        self._events.append(ChannelClosed(stream))
            elif isinstance(event, AssociationClosed):
                self.channels.clear()
                self._events.append(DataClosed(event.reason))
        return out

    def _message(self, message: Received, now: float) -> list[bytes]:
        stream, ppid, data = message.stream, message.ppid, message.data
        if ppid == PPID_DCEP:
            return self._dcep(stream, data, now)
        if stream not in self.channels:
            self.drops["data_unknown_channel"] += 1
            return []
        if ppid in (PPID_STRING, PPID_BINARY):
            self._events.append(ChannelMessage(stream, data, ppid == PPID_STRING))
        elif ppid in (PPID_STRING_EMPTY, PPID_BINARY_EMPTY):
            self._events.append(ChannelMessage(stream, b"", ppid == PPID_STRING_EMPTY))
        else:
            self.drops["data_bad_ppid"] += 1
        return []

    def _dcep(self, stream: int, data: bytes, now: float) -> list[bytes]:
        if data[:1] == bytes([DCEP_ACK]):
            self._unacked.discard(stream)
            return []
        try:
            options = parse_open(data)
        except DcepError:
            self.drops["data_bad_dcep"] += 1
            return []
        if stream in self.channels or stream % 2 == self._own_parity:
            self.drops["data_channel_taken"] += 1  # numbers of our parity are ours to open
            return []
        if len(self.channels) >= self.max_channels:
            self.drops["data_channel_limit"] += 1
            return []
        self.channels[stream] = options
        self._events.append(ChannelOpened(stream, options))
        _, out = self.association.send(stream, PPID_DCEP, bytes([DCEP_ACK]), now)
        return out

    def open(self, options: ChannelOptions, now: float) -> tuple[int | None, list[bytes]]:
        """Open a channel toward the peer; its stream number, or None (counted) at the limit."""
        if len(self.channels) >= self.max_channels:
            self.drops["data_channel_limit"] += 1
            return None, []
        numbers = range(self._own_parity, 2 * self.max_channels + 2, 2)
        stream = next(n for n in numbers if n not in self.channels)
        ok, out = self.association.send(stream, PPID_DCEP, encode_open(options), now)
        if not ok:
            return None, out
        self.channels[stream] = options
        self._unacked.add(stream)
        return stream, out

    def send(self, stream: int, data: bytes, text: bool, now: float) -> tuple[bool, list[bytes]]:
        """One message on an open channel, with the channel's delivery options."""
        options = self.channels.get(stream)
        if options is None:
            self.drops["data_unknown_channel"] += 1
            return False, []
        if len(data) > self.peer_max_message_size:
            self.drops["data_too_large_for_peer"] += 1
            return False, []
        if data:
            ppid = PPID_STRING if text else PPID_BINARY
        else:
            ppid, data = (PPID_STRING_EMPTY if text else PPID_BINARY_EMPTY), b"\x00"
        lifetime = options.max_packet_lifetime
        return self.association.send(
            stream,
            ppid,
            data,
            now,
            ordered=options.ordered or stream in self._unacked,
            max_retransmits=options.max_retransmits,
            lifetime=None if lifetime is None else lifetime / 1000,
        )

    @property
    def buffered(self) -> int:
        return self.association.buffered

    def next_timer(self) -> float | None:
        return self.association.next_timer()

    def handle_timer(self, now: float) -> list[bytes]:
        out = self.association.handle_timer(now)
        return out + self._after(now)

    def close(self, reason: str) -> list[bytes]:
        out = self.association.abort(reason)
        self._after(0.0)
        return out

    def poll_events(self) -> list[DataEvent]:
        events, self._events = self._events, []
        return events
