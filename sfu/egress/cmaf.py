"""CMAF (fragmented MP4) in memory for HLS: PyAV's MP4 muxer writes into a sink that cuts its
output at top-level boxes, so the init section (ftyp + moov) and each fragment (moof + mdat),
an LL-HLS part, come out as separate byte strings. No encoder, as for files (writer.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import av

from sfu.egress.recorder import FileLayout
from sfu.egress.writer import AUDIO_CLOCK, VIDEO_CLOCK, frame_packet, opus_stream, video_template

PART_SECONDS = 0.45  # a fragment is cut once it holds this much: parts under PART_TARGET
PART_TARGET = 0.5
CMAF_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
    "frag_duration": str(int(PART_SECONDS * 1_000_000)),
    "flush_packets": "1",
}


@dataclass(frozen=True)
class Part:
    """One fragment: its bytes, how long its first track plays, and whether it starts on a
    keyframe (a player may begin there)."""

    data: bytes
    duration: float
    independent: bool


def _children(data: bytes, start: int, end: int) -> dict[bytes, list[tuple[int, int]]]:
    """The boxes inside data[start:end] by type: (payload start, box end) each."""
    found: dict[bytes, list[tuple[int, int]]] = {}
    while start + 8 <= end:
        size = int.from_bytes(data[start : start + 4], "big")
        if size < 8 or start + size > end:
            break
        found.setdefault(data[start + 4 : start + 8], []).append((start + 8, start + size))
        start += size
    return found


def _first_track(moof: bytes, clock: int) -> tuple[float, bool]:
    """(seconds, starts on a sync sample) of the first track fragment of a moof (ISO 14496-12
    tfhd/trun: durations per sample or by default, flags of the first sample)."""
    trafs = _children(moof, 8, len(moof)).get(b"traf", [])
    if not trafs:
        return 0.0, False
    boxes = _children(moof, *trafs[0])
    tfhd_at, _ = boxes[b"tfhd"][0]
    tfhd_flags = int.from_bytes(moof[tfhd_at + 1 : tfhd_at + 4], "big")
    at = tfhd_at + 8
    at += 8 if tfhd_flags & 0x01 else 0
    at += 4 if tfhd_flags & 0x02 else 0
    duration = flags = 0
    if tfhd_flags & 0x08:
        duration = int.from_bytes(moof[at : at + 4], "big")
        at += 4
    at += 4 if tfhd_flags & 0x10 else 0
    if tfhd_flags & 0x20:
        flags = int.from_bytes(moof[at : at + 4], "big")
    total, first_flags = 0, flags
    for trun_at, _ in boxes.get(b"trun", []):
        trun_flags = int.from_bytes(moof[trun_at + 1 : trun_at + 4], "big")
        count = int.from_bytes(moof[trun_at + 4 : trun_at + 8], "big")
        at = trun_at + 8 + (4 if trun_flags & 0x01 else 0)
        if trun_flags & 0x04:
            first_flags = int.from_bytes(moof[at : at + 4], "big")
            at += 4
        fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if trun_flags & bit]
        for index in range(count):
            sample = {bit: int.from_bytes(moof[at + 4 * i : at + 4 * i + 4], "big")
                      for i, bit in enumerate(fields)}  # fmt: skip
            at += 4 * len(fields)
            total += sample.get(0x100, duration)
            if index == 0 and 0x400 in sample and not trun_flags & 0x04:
                first_flags = sample[0x400]
    return total / clock, not first_flags & 0x00010000


class BoxSink:
    """A write-only file for the muxer: collects whole top-level boxes."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self.boxes: list[tuple[bytes, bytes]] = []  # (type, the box's bytes), in order

    def write(self, data: bytes) -> int:
        self._pending += data
        pending = self._pending
        while len(pending) >= 8:
            size = int.from_bytes(pending[:4], "big")
            if size < 8:
                raise ValueError(f"box of size {size}")  # the muxer never writes one
            if len(pending) < size:
                break
            self.boxes.append((bytes(pending[4:8]), bytes(pending[:size])))
            del pending[:size]
        return len(data)

    def take(self) -> list[tuple[bytes, bytes]]:
        boxes, self.boxes = self.boxes, []
        return boxes


class CmafMuxer:
    """One period of an HLS stream (one publish, one codec): its init section, then a part per
    fragment as the muxer cuts them (at keyframes, and every PART_SECONDS)."""

    def __init__(self, layout: FileLayout) -> None:
        self.sink = BoxSink()
        self._out = av.open(self.sink, "w", format="mp4", options=CMAF_OPTIONS)
        self._template: Any = None
        self._video = self._audio = None
        if layout.video:
            self._template, self._video = video_template(self._out, layout)
        if layout.audio:
            self._audio = opus_stream(self._out)
        self._out.start_encoding()
        self.init = b"".join(box for kind, box in self.sink.take() if kind in (b"ftyp", b"moov"))
        self._moof: bytes | None = None
        self._last: dict[bool, int] = {}
        self._clock = VIDEO_CLOCK if layout.video else AUDIO_CLOCK  # of the first track

    def write(self, video: bool, pts: float, data: bytes, keyframe: bool) -> list[Part]:
        """Mux one frame; returns the parts (moof + mdat) it completed."""
        stream = self._video if video else self._audio
        if stream is None:
            return []
        self._out.mux(frame_packet(stream, video, pts, data, keyframe, self._last))
        return self._parts()

    def _parts(self) -> list[Part]:
        parts = []
        for kind, box in self.sink.take():
            if kind == b"moof":
                self._moof = box
            elif kind == b"mdat" and self._moof is not None:
                duration, independent = _first_track(self._moof, self._clock)
                parts.append(Part(self._moof + box, duration, independent))
                self._moof = None
        return parts

    def close(self) -> list[Part]:
        """End the period: the last fragment, if any."""
        try:
            self._out.close()
        finally:
            if self._template is not None:
                self._template.close()
        return self._parts()
