"""Every recording of one media process: which streams are recorded (by --record patterns
or by the API), the recorders, and the files they write. The file side of the recorders'
events: a write that fails stops that recording, counted by reason and logged, and never
reaches the players or the server."""

from __future__ import annotations

import collections
import fnmatch
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sfu.egress.recorder import FileClosed, FileEvent, FileOpened, Recorder
from sfu.egress.writer import FileWriter, WriteFailed
from sfu.routing.router import Router

log = logging.getLogger(__name__)

MAX_RECORDINGS = 64  # at once, however they were started
SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def safe_name(stream: str) -> str:
    """One directory name for any stream name: bytes outside [A-Za-z0-9_-] as %XX, so no
    name climbs, hides or nests (`..`, `.x`, `a/b`) and two names never share a folder."""
    return "".join(c if c in SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in stream)


@dataclass(frozen=True)
class RecordDone:
    """A finished file, for the on_record_done hook."""

    path: str
    stream: str
    duration: float
    bytes: int


class RecordingsOff(Exception):
    """Recording needs --record-dir."""


class TooManyRecordings(Exception):
    """MAX_RECORDINGS are running."""


class Recording:
    """One stream being recorded: its recorder, its open file, what it wrote."""

    def __init__(self, recorder: Recorder, by_api: bool) -> None:
        self.recorder = recorder
        self.by_api = by_api
        self.writer: FileWriter | None = None
        self.files = 0
        self.bytes = 0
        self.error: str | None = None

    def to_json(self) -> dict:
        writer = self.writer
        return {
            "stream": self.recorder.stream,
            "by_api": self.by_api,
            "file": writer.path if writer is not None else None,
            "files": self.files,
            "bytes": self.bytes,
            "error": self.error,
        }


class Recordings:
    """The recordings of one router, ticked with it."""

    def __init__(
        self,
        router: Router,
        directory: str | None,
        patterns: Sequence[str] = (),
        segment: float = 0.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router
        self.directory = directory
        self.patterns = tuple(patterns)
        self.segment = segment
        self._wall = wall_clock
        self.active: dict[str, Recording] = {}
        self.failures: collections.Counter[str] = collections.Counter()
        self._done: list[RecordDone] = []

    def start(self, stream: str, now: float, by_api: bool = True) -> Recording:
        """Record `stream` whenever it is live (also before it is); the same recording again
        for a stream already recorded."""
        if self.directory is None:
            raise RecordingsOff("recording is off: start the server with --record-dir")
        recording = self.active.get(stream)
        if recording is not None:
            recording.by_api = recording.by_api or by_api
            return recording
        if len(self.active) >= MAX_RECORDINGS:
            raise TooManyRecordings(f"{MAX_RECORDINGS} recordings are running")
        recorder = Recorder(self.router, stream, now, self.segment)
        recording = self.active[stream] = Recording(recorder, by_api)
        log.info("recording %s", stream)
        return recording

    def stop(self, stream: str, reason: str = "stopped") -> bool:
        recording = self.active.pop(stream, None)
        if recording is None:
            return False
        self._apply(recording, recording.recorder.stop(reason))
        log.info("recording %s stopped: %s", stream, reason)
        return True

    def list(self) -> list[dict]:
        return [self.active[name].to_json() for name in sorted(self.active)]

    def poll_done(self) -> list[RecordDone]:
        """The files finished since the last call (for the hook)."""
        done, self._done = self._done, []
        return done

    def handle_timer(self, now: float) -> None:
        """Start recording live streams the patterns name, follow publisher changes, and
        write what the recorders completed."""
        if self.patterns and self.directory is not None:
            for name, stream in list(self.router.streams.items()):
                if name in self.active or stream.live_publisher() is None:
                    continue
                if any(fnmatch.fnmatchcase(name, p) for p in self.patterns):
                    try:
                        self.start(name, now, by_api=False)
                    except TooManyRecordings:
                        self.failures["too_many"] += 1
        for name, recording in list(self.active.items()):
            stream = self.router.streams.get(name)
            if recording.error is not None:  # failed: listed until its stream ends or DELETE
                if stream is None or stream.live_publisher() is None:
                    self.active.pop(name)
                continue
            source = recording.recorder.follow_source()
            if source is None and not recording.by_api:
                self.stop(name, "unpublished")
                continue
            try:
                self._apply(recording, recording.recorder.tick(now))
            except Exception:  # a recorder's bug stops its recording, not the media timer
                log.exception("recording %s failed", name)
                self._fail(recording, WriteFailed("internal_error", "see the log"))

    def _apply(self, recording: Recording, events: list[FileEvent]) -> None:
        for event in events:
            if recording.error is not None:
                return
            try:
                if isinstance(event, FileOpened):
                    recording.writer = FileWriter(self._path(recording, event), event.layout)
                    recording.files += 1
                elif isinstance(event, FileClosed):
                    self._finish(recording, event)
                elif recording.writer is not None:
                    recording.bytes += recording.writer.write(
                        event.video, event.pts, event.data, event.keyframe
                    )
            except WriteFailed as failure:
                self._fail(recording, failure)

    def _path(self, recording: Recording, opened: FileOpened) -> str:
        assert self.directory is not None
        folder = os.path.join(self.directory, safe_name(recording.recorder.stream))
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self._wall()))
        path = os.path.join(folder, f"{stamp}.{opened.layout.extension}")
        serial = 1
        while os.path.exists(path):  # a second file within the same second
            serial += 1
            path = os.path.join(folder, f"{stamp}-{serial}.{opened.layout.extension}")
        return path

    def _finish(self, recording: Recording, closed: FileClosed) -> None:
        writer, recording.writer = recording.writer, None
        if writer is None:
            return
        size = writer.close()
        self._done.append(RecordDone(writer.path, recording.recorder.stream, closed.duration, size))
        log.info("recorded %s: %.1f s, %d bytes (%s)", writer.path, closed.duration, size,
                 closed.reason)  # fmt: skip

    def _fail(self, recording: Recording, failure: WriteFailed) -> None:
        """Stop the recording: the players of its stream go on as before."""
        self.failures[failure.reason] += 1
        recording.error = str(failure)
        if recording.writer is not None:
            recording.writer.abandon()
            recording.writer = None
        log.warning("recording %s stopped: %s", recording.recorder.stream, failure)
        recording.recorder.stop(f"write failed: {failure.reason}")

    def close_all(self, reason: str) -> None:
        for name in list(self.active):
            self.stop(name, reason)
