"""One recorded track: a short jitter buffer that reorders packets, asks for the missing
ones, gives up on them after a bounded wait, and assembles what it releases into frames."""

from __future__ import annotations

from dataclasses import dataclass

from sfu.egress.depacketize import H264Frames, PayloadError, Piece, vp8_frame
from sfu.media import AUDIO

JITTER_DELAY = 0.4  # seconds a hole may wait for its packet (the publisher's NACK repair)
NACK_AFTER = 0.02  # a hole this old is asked for ...
NACK_EVERY = 0.1  # ... again after this long ...
NACK_TRIES = 3  # ... this many times at most
MAX_PACKETS = 1024  # held at most; a jump further ahead starts over from the new packet
MAX_FRAME_PACKETS = 512  # one frame's packets at most (a 1 MB keyframe in 2 KB packets)


@dataclass(frozen=True)
class Frame:
    """A whole encoded frame of one track, never decoded."""

    kind: str
    codec: str  # lower-case: "vp8", "h264" or "opus"
    timestamp: int  # extended RTP timestamp
    data: bytes
    keyframe: bool


def extend(value: int, last: int | None, bits: int) -> int:
    """`value` (a `bits`-bit counter) as a number that never wraps, nearest to `last`."""
    if last is None:
        return value + (1 << bits)  # room below the first value for packets that come late
    half, full = 1 << (bits - 1), 1 << bits
    delta = (value - last) & (full - 1)
    return last + (delta - full if delta >= half else delta)


class TrackReceiver:
    """Packets in (any order, repeats and all), frames out in order."""

    def __init__(self, kind: str, clock_rate: int) -> None:
        self.kind = kind
        self.clock_rate = clock_rate
        self._held: dict[int, tuple[Piece, str]] = {}
        self._next: int | None = None  # the extended sequence number released next
        self._highest: int | None = None
        self._last_ts: int | None = None
        self._hole_since: float | None = None  # when the hole at _next was first seen
        self._asked: dict[int, tuple[float, int]] = {}  # missing seq -> (last asked, times)
        self._pieces: list[Piece] = []
        self._codec = ""
        self._h264 = H264Frames()
        self.waiting_for_keyframe = kind != AUDIO
        self.frames: list[Frame] = []
        # Counters for the recording's stats.
        self.packets = 0
        self.late = 0  # after their place was given up, or repeats
        self.lost = 0  # given up on after JITTER_DELAY
        self.nacked = 0
        self.bad_frames = 0  # could not be read by their codec's rules
        self.skipped_frames = 0  # dropped while waiting for a keyframe

    def push(self, seq: int, timestamp: int, marker: bool, payload: bytes, codec: str) -> None:
        """One media packet (or the original of an RTX one) of codec `codec`."""
        self.packets += 1
        ext = extend(seq, self._highest, 16)
        if self._next is None:
            self._next = ext
        if ext < self._next or ext in self._held:
            self.late += 1
            return
        if ext - self._next >= MAX_PACKETS:
            self._release()  # what is in order still makes its frames
            self.lost += len(self._held)
            self._held.clear()
            self._asked.clear()
            self._next = ext
            self._gap()
        self._last_ts = extend(timestamp, self._last_ts, 32)
        self._held[ext] = (Piece(ext, self._last_ts, marker, payload), codec)
        if self._highest is None or ext > self._highest:
            self._highest = ext
        self._asked.pop(ext, None)

    def poll(self, now: float) -> list[Frame]:
        """Release what is in order, skipping a hole once it waited JITTER_DELAY; the frames
        completed so far."""
        held = self._held
        while held and self._next is not None:
            self._release()
            if not held:
                break
            if self._hole_since is None:
                self._hole_since = now
            if now - self._hole_since < JITTER_DELAY:
                break
            resume = min(held)
            self.lost += resume - self._next
            for seq in range(self._next, resume):
                self._asked.pop(seq, None)
            self._next = resume
            self._hole_since = None
            self._gap()
        frames, self.frames = self.frames, []
        return frames

    def _release(self) -> None:
        """Assemble the packets held from _next on, as far as they run without a hole."""
        assert self._next is not None
        while (item := self._held.pop(self._next, None)) is not None:
            self._hole_since = None
            self._next += 1
            self._assemble(*item)

    def nacks(self, now: float) -> list[int]:
        """The 16-bit sequence numbers to ask for now."""
        if self._next is None or self._highest is None or not self._held:
            return []
        due: list[int] = []
        for seq in range(self._next, min(self._highest, self._next + MAX_PACKETS)):
            if seq in self._held:
                continue
            asked = self._asked.get(seq)
            if asked is None:
                self._asked[seq] = (now - NACK_EVERY + NACK_AFTER, 0)
                continue
            at, times = asked
            if times < NACK_TRIES and now - at >= NACK_EVERY:
                self._asked[seq] = (now, times + 1)
                due.append(seq & 0xFFFF)
        self.nacked += len(due)
        return due

    def _gap(self) -> None:
        """Packets were given up: the frame under way is lost, and video waits for a keyframe."""
        self._pieces = []
        if self.kind != AUDIO:
            self.waiting_for_keyframe = True

    def _assemble(self, piece: Piece, codec: str) -> None:
        if codec != self._codec:
            self._codec, self._pieces = codec, []
            self._h264 = H264Frames()
            self.waiting_for_keyframe = self.kind != AUDIO
        if self.kind == AUDIO:
            self._emit(piece.timestamp, piece.payload, keyframe=True)
            return
        pieces = self._pieces
        if pieces and (pieces[0].timestamp != piece.timestamp or len(pieces) >= MAX_FRAME_PACKETS):
            self.bad_frames += 1  # the last frame's end never came
            self._gap()
            pieces = self._pieces
        pieces.append(piece)
        if not piece.marker:
            return
        self._pieces = []
        try:
            if codec == "vp8":
                data, keyframe = vp8_frame(pieces)
            else:
                data, keyframe = self._h264.frame(pieces)
        except PayloadError:
            self.bad_frames += 1
            self._gap()
            return
        self._emit(piece.timestamp, data, keyframe)

    def _emit(self, timestamp: int, data: bytes, keyframe: bool) -> None:
        if self.waiting_for_keyframe and not keyframe:
            self.skipped_frames += 1
            return
        self.waiting_for_keyframe = False
        self.frames.append(Frame(self.kind, self._codec, timestamp, data, keyframe))

    @property
    def sps_pps(self) -> tuple[bytes | None, bytes | None]:
        """The H264 parameter sets seen last (a file's codec description)."""
        return self._h264.sps, self._h264.pps
