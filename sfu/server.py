"""The media server: certificate, router, UDP endpoint and the timers that drive them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sfu import fastpath
from sfu.config import MediaConfig
from sfu.dtls import Certificate
from sfu.relay import Relays, relay_host
from sfu.router import Router
from sfu.session import SessionTable
from sfu.tcp import TcpListener
from sfu.udp import UdpEndpoint

log = logging.getLogger(__name__)

FEEDBACK_INTERVAL = 0.05  # transport-wide CC feedback and NACK retries
POLL_INTERVAL = 0.2  # DTLS retransmission and consent timeouts
REPORT_INTERVAL = 1.0  # RTCP SR/RR, bitrate samples


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
        self._ticker: asyncio.Task | None = None

    async def start(self) -> None:
        """Bind the UDP port (and the ICE-TCP one, if any) and start the timers."""
        self.endpoint.open(self.config.udp_host, self.config.udp_port, self.config.socket_buffer)
        if self.config.tcp_port:
            self.endpoint.tcp = TcpListener(self.endpoint)
            await self.endpoint.tcp.open(self.config.udp_host, self.config.tcp_port)
        fastpath.announce()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
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
        router = self.router
        next_poll = next_report = time.monotonic()
        while True:
            await asyncio.sleep(FEEDBACK_INTERVAL)
            now = time.monotonic()
            try:
                router.send_feedback(now)
                if now >= next_poll:
                    router.poll(now)
                    self.relays.poll(now)
                    next_poll = now + POLL_INTERVAL
                if now >= next_report:
                    router.send_reports(now)
                    next_report = now + REPORT_INTERVAL
            except Exception:
                log.exception("media timer failed; continuing")
