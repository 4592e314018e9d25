"""The file side of a recording: frames into WebM (VP8 + Opus) or fragmented MP4 (H264 +
Opus) with PyAV's muxers, and no encoder: the video stream is described by an elementary
stream holding the first keyframe, which libavformat reads like any input; Opus gets the
OpusHead that libopus's encoder description makes (it never encodes a sample)."""

from __future__ import annotations

import contextlib
import io
import os
import struct
from fractions import Fraction
from typing import Any

import av

from sfu.egress.depacketize import START_CODE, vp8_size
from sfu.egress.recorder import FileLayout

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
# Each file goes to disk in pieces of at most a second, written through at once: a crash
# leaves what was written playable (MP4 fragments, WebM clusters), and a full disk shows
# within a second. A keyframe also starts an MP4 fragment.
MP4_OPTIONS = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    "frag_duration": "1000000",
    "flush_packets": "1",
}
WEBM_OPTIONS = {"cluster_time_limit": "1000", "flush_packets": "1"}


class WriteFailed(Exception):
    """The file could not be written; `reason` is the counter it goes to."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _ivf(frame: bytes) -> bytes:
    """A one-frame IVF file: what lets libavformat describe a VP8 stream from its keyframe."""
    width, height = vp8_size(frame) or (0, 0)
    header = b"DKIF" + struct.pack("<HHIHHIIII", 0, 32, 0x30385056, width, height, 30, 1, 1, 0)
    return header + struct.pack("<IQ", len(frame), 0) + frame


def _failure(error: Exception) -> WriteFailed:
    """The counted reason of a write error: a full disk, no permission, or other trouble."""
    number = getattr(error, "errno", None)
    if number in (28, 122):  # ENOSPC, EDQUOT
        return WriteFailed("disk_full", str(error))
    if number in (1, 13, 30):  # EPERM, EACCES, EROFS
        return WriteFailed("permission", str(error))
    return WriteFailed("io_error", f"{type(error).__name__}: {error}")


def frame_packet(
    stream: Any, video: bool, pts: float, data: bytes, keyframe: bool, last: dict[bool, int]
) -> av.Packet:
    """A packet of one frame for `stream`, at `pts` seconds on its kind's clock; `last` keeps
    each kind's last timestamp, so they only go forward, as a container wants them."""
    clock = VIDEO_CLOCK if video else AUDIO_CLOCK
    ticks = max(0, round(pts * clock), last.get(video, -1) + 1)
    last[video] = ticks
    packet = av.Packet(data)
    packet.stream = stream
    packet.pts = packet.dts = ticks
    packet.time_base = Fraction(1, clock)  # the muxer may have picked its own
    packet.is_keyframe = keyframe
    return packet


def opus_stream(out: Any) -> Any:
    """An Opus stream of `out`; libopus's description gives it its OpusHead (it encodes
    nothing)."""
    stream = out.add_stream("libopus", rate=AUDIO_CLOCK)
    stream.time_base = Fraction(1, AUDIO_CLOCK)
    return stream


def video_template(out: Any, layout: FileLayout) -> tuple[Any, Any]:
    """(the input it was described from, to close later; a video stream of `out`) for the
    layout's codec, from its first keyframe: nothing is encoded or decoded."""
    if layout.video == "vp8":
        source, fmt = io.BytesIO(_ivf(layout.keyframe)), "ivf"
    else:
        keyframe = layout.keyframe if layout.keyframe.startswith(START_CODE) else b""
        source, fmt = io.BytesIO(keyframe), "h264"
    template = av.open(source, "r", format=fmt)
    try:
        stream = out.add_stream_from_template(template.streams.video[0])
    except BaseException:
        template.close()
        raise
    stream.time_base = Fraction(1, VIDEO_CLOCK)
    return template, stream


class FileWriter:
    """One open recording file. Every call raises WriteFailed, never anything else."""

    def __init__(self, path: str, layout: FileLayout) -> None:
        self.path = path
        self.layout = layout
        self._template: Any = None
        self._last: dict[bool, int] = {}
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            options = MP4_OPTIONS if layout.extension == "mp4" else WEBM_OPTIONS
            self._out = av.open(path, "w", format=layout.extension, options=options)
        except (OSError, av.FFmpegError) as error:
            raise _failure(error) from error
        try:
            self._video = self._add_video(layout) if layout.video else None
            self._audio = opus_stream(self._out) if layout.audio else None
            self._out.start_encoding()
        except (OSError, av.FFmpegError, ValueError) as error:
            self.abandon()
            raise _failure(error) from error

    def _add_video(self, layout: FileLayout) -> Any:
        self._template, stream = video_template(self._out, layout)
        return stream

    def write(self, video: bool, pts: float, data: bytes, keyframe: bool) -> int:
        """One frame at `pts` seconds from the file's start; returns the bytes written."""
        stream = self._video if video else self._audio
        if stream is None:
            return 0
        try:
            self._out.mux(frame_packet(stream, video, pts, data, keyframe, self._last))
        except (OSError, av.FFmpegError) as error:
            raise _failure(error) from error
        return len(data)

    def close(self) -> int:
        """Finish the file (trailer, index); returns its size in bytes."""
        try:
            self._out.close()
            return os.path.getsize(self.path)
        except (OSError, av.FFmpegError) as error:
            raise _failure(error) from error
        finally:
            self._close_template()

    def abandon(self) -> None:
        """Let go of a file that failed: close what can be closed, never raise."""
        with contextlib.suppress(OSError, av.FFmpegError):
            self._out.close()
        self._close_template()

    def _close_template(self) -> None:
        if self._template is not None:
            self._template.close()
            self._template = None
