"""Simulcast layers without decoding: their order, one player's choice, continuous VP8 ids.

A publisher sends the same video as several layers (RTP streams named by rid). A player gets
one at a time; when it moves to another, its SSRC, sequence numbers and timestamps continue
(tracks.SubscriberTrack), and so must the VP8 picture ID and TL0PICIDX, which a receiver uses
to find frame references: a jump back makes it drop frames as old.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

AUTO = "auto"


class Layer(Protocol):
    """What choosing needs of a layer (a tracks.PublisherTrack)."""

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
    """What a player asked for: a rid, a size cap, or the best its link carries (all None)."""

    rid: str | None = None
    max_width: int | None = None
    max_height: int | None = None

    @property
    def auto(self) -> bool:
        return self.rid is None


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


def vp8_picture_fields(payload: bytes | bytearray, start: int) -> tuple[int, int, int]:
    """Where the VP8 descriptor at `start` keeps its picture ID and TL0PICIDX: (offset of the
    picture ID or -1, its bits 7 or 15, offset of TL0PICIDX or -1)."""
    if len(payload) < start + 2 or not payload[start] & 0x80:
        return -1, 0, -1
    ext = payload[start + 1]
    pos = start + 2
    picture_at, bits = -1, 0
    if ext & 0x80:
        if pos >= len(payload):
            return -1, 0, -1
        picture_at, bits = pos, 15 if payload[pos] & 0x80 else 7
        pos += 2 if bits == 15 else 1
    tl0_at = pos if ext & 0x40 and pos < len(payload) else -1
    return picture_at, bits, tl0_at


def vp8_temporal_id(payload: bytes | bytearray, start: int) -> int | None:
    """The TID of a VP8 packet (RFC 7741 §4.2, T bit set), or None when it carries none."""
    if len(payload) < start + 2 or not payload[start] & 0x80 or not payload[start + 1] & 0x20:
        return None
    ext = payload[start + 1]
    pos = start + 2
    if ext & 0x80:
        pos += 2 if pos < len(payload) and payload[pos] & 0x80 else 1
    pos += bool(ext & 0x40)
    return payload[pos] >> 6 if pos < len(payload) else None


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
    """One player's VP8 picture ID and TL0PICIDX offsets, so they run on across layer
    switches as its sequence numbers do; zero until its first switch."""

    __slots__ = ("_after", "picture_offset", "tl0_offset")

    def __init__(self) -> None:
        self.picture_offset = 0
        self.tl0_offset = 0
        # (picture ID, TL0PICIDX) last sent from the layer left, until the next one's first packet.
        self._after: tuple[int | None, int | None] | None = None

    @property
    def switched(self) -> bool:
        return bool(self.picture_offset or self.tl0_offset or self._after)

    def leave(self, last_packet: bytes | None, payload_start: int) -> None:
        """Note the ids the player last got (the old layer's newest packet, rewritten)."""
        if last_packet is None:
            self._after = (None, None)
            return
        picture_at, bits, tl0_at = vp8_picture_fields(last_packet, payload_start)
        picture = None
        if picture_at >= 0:
            raw = last_packet[picture_at] & 0x7F
            if bits == 15:
                raw = raw << 8 | last_packet[picture_at + 1]
            picture = (raw + self.picture_offset) & (0x7FFF if bits == 15 else 0x7F)
        tl0 = (last_packet[tl0_at] + self.tl0_offset) & 0xFF if tl0_at >= 0 else None
        self._after = (picture, tl0)

    def rewrite(self, packet: bytearray, payload_start: int) -> None:
        """Rewrite the picture ID and TL0PICIDX of one outgoing packet in place; the first
        packet after a switch sets the offsets so its ids follow the last ones sent."""
        picture_at, bits, tl0_at = vp8_picture_fields(packet, payload_start)
        after = self._after
        if picture_at >= 0:
            mask = 0x7FFF if bits == 15 else 0x7F
            picture = packet[picture_at] & 0x7F
            if bits == 15:
                picture = picture << 8 | packet[picture_at + 1]
            if after is not None and after[0] is not None:
                self.picture_offset = (after[0] + 1 - picture) & mask
            picture = (picture + self.picture_offset) & mask
            if bits == 15:
                packet[picture_at] = 0x80 | picture >> 8
                packet[picture_at + 1] = picture & 0xFF
            else:
                packet[picture_at] = picture
        if tl0_at >= 0:
            if after is not None and after[1] is not None:
                self.tl0_offset = (after[1] + 1 - packet[tl0_at]) & 0xFF
            packet[tl0_at] = (packet[tl0_at] + self.tl0_offset) & 0xFF
        self._after = None


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
