"""The messages a `--workers` front and its workers exchange, typed, versioned and bounded.

Each is a frozen dataclass that writes itself with `to_json` and is read back with `from_json`,
which checks the version, the type, every field's type and every size before building it, and
raises MessageError with a one-line reason otherwise. Like link.py, this module loads no media
code: the front reads these messages without the media plane. On the wire a message is
a JSON object: `{"v": VERSION, "type": KIND, ...fields}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

VERSION = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a load report of MAX_ENTRIES streams fits with room
MAX_ENTRIES = 16384  # streams or relays in one load report
MAX_TRACKS = 16  # tracks of one relayed stream
MAX_FEEDBACK = 16  # rtcp-fb values of one codec
MAX_NAME = 129  # characters of a stream name: two 64-character segments and a slash
MAX_TEXT = 1024  # characters of any other string (codec names, fmtp, ids, hosts)
KINDS = ("audio", "video")  # what a relayed track may carry

Address = tuple[str, int]
M = TypeVar("M", bound="Message")
R = TypeVar("R", bound="RelayRequest")


class MessageError(ValueError):
    """A message that is malformed, too large, of another type or of another version."""


class Fields:
    """One JSON object of a message, read field by field with a clear error for each."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise MessageError(f"{where} must be a JSON object")
        self.data = data
        self.where = where

    def value(self, key: str) -> object:
        if key not in self.data:
            raise MessageError(f"{self.where} has no {key}")
        return self.data[key]

    def text(self, key: str, limit: int = MAX_TEXT) -> str:
        value = self.value(key)
        if not isinstance(value, str) or len(value) > limit:
            raise MessageError(f"{self.where}.{key} must be a string of at most {limit}")
        return value

    def integer(self, key: str, high: int = 2**32) -> int:
        return checked_integer(self.value(key), f"{self.where}.{key}", high)

    def optional_integer(self, key: str, high: int) -> int | None:
        value = self.data.get(key)
        return None if value is None else checked_integer(value, f"{self.where}.{key}", high)

    def flag(self, key: str) -> bool:
        value = self.value(key)
        if not isinstance(value, bool):
            raise MessageError(f"{self.where}.{key} must be true or false")
        return value

    def items(self, key: str, limit: int) -> list:
        value = self.value(key)
        if not isinstance(value, list) or len(value) > limit:
            raise MessageError(f"{self.where}.{key} must be a list of at most {limit}")
        return value

    def entries(self, key: str, limit: int = MAX_ENTRIES) -> dict:
        value = self.value(key)
        if not isinstance(value, dict) or len(value) > limit:
            raise MessageError(f"{self.where}.{key} must be an object of at most {limit}")
        return value

    def names(self, key: str) -> dict[str, str]:
        """An object of relay id -> stream name."""
        found = {}
        for relay_id, stream in self.entries(key).items():
            where = f"{self.where}.{key}"
            found[checked_text(relay_id, where, MAX_TEXT)] = checked_text(stream, where, MAX_NAME)
        return found

    def address(self, key: str) -> Address:
        return address_from_data(self.value(key), f"{self.where}.{key}")

    def tracks(self, key: str) -> tuple[RelayTrack, ...]:
        return tracks_from_data(self.value(key), f"{self.where}.{key}")


def decode(raw: str | bytes, what: str) -> object:
    """The JSON value of at most MAX_MESSAGE_BYTES that `raw` holds, or a MessageError."""
    if len(raw.encode() if isinstance(raw, str) else raw) > MAX_MESSAGE_BYTES:
        raise MessageError(f"{what} message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise MessageError(f"{what} message nests too deep") from exc
    except ValueError as exc:  # UnicodeDecodeError is one too
        raise MessageError(f"{what} message is not JSON") from exc


def checked_integer(value: object, where: str, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= high:
        raise MessageError(f"{where} must be an integer from 0 to {high}")
    return value


def checked_text(value: object, where: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise MessageError(f"{where} must hold strings of at most {limit} characters")
    return value


def address_from_data(data: object, where: str = "address") -> Address:
    """[host, port] as JSON writes an address."""
    if not (isinstance(data, list) and len(data) == 2):
        raise MessageError(f"{where} must be [host, port]")
    return checked_text(data[0], where, MAX_TEXT), checked_integer(data[1], where, 65535)


def tracks_from_data(data: object, where: str = "tracks") -> tuple[RelayTrack, ...]:
    """A relayed stream's tracks as RelayTrack.to_data wrote them: 1 to MAX_TRACKS."""
    if not isinstance(data, list) or not 0 < len(data) <= MAX_TRACKS:
        raise MessageError(f"{where} must be a list of 1 to {MAX_TRACKS} tracks")
    return tuple(RelayTrack.from_data(item, f"{where}[{i}]") for i, item in enumerate(data))


@dataclass(frozen=True)
class RelayCodec:
    """The one payload format of a relayed track, as the origin negotiated it."""

    name: str
    payload_type: int
    clock_rate: int
    channels: int = 0
    fmtp: str = ""
    rtcp_fb: tuple[str, ...] = ()
    rtx_payload_type: int | None = None

    def to_data(self) -> dict:
        return {
            "name": self.name,
            "payload_type": self.payload_type,
            "clock_rate": self.clock_rate,
            "channels": self.channels,
            "fmtp": self.fmtp,
            "rtcp_fb": list(self.rtcp_fb),
            "rtx_payload_type": self.rtx_payload_type,
        }

    @classmethod
    def from_data(cls, data: object, where: str) -> RelayCodec:
        fields = Fields(data, where)
        feedback = fields.items("rtcp_fb", MAX_FEEDBACK)
        return cls(
            name=fields.text("name", 64),
            payload_type=fields.integer("payload_type", 127),
            clock_rate=fields.integer("clock_rate"),
            channels=fields.integer("channels", 255),
            fmtp=fields.text("fmtp"),
            rtcp_fb=tuple(checked_text(f, f"{where}.rtcp_fb", 64) for f in feedback),
            rtx_payload_type=fields.optional_integer("rtx_payload_type", 127),
        )


@dataclass(frozen=True)
class RelayTrack:
    """One track of a relayed stream; on the wire its codec is a list of exactly one."""

    mid: str
    kind: str
    codec: RelayCodec

    def to_data(self) -> dict:
        return {"mid": self.mid, "kind": self.kind, "codecs": [self.codec.to_data()]}

    @classmethod
    def from_data(cls, data: object, where: str) -> RelayTrack:
        fields = Fields(data, where)
        kind = fields.text("kind", 16)
        if kind not in KINDS:
            raise MessageError(f"{where}.kind must be audio or video")
        codecs = fields.items("codecs", 1)
        if len(codecs) != 1:
            raise MessageError(f"{where} must have exactly one codec")
        return cls(fields.text("mid", 32), kind, RelayCodec.from_data(codecs[0], f"{where}.codec"))


class Message:
    """What every message shares: its KIND on the wire, the version, the size bound."""

    KIND: ClassVar[str]

    def to_data(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_fields(cls: type[M], fields: Fields) -> M:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps({"v": VERSION, "type": self.KIND, **self.to_data()})

    @classmethod
    def from_json(cls: type[M], raw: str | bytes) -> M:
        data = decode(raw, cls.KIND)
        fields = Fields(data, cls.KIND)
        version, kind = fields.data.get("v"), fields.data.get("type")
        if type(version) is not int or version != VERSION:  # not True, not 1.0
            said = repr(version)[:32]
            raise MessageError(f"{cls.KIND} message of version {said}, expected {VERSION}")
        if kind != cls.KIND:
            raise MessageError(f"expected a {cls.KIND} message, got {repr(kind)[:32]}")
        return cls.from_fields(fields)


@dataclass(frozen=True)
class StreamLoad:
    """One stream on one worker: its players (relays left out), and a live publisher or not."""

    players: int
    publishing: bool


@dataclass(frozen=True)
class LoadReport(Message):
    """GET /internal/load: what the balancer places by and the front's events show."""

    KIND: ClassVar[str] = "load"
    pid: int
    udp_port: int
    sessions: int
    streams: Mapping[str, StreamLoad]
    relays_in: Mapping[str, str]  # relay id -> stream, of the edge ends here
    relays_out: Mapping[str, str]  # ... of the origin ends here

    def to_data(self) -> dict:
        return {
            "pid": self.pid,
            "udp_port": self.udp_port,
            "sessions": self.sessions,
            "streams": {
                name: {"players": s.players, "publishing": s.publishing}
                for name, s in self.streams.items()
            },
            "relays_in": dict(self.relays_in),
            "relays_out": dict(self.relays_out),
        }

    @classmethod
    def from_fields(cls, fields: Fields) -> LoadReport:
        streams = {}
        for name, data in fields.entries("streams").items():
            checked_text(name, "load.streams", MAX_NAME)
            stream = Fields(data, f"load.streams[{name!r}]")
            streams[name] = StreamLoad(stream.integer("players"), stream.flag("publishing"))
        return cls(
            pid=fields.integer("pid"),
            udp_port=fields.integer("udp_port", 65535),
            sessions=fields.integer("sessions"),
            streams=streams,
            relays_in=fields.names("relays_in"),
            relays_out=fields.names("relays_out"),
        )

    def players(self) -> dict[str, int]:
        return {name: stream.players for name, stream in self.streams.items()}

    def publishing(self, stream: str) -> bool:
        load = self.streams.get(stream)
        return load is not None and load.publishing


NO_LOAD = LoadReport(0, 0, 0, {}, {}, {})  # a worker not heard from yet


@dataclass(frozen=True)
class RelaySource(Message):
    """GET /internal/relay-source: a live stream's tracks and where its origin sends from."""

    KIND: ClassVar[str] = "relay-source"
    tracks: tuple[RelayTrack, ...]
    source: Address

    def to_data(self) -> dict:
        return {"tracks": [t.to_data() for t in self.tracks], "source": list(self.source)}

    @classmethod
    def from_fields(cls, fields: Fields) -> RelaySource:
        return cls(fields.tracks("tracks"), fields.address("source"))


@dataclass(frozen=True)
class RelayRequest(Message):
    """Open one end of a relay of `stream`; `peer` is the other end's address."""

    PEER_KEY: ClassVar[str]
    stream: str
    tracks: tuple[RelayTrack, ...]
    peer: Address

    def to_data(self) -> dict:
        return {
            "stream": self.stream,
            "tracks": [t.to_data() for t in self.tracks],
            self.PEER_KEY: list(self.peer),
        }

    @classmethod
    def from_fields(cls: type[R], fields: Fields) -> R:
        return cls(
            fields.text("stream", MAX_NAME), fields.tracks("tracks"), fields.address(cls.PEER_KEY)
        )


@dataclass(frozen=True)
class RelayInRequest(RelayRequest):
    """POST /internal/relay-in: open the edge end, fed from the origin at `peer`."""

    KIND: ClassVar[str] = "relay-in"
    PEER_KEY: ClassVar[str] = "source"


@dataclass(frozen=True)
class RelayInOpened(Message):
    """The edge end made: its id, and the address the origin is to send the stream to."""

    KIND: ClassVar[str] = "relay-in-opened"
    id: str
    addr: Address

    def to_data(self) -> dict:
        return {"id": self.id, "addr": list(self.addr)}

    @classmethod
    def from_fields(cls, fields: Fields) -> RelayInOpened:
        return cls(fields.text("id"), fields.address("addr"))


@dataclass(frozen=True)
class RelayOutRequest(RelayRequest):
    """POST /internal/relay-out: open the origin end, sending to the edge at `peer`."""

    KIND: ClassVar[str] = "relay-out"
    PEER_KEY: ClassVar[str] = "target"


@dataclass(frozen=True)
class RelayOutOpened(Message):
    """The origin end made: its id, for the front to close it by later."""

    KIND: ClassVar[str] = "relay-out-opened"
    id: str

    def to_data(self) -> dict:
        return {"id": self.id}

    @classmethod
    def from_fields(cls, fields: Fields) -> RelayOutOpened:
        return cls(fields.text("id"))
