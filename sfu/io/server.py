"""The media server: certificate, router, UDP endpoint and the timers that drive them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

from sfu.config import MediaConfig
from sfu.egress.hls_streams import HlsStreams
from sfu.egress.recordings import Recordings
from sfu.io.memory import HeapTrimmer, glibc_malloc_trim
from sfu.io.tcp import TcpListener
from sfu.io.udp import UdpEndpoint
from sfu.protocol import fastpath
from sfu.protocol.certificate import Certificate
from sfu.protocol.reflexive import RETRY, ReflexiveDiscovery
from sfu.routing.relay import Relays, relay_host
from sfu.routing.router import FEEDBACK_INTERVAL, Router
from sfu.session.table import SessionTable

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT = 5.0  # seconds a STUN server's name may take to resolve

# The ticker wakes at the earliest timer, but never sooner than this after its last run (a
# burst of DTLS timers must not spin the loop) and never later than the feedback interval.
MIN_SLEEP = 0.005


class BindError(OSError):
    """The media port (UDP) or the ICE-TCP port could not be bound: says which, so start-up
    can name the protocol, address and port."""

    def __init__(self, protocol: str, host: str, port: int, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.protocol, self.host, self.port = protocol, host, port


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
        self.shared_tcp_port: int | None = None  # the HTTP(S) port, when it also takes ICE-TCP
        self.stun_bases: dict[tuple[str, int], str] = {}  # by STUN server: our address towards it
        self._resolver: asyncio.Task | None = None

    async def start(self) -> None:
        """Bind the UDP port (and the ICE-TCP one, if any) and start the timers; BindError
        names a port that could not be bound."""
        host = self.config.udp_host
        try:
            self.endpoint.open(host, self.config.udp_port, self.config.socket_buffer)
        except OSError as exc:
            raise BindError("UDP", host, self.config.udp_port, exc) from exc
        # There even with no port of its own: the HTTP port may hand it connections.
        self.endpoint.tcp = TcpListener(
            self.endpoint, self.config.tcp_connections, self.config.tcp_per_address
        )
        if self.config.tcp_port:
            try:
                await self.endpoint.tcp.open(host, self.config.tcp_port)
            except OSError as exc:
                self.endpoint.close()
                raise BindError("ICE-TCP", host, self.config.tcp_port, exc) from exc
        fastpath.announce()
        loop = asyncio.get_running_loop()
        if self.config.stun_servers:
            self.endpoint.discovery = ReflexiveDiscovery()
            self._resolver = loop.create_task(self._resolve_stun_servers())
        self._ticker = loop.create_task(self._tick())

    async def _resolve_stun_servers(self) -> None:
        """Hand the discovery each STUN server's address once its name resolves (retried), and
        note the local address that reaches it: a srflx candidate's base (RFC 8839 raddr)."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.config.udp_host else socket.AF_INET
        waiting = list(self.config.stun_servers)
        while waiting:
            for host, port in list(waiting):
                try:
                    infos = await asyncio.wait_for(
                        loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM),
                        RESOLVE_TIMEOUT,
                    )
                except (OSError, asyncio.TimeoutError) as exc:
                    log.warning("media: cannot resolve STUN server %s (%s); retrying", host, exc)
                    continue
                address = infos[0][4][:2]
                self.stun_bases[address] = base_address(self.config.udp_host, address)
                assert self.endpoint.discovery is not None
                self.endpoint.discovery.add_server(address, time.monotonic())
                waiting.remove((host, port))
            if waiting:
                await asyncio.sleep(RETRY)

    def reflexive_candidates(self) -> list[tuple[str, int, str, int]]:
        """(address, port, base address, base port) of each server-reflexive address learnt."""
        discovery = self.endpoint.discovery
        if discovery is None:
            return []
        found = []
        for server, mapped in discovery.mapped.items():
            candidate = (*mapped, self.stun_bases[server], self.endpoint.port)
            if candidate[:2] not in [c[:2] for c in found]:
                found.append(candidate)
        return found

    async def stop(self) -> None:
        if self._resolver is not None:
            self._resolver.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self.recordings.close_all("server shutting down")
        self.hls.close_all("server shutting down")
        self.relays.close_all("server shutting down")
        self.router.close_all("server shutting down", time.monotonic())
        if self.endpoint.tcp is not None:
            self.endpoint.tcp.close()
        self.endpoint.close()

    @property
    def tcp_ports(self) -> tuple[int, ...]:
        """Where ICE-TCP is taken: the listener's own port, then the HTTP port if it shares."""
        own = self.endpoint.tcp.port if self.endpoint.tcp is not None else None
        ports = (own, self.shared_tcp_port)
        return tuple(port for port in ports if port)

    async def _tick(self) -> None:
        while True:
            now = time.monotonic()
            try:
                self.router.handle_timer(now)
                self.relays.handle_timer(now)
                self.recordings.handle_timer(now)
                self.hls.handle_timer(now)
                self.trimmer.note(self.router.sessions.ended_total, now)
                discovery = self.endpoint.discovery
                if discovery is not None:
                    for request, server in discovery.poll(now):
                        self.endpoint.send(request, server)
                timers = (
                    self.router.next_timer(),
                    self.relays.next_timer(),
                    discovery.next_due() if discovery is not None else None,
                )
                wake = min((t for t in timers if t is not None), default=now + FEEDBACK_INTERVAL)
            except Exception:
                log.exception("media timer failed; continuing")
                wake = now + FEEDBACK_INTERVAL
            await asyncio.sleep(min(max(wake - time.monotonic(), MIN_SLEEP), FEEDBACK_INTERVAL))


def base_address(udp_host: str, server: tuple[str, int]) -> str:
    """The media socket's own address towards `server`: the bound one, or for a wildcard the
    one the routing table picks (a connected UDP socket sends nothing to learn it)."""
    if udp_host not in ("", "0.0.0.0", "::"):
        return udp_host
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect(server)
        return probe.getsockname()[0]
