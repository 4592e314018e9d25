"""Every LL-HLS stream of one media process: started by the first playlist request for a
live H264 stream, ended once nobody asked for it for a while or its publisher left."""

from __future__ import annotations

import itertools
import logging

from sfu.egress.hls import HlsStream
from sfu.media import VIDEO
from sfu.routing.router import Router

log = logging.getLogger(__name__)

MAX_HLS_STREAMS = 32
IDLE_AFTER = 30.0  # seconds without a request before a packager ends
GONE_AFTER = 10.0  # seconds without a live publisher before it ends


class HlsRefused(Exception):
    """Why a stream has no HLS: `status` 404 (not live, not H264) or 503 (too many)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class HlsStreams:
    def __init__(self, router: Router) -> None:
        self.router = router
        self.active: dict[str, HlsStream] = {}
        self._gone_since: dict[str, float] = {}
        self._serials = itertools.count(1)
        self.refused: dict[str, int] = {"not_live": 0, "codec": 0, "too_many": 0}

    def get(self, name: str, now: float) -> HlsStream:
        """The stream's packager, started now if need be; HlsRefused when it can have none."""
        hls = self.active.get(name)
        if hls is None:
            hls = self._start(name, now)
        if hls.refused_codec is not None:
            self.refused["codec"] += 1
            raise HlsRefused(404, f"HLS has no {hls.refused_codec.upper()}: publish H264 for HLS")
        hls.last_request = now
        return hls

    def _start(self, name: str, now: float) -> HlsStream:
        stream = self.router.streams.get(name)
        publisher = stream.live_publisher() if stream is not None else None
        if publisher is None:
            self.refused["not_live"] += 1
            raise HlsRefused(404, f"stream {name} is not live")
        video = {t.codec.name.lower() for t in publisher.tracks if t.kind == VIDEO}
        if video - {"h264"}:
            self.refused["codec"] += 1
            codec = sorted(video - {"h264"})[0].upper()
            raise HlsRefused(404, f"HLS has no {codec}: publish H264 for HLS")
        if len(self.active) >= MAX_HLS_STREAMS:
            self.refused["too_many"] += 1
            raise HlsRefused(503, f"{MAX_HLS_STREAMS} HLS streams are running")
        hls = self.active[name] = HlsStream(self.router, name, now, next(self._serials))
        log.info("HLS of %s started", name)
        return hls

    def handle_timer(self, now: float) -> None:
        for name, hls in list(self.active.items()):
            stream = self.router.streams.get(name)
            live = stream is not None and stream.live_publisher() is not None
            if live:
                self._gone_since.pop(name, None)
            gone_for = now - self._gone_since.setdefault(name, now) if not live else 0.0
            if now - hls.last_request > IDLE_AFTER or gone_for > GONE_AFTER:
                self.stop(name, "no requests" if live else "unpublished")
                continue
            try:
                hls.tick(now)
            except Exception:  # a packager's bug ends its HLS, not the media timer
                log.exception("HLS of %s failed", name)
                self.stop(name, "internal error")

    def stop(self, name: str, reason: str) -> None:
        hls = self.active.pop(name, None)
        self._gone_since.pop(name, None)
        if hls is not None:
            hls.stop(reason)
            log.info("HLS of %s ended: %s", name, reason)

    def close_all(self, reason: str) -> None:
        for name in list(self.active):
            self.stop(name, reason)
