"""The media server: certificate, router, UDP endpoint and the timers that drive them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sfu.config import MediaConfig
from sfu.dtls import Certificate
from sfu.router import Router
from sfu.session import SessionTable
from sfu.udp import UdpEndpoint

log = logging.getLogger(__name__)

TICK = 0.1  # seconds between timer runs (DTLS retransmission needs no finer grain)
RATE_SAMPLE = 1.0  # seconds between bitrate samples


class MediaServer:
    """Everything on the media side of one process, started and stopped as one."""

    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self.certificate = Certificate.generate()
        sessions = SessionTable()
        self.endpoint = UdpEndpoint(sessions)
        self.router = Router(config, self.certificate, self.endpoint.send, sessions)
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        """Bind the UDP port and start the timers."""
        self.endpoint.open(self.config.udp_host, self.config.udp_port, self.config.socket_buffer)
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.router.close_all("server shutting down")
        self.endpoint.close()

    async def _tick(self) -> None:
        next_sample = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            try:
                self.router.poll(now)
                if now >= next_sample:
                    self.router.sample_rates(now)
                    next_sample = now + RATE_SAMPLE
            except Exception:
                log.exception("media timer failed; continuing")
