"""The media server: certificate, router, UDP endpoint and the timers that drive them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sfu.config import MediaConfig
from sfu.egress.hls_streams import HlsStreams
from sfu.egress.recordings import Recordings
from sfu.io.memory import HeapTrimmer, glibc_malloc_trim
from sfu.io.tcp import TcpListener
from sfu.io.udp import UdpEndpoint
from sfu.protocol import fastpath
from sfu.protocol.certificate import Certificate
from sfu.routing.relay import Relays, relay_host
from sfu.routing.router import FEEDBACK_INTERVAL, Router
from sfu.session.table import SessionTable

log = logging.getLogger(__name__)

# The ticker wakes at the earliest timer, but never sooner than this after its last run (a
# burst of DTLS timers must not spin the loop) and never later than the feedback interval.
MIN_SLEEP = 0.005


class MediaServer:
    """Everything on the media side of one process, started and stopped as one."""

    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self.certificate = Certificate.generate()
        sessions = SessionTable()
        self.endpoint = UdpEndpoint(sessions)
        self.router = Router(
            config, self.certificate, self.endpoint.send, sessions, self.endpoint.sendto_for
        )
        self.relays = Relays(
            self.router, relay_host(config.udp_host), config.socket_buffer, config.session_timeout
        )
        self.recordings = Recordings(
            self.router, config.record_dir, config.record_patterns, config.record_segment
        )
        self.hls = HlsStreams(self.router)
        # Gives back the heap that ended sessions freed, after many have ended.
        self.trimmer = HeapTrimmer(glibc_malloc_trim())
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        """Bind the UDP port (and the ICE-TCP one, if any) and start the timers."""
        self.endpoint.open(self.config.udp_host, self.config.udp_port, self.config.socket_buffer)
        if self.config.tcp_port:
            self.endpoint.tcp = TcpListener(
                self.endpoint, self.config.tcp_connections, self.config.tcp_per_address
            )
            await self.endpoint.tcp.open(self.config.udp_host, self.config.tcp_port)
        fastpath.announce()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.recordings.close_all("server shutting down")
        self.hls.close_all("server shutting down")
        self.relays.close_all("server shutting down")
        self.router.close_all("server shutting down")
        if self.endpoint.tcp is not None:
            self.endpoint.tcp.close()
        self.endpoint.close()

    @property
    def tcp_port(self) -> int | None:
        """The ICE-TCP listener's port, None when there is none."""
        return self.endpoint.tcp.port if self.endpoint.tcp is not None else None

    async def _tick(self) -> None:
        while True:
            now = time.monotonic()
            try:
                self.router.handle_timer(now)
                self.relays.handle_timer(now)
                self.recordings.handle_timer(now)
                self.hls.handle_timer(now)
                self.trimmer.note(self.router.sessions.ended_total, now)
                wake = min(
                    (
                        t
                        for t in (self.router.next_timer(), self.relays.next_timer())
                        if t is not None
                    ),
                    default=now + FEEDBACK_INTERVAL,
                )
            except Exception:
                log.exception("media timer failed; continuing")
                wake = now + FEEDBACK_INTERVAL
            await asyncio.sleep(min(max(wake - time.monotonic(), MIN_SLEEP), FEEDBACK_INTERVAL))
