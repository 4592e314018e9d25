"""Simulcast layers without decoding: their order, one player's choice, continuous VP8 ids.

A publisher sends the same video as several layers (RTP streams named by rid). A player gets
one at a time; when it moves to another, its SSRC, sequence numbers and timestamps continue
(subscriber_track.SubscriberTrack), and so must the VP8 picture ID and TL0PICIDX, which a
receiver uses to find frame references: a jump back makes it drop frames as old.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

AUTO = "auto"


class Layer(Protocol):
    """What choosing needs of a layer (a publisher_track.PublisherTrack)."""

    rid: str | None
    width: int
    height: int
    bitrate: float
    packets: int


def ranked(layers: Sequence[Layer]) -> list[Layer]:
    """Lowest to highest: by picture size where keyframes told it, then by measured bitrate;
    layers not yet heard from go last in offered order, so Firefox's reversed list and OBS's
    numbering need no rule of their own."""
    heard = [layer for layer in layers if layer.packets]
    silent = [layer for layer in layers if not layer.packets]
    return sorted(heard, key=lambda layer: (layer.width * layer.height, layer.bitrate)) + silent


@dataclass(frozen=True)
class Choice:
    """What a player asked for: a rid, a size cap, or the best its link carries (all None);
    of a VP9 SVC stream, a spatial and temporal layer, or caps on them (svc.choose_svc)."""

    rid: str | None = None
    max_width: int | None = None
    max_height: int | None = None
    spatial: int | None = None
    temporal: int | None = None
    max_spatial: int | None = None
    max_temporal: int | None = None

    @property
    def auto(self) -> bool:
        return self.rid is None and self.spatial is None


def choose(layers: Sequence[Layer], choice: Choice, estimate: float | None) -> Layer | None:
    """The layer a player should get: the pinned one; else the highest that fits its size cap
    and its bandwidth estimate (None: no limit known); the lowest when none fits."""
    order = [layer for layer in ranked(layers) if layer.packets]
    if not order:
        return None
    if choice.rid is not None:
        return next((layer for layer in order if layer.rid == choice.rid), None)
    fitting = [
        layer
        for layer in order
        if (choice.max_width is None or not layer.width or layer.width <= choice.max_width)
        and (choice.max_height is None or not layer.height or layer.height <= choice.max_height)
        and (estimate is None or layer.bitrate <= estimate)
    ]
    return fitting[-1] if fitting else order[0]


TEMPORAL_BACK = 1.3  # the lowest layer's bitrate times this: room for all its frames again
REMB_FALLS_SHORT = 0.8  # of the current layer's bitrate: REMB below this means congestion


def remb_choice(
    layers: Sequence[Layer], choice: Choice, current: Layer, remb: float
) -> Layer | None:
    """The layer for a player whose only signal is REMB. A receiver's estimate stays near
    what it gets, so it never shows room for a bigger layer: it moves the player down when
    it falls well short of the current layer, and otherwise the ceiling is the player's
    own limit (adapt() probes one step up at a time, as LayerPace allows)."""
    if current.bitrate and remb < REMB_FALLS_SHORT * current.bitrate:
        return choose(layers, choice, remb)
    return choose(layers, choice, None)


class Vp8Ids(NamedTuple):
    """What one packet's VP8 descriptor (RFC 7741 §4.2) says of its frame: where its picture
    ID and TL0PICIDX are (offsets in the packet, -1 when absent) and their values."""

    picture_at: int
    bits: int  # of the picture ID: 7 or 15 (0 when absent)
    picture: int
    tl0_at: int
    tl0: int
    tid: int  # the temporal layer, -1 when the T bit is clear


def vp8_ids(payload: bytes | bytearray, start: int) -> Vp8Ids | None:
    """The ids of the VP8 descriptor at `start`; None when it has no extension byte (X bit)
    or a field it announces lies past the end: such a packet passes as it is. The compiled
    fan-out (_fanout_rewrite.c, litesfu_parse_vp8) reads descriptors by the same rule."""
    end = len(payload)
    if end < start + 2 or not payload[start] & 0x80:
        return None
    ext = payload[start + 1]
    pos = start + 2
    picture_at, bits, picture = -1, 0, 0
    if ext & 0x80:
        if pos >= end or (payload[pos] & 0x80 and pos + 1 >= end):
            return None
        picture_at = pos
        if payload[pos] & 0x80:
            bits, picture = 15, (payload[pos] & 0x7F) << 8 | payload[pos + 1]
            pos += 2
        else:
            bits, picture = 7, payload[pos]
            pos += 1
    tl0_at, tl0 = -1, 0
    if ext & 0x40:
        if pos >= end:
            return None
        tl0_at, tl0 = pos, payload[pos]
        pos += 1
    tid = -1
    if ext & 0x30:
        if pos >= end:
            return None
        if ext & 0x20:
            tid = payload[pos] >> 6
    return Vp8Ids(picture_at, bits, picture, tl0_at, tl0, tid)


def vp8_picture_fields(payload: bytes | bytearray, start: int) -> tuple[int, int, int]:
    """Where the VP8 descriptor at `start` keeps its picture ID and TL0PICIDX: (offset of the
    picture ID or -1, its bits 7 or 15, offset of TL0PICIDX or -1)."""
    ids = vp8_ids(payload, start)
    return (-1, 0, -1) if ids is None else (ids.picture_at, ids.bits, ids.tl0_at)


def vp8_temporal_id(payload: bytes | bytearray, start: int) -> int | None:
    """The TID of a VP8 packet (RFC 7741 §4.2, T bit set), or None when it carries none."""
    ids = vp8_ids(payload, start)
    return None if ids is None or ids.tid < 0 else ids.tid


def _descriptor_end(payload: bytes | bytearray, start: int) -> int:
    """The offset of the VP8 payload header after the descriptor at `start` (RFC 7741 §4.2)."""
    if len(payload) < start + 2 or not payload[start] & 0x80:
        return start + 1
    ext = payload[start + 1]
    pos = start + 2
    if ext & 0x80:
        pos += 2 if pos < len(payload) and payload[pos] & 0x80 else 1
    return pos + bool(ext & 0x40) + bool(ext & 0x30)


def vp8_dimensions(payload: bytes | bytearray, start: int) -> tuple[int, int] | None:
    """Width and height from the frame header of a VP8 keyframe's first packet (RFC 6386
    §9.1: a 3-byte frame tag, start code 9d 01 2a, then 14-bit width and height)."""
    pos = _descriptor_end(payload, start)
    header = payload[pos : pos + 10]
    if len(header) < 10 or header[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(header[6:8], "little") & 0x3FFF
    height = int.from_bytes(header[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


class Vp8Continuity:
    """One player track's VP8 picture ID and TL0PICIDX, continued across layer switches as
    its sequence numbers are. A base of subscriber_track.SubscriberTrack, whose fields it works
    on are flat in the compiled fan-out's PlayerState; _fanout_rewrite.c (litesfu_continue_ids) does
    the same per packet, byte for byte. The fields:

    - picture_offset, tl0_offset: added to the publisher's ids; zero until the first switch.
    - vp8_after: (picture ID, TL0PICIDX) last sent from the layer left, each None when it had
      none, from the switch until the next layer's first packet; None otherwise."""

    __slots__ = ()
    picture_offset: int
    tl0_offset: int
    vp8_after: tuple[int | None, int | None] | None

    def leave_layer(self, last: Vp8Ids | None) -> None:
        """Note the ids the player last got: those of the old layer's newest packet, as sent."""
        if last is None:
            self.vp8_after = (None, None)
            return
        picture = None
        if last.picture_at >= 0:
            picture = (last.picture + self.picture_offset) & (0x7FFF if last.bits == 15 else 0x7F)
        tl0 = (last.tl0 + self.tl0_offset) & 0xFF if last.tl0_at >= 0 else None
        self.vp8_after = (picture, tl0)

    def continue_ids(self, target: bytearray, shift: int, ids: Vp8Ids) -> None:
        """Write this player's picture ID and TL0PICIDX for the packet `ids` were read from
        into `target`, its copy with the descriptor `shift` bytes further on. The first packet
        after a switch sets the offsets so its ids follow the last ones sent."""
        after = self.vp8_after
        if ids.picture_at >= 0:
            mask = 0x7FFF if ids.bits == 15 else 0x7F
            if after is not None and after[0] is not None:
                self.picture_offset = (after[0] + 1 - ids.picture) & mask
            picture = (ids.picture + self.picture_offset) & mask
            at = ids.picture_at + shift
            if ids.bits == 15:
                target[at] = 0x80 | picture >> 8
                target[at + 1] = picture & 0xFF
            else:
                target[at] = picture
        if ids.tl0_at >= 0:
            if after is not None and after[1] is not None:
                self.tl0_offset = (after[1] + 1 - ids.tl0) & 0xFF
            target[ids.tl0_at + shift] = (ids.tl0 + self.tl0_offset) & 0xFF
        self.vp8_after = None


UPGRADE_HOLD = 4.0  # seconds on a layer before moving up
MAX_UPGRADE_HOLD = 8.0
FAILED_UPGRADE = 6.0  # a move down this soon after a move up means the upgrade did not fit


class LayerPace:
    """Hysteresis for automatic choice: moving down is at once (the link says so), moving up
    waits UPGRADE_HOLD, doubled each time an upgrade had to be undone soon after."""

    def __init__(self) -> None:
        self.changed_at = float("-inf")
        self.upgraded_at = float("-inf")  # of the last move up not yet undone
        self.hold = UPGRADE_HOLD

    def allows_upgrade(self, now: float) -> bool:
        if self.changed_at == self.upgraded_at and now - self.upgraded_at >= FAILED_UPGRADE:
            self.hold = UPGRADE_HOLD  # the last upgrade held: the link has room, go on
        return now - self.changed_at >= self.hold

    def probe_failed(self, now: float) -> None:
        """A probe before an upgrade showed the link would not carry it: as an undone
        upgrade, the hold doubles, counted from now."""
        self.hold = min(MAX_UPGRADE_HOLD, 2 * self.hold)
        self.changed_at = now

    def changed(self, up: bool, now: float) -> None:
        if up:
            self.upgraded_at = now
        elif now - self.upgraded_at < FAILED_UPGRADE:
            self.hold = min(MAX_UPGRADE_HOLD, 2 * self.hold)
            self.upgraded_at = float("-inf")  # one failure per upgrade, however many steps down
        self.changed_at = now
