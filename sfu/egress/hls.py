"""Low-latency HLS of one H264 stream, kept in memory: a recorder's frames muxed as CMAF
(cmaf.py), cut into parts and segments, with the playlist that lists them. Segments start on
keyframes, asked of the publisher at the segment pace; a republish starts a new period (a new
init section after EXT-X-DISCONTINUITY). Everything served is immutable but the playlist."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sfu.egress.cmaf import PART_TARGET, CmafMuxer, Part
from sfu.egress.recorder import FileClosed, FileOpened, Recorder
from sfu.routing.router import Router

SEGMENT_TARGET = 2.0  # seconds: a keyframe is asked for at this pace
WINDOW = 6  # segments listed (and kept)
PARTS_LISTED = 3  # segments from the end whose parts are listed, as RFC 8216bis asks
MAX_SEGMENT_SECONDS = 10.0  # a segment with no keyframe for this long ends anyway


@dataclass
class Segment:
    number: int  # the media sequence number
    period: int  # which init section it needs
    parts: list[Part] = field(default_factory=list)
    complete: bool = False
    discontinuity: bool = False  # the first of a new period

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)

    def data(self) -> bytes:
        return b"".join(p.data for p in self.parts)


class HlsStream:
    """One stream's LL-HLS: fed by its own recorder, read by the HTTP side."""

    def __init__(self, router: Router, stream: str, now: float, serial: int) -> None:
        self.stream = stream
        self.serial = serial  # in every URI: a new packager never reuses an old one's names
        self.recorder = Recorder(router, stream, now)
        self.inits: dict[int, bytes] = {}
        self.segments: list[Segment] = []
        self._muxer: CmafMuxer | None = None
        self._period = -1
        self._next_keyframe = now
        self._discontinuities = 0  # of the segments gone from the window
        self.last_request = now
        self.version = 0  # goes up with every part added: what waiting requests look at
        self.refused_codec: str | None = None  # the video codec HLS cannot carry (VP8)

    @property
    def ready(self) -> bool:
        return any(s.complete for s in self.segments)

    def tick(self, now: float) -> None:
        if self._muxer is not None and now >= self._next_keyframe:
            self.recorder.request_keyframe(now)
            self._next_keyframe = now + SEGMENT_TARGET
        self.recorder.follow_source()  # a republish or a codec change: a new period
        for event in self.recorder.tick(now):
            if isinstance(event, FileOpened):
                self._open(event)
            elif isinstance(event, FileClosed):
                self._close_period()
            elif self._muxer is not None:
                self._add(self._muxer.write(event.video, event.pts, event.data, event.keyframe))

    def _open(self, opened: FileOpened) -> None:
        self._close_period()
        if opened.layout.video not in ("h264", None):
            self.refused_codec = opened.layout.video
            return
        self.refused_codec = None
        self._period += 1
        self._muxer = CmafMuxer(opened.layout)
        self.inits[self._period] = self._muxer.init

    def _close_period(self) -> None:
        if self._muxer is not None:
            self._add(self._muxer.close())
            self._muxer = None
            if self.segments:
                self.segments[-1].complete = True

    def _add(self, parts: list[Part]) -> None:
        for part in parts:
            current = self.segments[-1] if self.segments else None
            new_period = current is None or current.period != self._period
            if new_period or current.complete or self._ends(current, part):
                if current is not None:
                    current.complete = True
                number = current.number + 1 if current is not None else 0
                current = Segment(number, self._period, discontinuity=new_period and number > 0)
                self.segments.append(current)
                if len(self.segments) > WINDOW:
                    self._forget(self.segments.pop(0))
            current.parts.append(part)
            self.version += 1

    def _forget(self, segment: Segment) -> None:
        """Out of the window: its discontinuity is counted, its init section freed once no
        segment needs it."""
        self._discontinuities += segment.discontinuity
        oldest = self.segments[0].period
        self.inits = {period: init for period, init in self.inits.items() if period >= oldest}

    @staticmethod
    def _ends(segment: Segment, part: Part) -> bool:
        """A segment ends where a part may start one: on a keyframe, once long enough."""
        duration = segment.duration
        return (part.independent and duration >= SEGMENT_TARGET - PART_TARGET) or (
            duration >= MAX_SEGMENT_SECONDS
        )

    # --- what the HTTP side reads ---------------------------------------------------------

    def has(self, number: int, part: int | None) -> bool:
        """Whether segment `number` (complete, or with part `part`) is there yet; a part past
        the last of a complete segment is the next segment's first (RFC 8216bis 6.2.5.2)."""
        segment = next((s for s in self.segments if s.number == number), None)
        if segment is None:
            return bool(self.segments) and number < self.segments[0].number
        if part is None:
            return segment.complete
        if part < len(segment.parts):
            return True
        return segment.complete and self.has(number + 1, 0)

    def next_number(self) -> int:
        return self.segments[-1].number + 1 if self.segments else 0

    def resource(self, name: str) -> bytes | None:
        """The bytes of init-P.mp4, seg-N.m4s or part-N-I.m4s (with this packager's serial
        before them); None for anything else, or no longer (or not yet) there."""
        prefix = f"{self.serial}-"
        if not name.startswith(prefix):
            return None
        stem, _, extension = name[len(prefix) :].partition(".")
        kind, *numbers = stem.split("-")
        try:
            values = [int(n) for n in numbers]
        except ValueError:
            return None
        if kind == "init" and extension == "mp4" and len(values) == 1:
            return self.inits.get(values[0])
        segment = next((s for s in self.segments if values and s.number == values[0]), None)
        if segment is None or extension != "m4s":
            return None
        if kind == "seg" and len(values) == 1 and segment.complete:
            return segment.data()
        if kind == "part" and len(values) == 2 and values[1] < len(segment.parts):
            return segment.parts[values[1]].data
        return None

    def playlist(self) -> str:
        """The media playlist: RFC 8216bis with LL-HLS parts and blocking reloads."""
        listed = [s for s in self.segments if s.parts]
        longest = max((s.duration for s in listed if s.complete), default=SEGMENT_TARGET)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:9",
            f"#EXT-X-TARGETDURATION:{max(1, math.ceil(longest))}",
            f"#EXT-X-PART-INF:PART-TARGET={PART_TARGET:.3f}",
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * PART_TARGET:.3f}",
            f"#EXT-X-MEDIA-SEQUENCE:{listed[0].number if listed else 0}",
        ]
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{self._discontinuities}")
        period = None
        for index, segment in enumerate(listed):
            if segment.discontinuity and index > 0:
                lines.append("#EXT-X-DISCONTINUITY")
            if segment.period != period:
                period = segment.period
                lines.append(f'#EXT-X-MAP:URI="{self.serial}-init-{period}.mp4"')
            if index >= len(listed) - PARTS_LISTED:
                for number, part in enumerate(segment.parts):
                    independent = ",INDEPENDENT=YES" if part.independent else ""
                    lines.append(
                        f"#EXT-X-PART:DURATION={part.duration:.3f},"
                        f'URI="{self.serial}-part-{segment.number}-{number}.m4s"{independent}'
                    )
            if segment.complete:
                lines.append(f"#EXTINF:{segment.duration:.3f},")
                lines.append(f"{self.serial}-seg-{segment.number}.m4s")
        return "\n".join(lines) + "\n"

    def stop(self, reason: str) -> None:
        self._close_period()
        self.recorder.stop(reason)
