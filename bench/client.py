"""Codec-free WebRTC clients for load: real ICE, DTLS and SRTP, synthetic RTP, cheap counting.

Each client owns one non-blocking UDP socket connected to the server's candidate and read from a
loop reader callback, because asyncio's datagram protocol costs several times more per packet.
The handshake reuses the project's sans-IO objects (`sfu.protocol.ice`, `sfu.protocol.dtls`,
`sfu.protocol.srtp`) in the client role: controlling full ICE agent, DTLS client.

A publisher sends VP8-like video (a frame every 33 ms, ~60 packets/s of 1200-byte payloads, a
keyframe every 2 s or when the server sends a PLI) and Opus-like audio (50 packets/s). Every
payload carries the publisher's index and its send time (`time.time_ns`, shared by processes),
so a player can measure end-to-end latency after decrypting a packet: once when it reads the
packet, and (on Linux) once from the kernel's stamp of when the packet reached its socket, which
leaves out the time the packet waited for this process to get to it. Players count and
sequence-check every packet from the clear RTP header and decrypt only every k-th one.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import socket
import struct
import sys
import time
from dataclasses import dataclass

import pylibsrtp

from bench.sdp import AUDIO_PT, RID_ID, VIDEO_PT, Answer, build_offer, parse_answer
from sfu.protocol import ice
from sfu.protocol.certificate import Certificate
from sfu.protocol.dtls import DtlsEndpoint, DtlsState
from sfu.protocol.srtp import SrtpContext
from sfu.wire import rtp, stun
from sfu.wire.demux import DTLS, SRTP, STUN, classify
from sfu.wire.stun import StunError

AUDIO = "audio"
VIDEO = "video"

VIDEO_FPS = 30
VIDEO_PACKETS_PER_FRAME = 2  # 2 x 1200 bytes x 30 fps ~ 0.6 Mbit/s, 60 packets/s
KEYFRAME_PACKETS = 6
KEYFRAME_EVERY = 2.0  # seconds
VIDEO_PAYLOAD = 1200
AUDIO_PPS = 50
AUDIO_PAYLOAD = 100
VIDEO_TS_STEP = 90000 // VIDEO_FPS
AUDIO_TS_STEP = 48000 // AUDIO_PPS
MAX_CATCH_UP = 5  # late pacing sends at most this many due items at once, then skips ahead

STAMP_OFFSET = 10  # payload offset of (publisher index, send time ns)
STAMP = struct.Struct("!IQ")
# Linux's SO_TIMESTAMPNS (<asm-generic/socket.h>; Python names neither it nor SCM_TIMESTAMPNS,
# the same number): the kernel stamps each datagram with the wall clock as it reaches the
# socket, and recvmsg hands the stamp over as a struct timespec.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")
TIMESTAMP_SPACE = socket.CMSG_SPACE(TIMESPEC.size)
RTP_HEADER = struct.Struct("!BBHII")
HOST_PRIORITY = (126 << 24) | (65535 << 8) | 255

# Connectivity checks until one succeeds: every 0.1 s, backing off to 1 s. Answers are matched
# against the last MAX_PENDING_CHECKS ids, enough for a server that answers seconds late.
CHECK_INTERVAL = 0.1
MAX_CHECK_INTERVAL = 1.0
HANDSHAKE_POLL = 0.05
READ_BATCH = 64
RECV_BUFFER = 1 << 20
MAX_PENDING_CHECKS = 64
# Consent checks (RFC 7675) every 2-4 s, randomized so thousands of clients do not align.
CONSENT_INTERVAL = (2.0, 4.0)

# VP8 payload starts (RFC 7741): descriptor S=1 PID 0, then the frame tag. P (bit 0) clear
# marks a keyframe, whose tag is followed by the start code 9d 01 2a.
# Each prefix fills the payload up to STAMP_OFFSET.
_VP8_KEY_START = bytes([0x10, 0x50, 0x2D, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0])
_VP8_INTER_START = bytes([0x10, 0x51, 0x2D, 0x00]).ljust(STAMP_OFFSET, b"\x00")
_VP8_CONTINUATION = bytes(STAMP_OFFSET)  # descriptor with S=0: not a frame start
_OPUS_TOC = bytes([0xFC])  # CELT fullband 20 ms, stereo, one frame


class ConnectError(Exception):
    """A client that could not reach media flow; the message says which step failed."""


@dataclass(frozen=True)
class Target:
    """Where and how clients signal: base URL, route style and the stream name."""

    base_url: str
    route: str  # "whip", "srs" or "room" (a room subscribe session, stream "ROOM/NAME")
    stream: str


class Transport:
    """The client side of ICE, DTLS and SRTP with no socket and no clock: datagrams and time in,
    datagrams out. The load clients wrap it in a socket; tests/harness.py drives it in memory."""

    def __init__(self, certificate: Certificate) -> None:
        self.certificate = certificate
        self.ufrag = ice.new_ufrag()
        self.pwd = ice.new_pwd()
        self.tie_breaker = secrets.randbits(64)
        self.answer: Answer | None = None
        self.dtls: DtlsEndpoint | None = None
        self.srtp: SrtpContext | None = None
        self.error: str | None = None
        self.ice_ok = False
        self.last_consent = 0.0
        self.consent_ok = 0
        self.checks_answered = 0  # Binding Requests the server sent us, answered
        self._pending: dict[bytes, None] = {}  # outstanding check ids, oldest first

    def accept_answer(self, answer: Answer) -> None:
        self.answer = answer
        self.dtls = DtlsEndpoint(
            self.certificate,
            is_server=False,
            remote_fingerprints=[("sha-256", answer.fingerprint)],
        )

    def check(self, *, use_candidate: bool, priority: int = HOST_PRIORITY) -> bytes:
        """One connectivity (or consent) check to the server, remembered to match its answer;
        `priority` is that of the client candidate it is sent from."""
        assert self.answer is not None
        tid = secrets.token_bytes(12)
        if len(self._pending) >= MAX_PENDING_CHECKS:
            del self._pending[next(iter(self._pending))]
        self._pending[tid] = None
        return ice.binding_request(
            tid,
            f"{self.answer.ice_ufrag}:{self.ufrag}",
            self.answer.ice_pwd,
            controlling=True,
            tie_breaker=self.tie_breaker,
            priority=priority,
            use_candidate=use_candidate,
        )

    def on_stun(self, data: bytes, source: tuple[str, int], now: float) -> bytes | None:
        """Take the answer to one of our checks, or answer a check the server sends us (it may
        verify a new address before moving media there); returns the reply to send, if any."""
        try:
            msg = stun.parse(data)
        except StunError:
            return None
        if msg.msg_type == stun.BINDING_REQUEST:
            return self._answer_check(data, msg, source)
        tid = msg.transaction_id
        if tid not in self._pending:
            return None
        del self._pending[tid]
        assert self.answer is not None
        try:
            ice.parse_binding_success(data, tid, self.answer.ice_pwd)
        except StunError as exc:
            if not self.ice_ok:
                self.error = f"ICE check failed: {exc}"
                self.progress()
            return None
        self.last_consent = now
        if self.ice_ok:
            self.consent_ok += 1
        else:
            self.ice_ok = True
            self.progress()
        return None

    def _answer_check(
        self, data: bytes, msg: stun.Message, source: tuple[str, int]
    ) -> bytes | None:
        """Binding Success for a check signed with our own ice-pwd and naming our ufrag first."""
        key = self.pwd.encode()
        username = msg.get(stun.USERNAME) or b""
        if not username.startswith(f"{self.ufrag}:".encode()):
            return None
        if not stun.verify_fingerprint(data, msg) or not stun.verify_integrity(data, msg, key):
            return None
        self.checks_answered += 1
        mapped = stun.encode_xor_address(source[0], source[1], msg.transaction_id)
        return stun.encode(
            stun.BINDING_SUCCESS,
            msg.transaction_id,
            [(stun.XOR_MAPPED_ADDRESS, mapped)],
            integrity_key=key,
        )

    def on_dtls(self, data: bytes, now: float) -> list[bytes]:
        """Feed one DTLS record; the records to send back."""
        if self.dtls is None:
            return []
        out = self.dtls.receive(data, now)
        self._check_dtls()
        return out

    def dtls_step(self, now: float) -> list[bytes]:
        """Start the handshake once ICE is up, then run OpenSSL's retransmission timer."""
        dtls = self.dtls
        if dtls is None or not self.ice_ok:
            return []
        if dtls.state is DtlsState.NEW:
            return dtls.start(now)
        if dtls.timer_at is not None and now >= dtls.timer_at:
            out = dtls.handle_timer(now)
            self._check_dtls()
            return out
        return []

    def _check_dtls(self) -> None:
        assert self.dtls is not None
        state = self.dtls.state
        if state is DtlsState.CONNECTED and self.srtp is None:
            self.srtp = SrtpContext(self.dtls.keys)  # type: ignore[arg-type]
            self.progress()
        elif state is DtlsState.FAILED and self.srtp is None:
            self.error = f"DTLS failed: {self.dtls.failure}"
            self.progress()

    def progress(self) -> None:
        """Called when the handshake moved on or failed; the socket client wakes its wait."""


class Client(Transport):
    """One peer connection over a UDP socket: handshake, consent freshness, RTCP."""

    role = ""

    def __init__(self, index: int, target: Target, certificate: Certificate) -> None:
        super().__init__(certificate)
        self.index = index
        self.target = target
        self.resource: str | None = None  # URL to DELETE (WHIP/WHEP) when done
        self.session_id: str | None = None
        self.next_consent = 0.0
        # Shorter for servers run with a short --session-timeout (churn, soak).
        self.consent_interval = CONSENT_INTERVAL
        self.consent_sent = 0
        self.rtcp_in = 0
        self.other_in = 0
        self._progress = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self._reading = False

    # -- setup -------------------------------------------------------------------------------

    def offer(self) -> str:
        return build_offer(self.ufrag, self.pwd, self.certificate.fingerprint, send=False)

    def take_answer(self, text: str) -> None:
        """Read the answer and aim the socket at the server's first candidate."""
        self.accept_answer(parse_answer(text))
        assert self.answer is not None
        self.sock.connect(self.answer.candidate)
        self._loop.add_reader(self.sock.fileno(), self.on_readable)
        self._reading = True

    def progress(self) -> None:
        self._progress.set()

    async def handshake(self, timeout: float) -> None:
        """ICE until a nominated pair succeeds, then DTLS until SRTP keys exist."""
        assert self.dtls is not None
        deadline = time.monotonic() + timeout
        next_check = 0.0
        interval = CHECK_INTERVAL
        for _ in range(int(timeout / HANDSHAKE_POLL) + 1):
            now = time.monotonic()
            if self.error is not None:
                raise ConnectError(self.error)
            if self.srtp is not None:
                self.last_consent = now
                self.next_consent = now + random.uniform(*self.consent_interval)
                self.on_connected()
                return
            if now >= deadline:
                break
            if not self.ice_ok:
                if now >= next_check:
                    self.send_check(use_candidate=True)
                    next_check = now + interval
                    interval = min(interval * 1.5, MAX_CHECK_INTERVAL)
            else:
                self._send_all(self.dtls_step(now))
            self._progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), HANDSHAKE_POLL)
        step = "DTLS handshake" if self.ice_ok else "ICE (no Binding success)"
        raise ConnectError(f"{step} did not finish in {timeout:.0f} s")

    def on_connected(self) -> None:
        """Called once SRTP is ready; publishers start their clocks here."""

    # -- periodic ----------------------------------------------------------------------------

    def send_check(self, *, use_candidate: bool) -> None:
        """Send one connectivity (or consent) check to the server."""
        self._send(self.check(use_candidate=use_candidate))

    def keep_alive(self, now: float) -> None:
        """Consent freshness (RFC 7675): the server ends sessions silent for --session-timeout."""
        if self.srtp is not None and now >= self.next_consent:
            self.consent_sent += 1
            self.send_check(use_candidate=False)
            self.next_consent = now + random.uniform(*self.consent_interval)

    # -- I/O ---------------------------------------------------------------------------------

    def _send(self, data: bytes) -> bool:
        try:
            self.sock.send(data)
        except OSError:
            return False
        return True

    def _send_all(self, datagrams: list[bytes]) -> None:
        for datagram in datagrams:
            self._send(datagram)

    def on_readable(self) -> None:
        recv = self.sock.recv
        for _ in range(READ_BATCH):
            try:
                data = recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # ICMP port unreachable from an earlier send: nothing to read
            self.on_datagram(data)

    def on_datagram(self, data: bytes) -> None:
        """Demux by first byte (RFC 7983) for everything but the players' media hot path."""
        kind = classify(data)
        if kind is STUN:
            assert self.answer is not None
            reply = self.on_stun(data, self.answer.candidate, time.monotonic())
            if reply is not None:
                self._send(reply)
        elif kind is DTLS:
            self._send_all(self.on_dtls(data, time.monotonic()))
        elif kind is SRTP and len(data) > 1 and 191 < data[1] < 224:
            self.rtcp_in += 1
            self.on_rtcp(data)
        else:
            self.other_in += 1

    def on_rtcp(self, data: bytes) -> None:
        """RTCP from the server; only publishers act on it (PLI)."""

    def close(self, *, goodbye: bool | None = None) -> None:
        """Say goodbye over DTLS when the route has no DELETE, then free the socket.

        `goodbye` overrides that choice, so churn can leave by close_notify or by vanishing.
        """
        if goodbye is None:
            goodbye = self.resource is None
        if self.dtls is not None and goodbye:
            self._send_all(self.dtls.close())
        if self._reading:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False
        self.sock.close()

    def report(self) -> dict:
        """Per-client numbers for the JSON result."""
        return {
            "index": self.index,
            "role": self.role,
            "stream": self.target.stream,
            "connected": self.srtp is not None,
            "error": self.error,
            "consent_sent": self.consent_sent,
            "consent_ok": self.consent_ok,
            "rtcp_in": self.rtcp_in,
        }


class SyntheticMedia:
    """Plaintext synthetic VP8 and Opus RTP of one publisher, with no clock of its own: the
    caller says when a frame is due and what send time to stamp in the payload."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.audio_ssrc = secrets.randbits(32) or 1
        self.video_ssrc = secrets.randbits(32) or 2
        self.audio_seq = secrets.randbits(16)
        self.video_seq = secrets.randbits(16)
        self.audio_ts0 = secrets.randbits(32)
        self.video_ts0 = secrets.randbits(32)
        self.frames = 0
        self.audio_packets = 0
        self.keyframes = 0
        self._video_buf = bytearray(12 + VIDEO_PAYLOAD)
        self._audio_buf = bytearray(12 + AUDIO_PAYLOAD)
        self._audio_buf[12 : 12 + len(_OPUS_TOC)] = _OPUS_TOC

    def restart_ssrcs(self) -> None:
        """New SSRCs and sequence numbers, as a browser does when it replaces its tracks."""
        self.audio_ssrc = secrets.randbits(32) or 1
        self.video_ssrc = secrets.randbits(32) or 2
        self.audio_seq = secrets.randbits(16)
        self.video_seq = secrets.randbits(16)

    def _packet(
        self, buf: bytearray, marker_pt: int, seq: int, ts: int, ssrc: int, ns: int
    ) -> bytes:
        RTP_HEADER.pack_into(buf, 0, 0x80, marker_pt, seq, ts, ssrc)
        STAMP.pack_into(buf, 12 + STAMP_OFFSET, self.index, ns)
        return bytes(buf)

    def video_frame(self, keyframe: bool, stamp_ns: int) -> list[bytes]:
        """The packets of the next video frame, the marker bit on the last."""
        if keyframe:
            self.keyframes += 1
        count = KEYFRAME_PACKETS if keyframe else VIDEO_PACKETS_PER_FRAME
        ts = (self.video_ts0 + self.frames * VIDEO_TS_STEP) & 0xFFFFFFFF
        buf = self._video_buf
        packets = []
        for i in range(count):
            if i == 0:
                start = _VP8_KEY_START if keyframe else _VP8_INTER_START
            else:
                start = _VP8_CONTINUATION
            buf[12 : 12 + STAMP_OFFSET] = start
            marker = 0x80 if i == count - 1 else 0
            packets.append(
                self._packet(buf, marker | VIDEO_PT, self.video_seq, ts, self.video_ssrc, stamp_ns)
            )
            self.video_seq = (self.video_seq + 1) & 0xFFFF
        self.frames += 1
        return packets

    def audio_packet(self, stamp_ns: int) -> bytes:
        """The next 20 ms Opus packet."""
        ts = (self.audio_ts0 + self.audio_packets * AUDIO_TS_STEP) & 0xFFFFFFFF
        packet = self._packet(
            self._audio_buf, AUDIO_PT, self.audio_seq, ts, self.audio_ssrc, stamp_ns
        )
        self.audio_seq = (self.audio_seq + 1) & 0xFFFF
        self.audio_packets += 1
        return packet


# A simulcast publisher's layers, lowest first, and the packets per frame of each (about 0.3,
# 0.6 and 1.2 Mbit/s of video at 30 fps).
SIMULCAST_LAYERS = (("q", 1), ("h", 2), ("f", 4))


class SimulcastLayer:
    """One layer's RTP stream: its own SSRC, numbering, and VP8 picture ID and TL0PICIDX."""

    def __init__(self, rid: str, packets_per_frame: int) -> None:
        self.rid = rid
        self.packets_per_frame = packets_per_frame
        self.ssrc = secrets.randbits(32) or 3
        self.seq = secrets.randbits(16)
        self.ts0 = secrets.randbits(32)
        self.picture_id = secrets.randbits(15)
        self.tl0 = secrets.randbits(8)


# Temporal layer of each frame in a four-frame cycle, as VP8 with three temporal layers (L1T3).
TEMPORAL_PATTERN = (0, 2, 1, 2)


class SimulcastMedia(SyntheticMedia):
    """SyntheticMedia whose video is three simulcast layers. Each VP8 payload starts with an
    extended descriptor (15-bit picture ID, TL0PICIDX, TID) as Chromium sends, so a layer
    switch shows whether the server keeps them continuous and frames can be thinned out."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.layers = [SimulcastLayer(rid, count) for rid, count in SIMULCAST_LAYERS]

    def simulcast_frame(self, keyframe: bool, stamp_ns: int) -> list[tuple[bytes, bytes]]:
        """(rid, packet without extensions) for the next frame of every layer."""
        if keyframe:
            self.keyframes += 1
        out = []
        buf = self._video_buf
        for layer in self.layers:
            ts = (layer.ts0 + self.frames * VIDEO_TS_STEP) & 0xFFFFFFFF
            count = layer.packets_per_frame * (3 if keyframe else 1)
            picture = layer.picture_id
            tid = 0 if keyframe else TEMPORAL_PATTERN[self.frames % len(TEMPORAL_PATTERN)]
            if tid == 0:
                layer.tl0 = (layer.tl0 + 1) & 0xFF
            for i in range(count):
                tag = (0x50 if keyframe else 0x51) if i == 0 else 0x00
                descriptor = [0x90 if i == 0 else 0x80, 0xE0, 0x80 | picture >> 8, picture & 0xFF]
                start = bytes([*descriptor, layer.tl0, tid << 6 | 0x20, tag, 0x2D, 0x00])
                buf[12 : 12 + STAMP_OFFSET] = start.ljust(STAMP_OFFSET, b"\x00")
                marker = 0x80 if i == count - 1 else 0
                packet = self._packet(buf, marker | VIDEO_PT, layer.seq, ts, layer.ssrc, stamp_ns)
                out.append((layer.rid.encode(), packet))
                layer.seq = (layer.seq + 1) & 0xFFFF
            layer.picture_id = (picture + 1) & 0x7FFF
        self.frames += 1
        return out


def asks_keyframe(packets: list[rtp.RtcpPacket]) -> bool:
    """True when plaintext RTCP from the server holds a PLI or FIR."""
    return any(
        p.packet_type == rtp.RTCP_PSFB and p.fmt in (rtp.FMT_PLI, rtp.FMT_FIR) for p in packets
    )


class Publisher(Client):
    """Sends synthetic VP8 and Opus RTP at real-time rates, keyframes on schedule or on PLI."""

    role = "publish"

    def __init__(
        self, index: int, target: Target, certificate: Certificate, simulcast: bool = False
    ) -> None:
        super().__init__(index, target, certificate)
        self.media = SimulcastMedia(index) if simulcast else SyntheticMedia(index)
        self.sent = {AUDIO: 0, VIDEO: 0}
        self.send_errors = 0
        self.plis = 0
        self.skipped = 0
        self._keyframe_wanted = True
        self._next_keyframe = 0.0
        self._start = 0.0
        self._running = False
        self._handles: list[asyncio.TimerHandle] = []

    @property
    def keyframes(self) -> int:
        return self.media.keyframes

    def offer(self) -> str:
        return build_offer(
            self.ufrag,
            self.pwd,
            self.certificate.fingerprint,
            send=True,
            audio_ssrc=self.media.audio_ssrc,
            video_ssrc=self.media.video_ssrc,
            rids=tuple(layer.rid for layer in getattr(self.media, "layers", ())),
        )

    def on_connected(self) -> None:
        self._running = True
        self._start = self._loop.time()
        self._next_keyframe = self._start + KEYFRAME_EVERY
        self._handles = [
            self._loop.call_at(self._start, self._video_tick),
            self._loop.call_at(self._start, self._audio_tick),
        ]

    def stop(self) -> None:
        """Stop sending media (the session stays up for the drain and DELETE)."""
        self._running = False
        for handle in self._handles:
            handle.cancel()
        self._handles = []

    def _send_packet(self, packet: bytes) -> None:
        try:
            self.sock.send(self.srtp.protect_rtp(packet))  # type: ignore[union-attr]
        except OSError:
            self.send_errors += 1

    def _video_tick(self) -> None:
        if not self._running:
            return
        now = self._loop.time()
        media = self.media
        for _ in range(MAX_CATCH_UP):
            due = self._start + media.frames / VIDEO_FPS
            if due > now:
                break
            self._send_frame(now)
        due = self._start + media.frames / VIDEO_FPS
        if due <= now:  # far behind: skip ahead rather than burst
            behind = int((now - due) * VIDEO_FPS) + 1
            media.frames += behind
            self.skipped += behind
            due = self._start + media.frames / VIDEO_FPS
        self._handles[0] = self._loop.call_at(due, self._video_tick)

    def _send_frame(self, now: float) -> None:
        keyframe = self._keyframe_wanted or now >= self._next_keyframe
        if keyframe:
            self._keyframe_wanted = False
            self._next_keyframe = now + KEYFRAME_EVERY
        media = self.media
        if isinstance(media, SimulcastMedia):
            layered = media.simulcast_frame(keyframe, time.time_ns())
            packets = [bytes(rtp.add_extensions(p, [(RID_ID, rid)])[0]) for rid, p in layered]
        else:
            packets = media.video_frame(keyframe, time.time_ns())
        for packet in packets:
            self._send_packet(packet)
        self.sent[VIDEO] += len(packets)

    def _audio_tick(self) -> None:
        if not self._running:
            return
        now = self._loop.time()
        media = self.media
        for _ in range(MAX_CATCH_UP):
            due = self._start + media.audio_packets / AUDIO_PPS
            if due > now:
                break
            self._send_packet(media.audio_packet(time.time_ns()))
            self.sent[AUDIO] += 1
        due = self._start + media.audio_packets / AUDIO_PPS
        if due <= now:
            behind = int((now - due) * AUDIO_PPS) + 1
            media.audio_packets += behind
            self.skipped += behind
            due = self._start + media.audio_packets / AUDIO_PPS
        self._handles[1] = self._loop.call_at(due, self._audio_tick)

    def on_rtcp(self, data: bytes) -> None:
        """A PLI or FIR from the server asks for a keyframe: the next frame is one."""
        if self.srtp is None:
            return
        try:
            packets = rtp.split_rtcp(self.srtp.unprotect_rtcp(data))
        except (pylibsrtp.Error, rtp.RtpError):
            return
        if asks_keyframe(packets):
            self.plis += 1
            self._keyframe_wanted = True

    def report(self) -> dict:
        info = super().report()
        info.update(
            sent=dict(self.sent),
            send_errors=self.send_errors,
            keyframes=self.keyframes,
            plis=self.plis,
            skipped=self.skipped,
        )
        return info


class Track:
    """Receive counters of one SSRC at a player."""

    __slots__ = ("kind", "late", "lost", "next_seq", "received")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.next_seq = -1
        self.received = 0
        self.lost = 0  # packets skipped over by sequence number
        self.late = 0  # packets behind the highest seen: reordered or duplicated

    def count(self, seq: int) -> None:
        """Count one packet by its sequence number: in order, after a gap, or late."""
        expected = self.next_seq
        if expected == seq or expected < 0:
            self.next_seq = (seq + 1) & 0xFFFF
        else:
            gap = (seq - expected) & 0xFFFF
            if gap < 0x8000:
                self.lost += gap
                self.next_seq = (seq + 1) & 0xFFFF
            else:
                self.late += 1
        self.received += 1


def arrival_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The SO_TIMESTAMPNS stamp among recvmsg's ancillary items, in ns; 0 when there is none."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(value)
            return seconds * 1_000_000_000 + nanoseconds
    return 0


class Player(Client):
    """Counts every packet per SSRC from the clear header; decrypts every k-th for latency."""

    role = "play"

    def __init__(
        self,
        index: int,
        target: Target,
        certificate: Certificate,
        *,
        publisher_index: int,
        sample_every: int,
        samples: list[float],
        arrivals: list[float] | None = None,
    ) -> None:
        super().__init__(index, target, certificate)
        self.publisher_index = publisher_index
        self.sample_every = max(1, sample_every)
        self.samples = samples  # shared by the worker: latency in ms since its last report
        # Shared too: latency in ms to the kernel's arrival stamp, of the same packets.
        self.arrivals = arrivals if sys.platform == "linux" else None
        if self.arrivals is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.tracks: dict[bytes, Track] = {}
        self.received = 0
        self.last_received = 0
        self.wrong_source = 0
        self.unprotect_errors = 0
        self._countdown = random.randint(1, self.sample_every)

    def _track(self, ssrc: bytes) -> Track:
        kind = "other"
        if self.answer is not None:
            value = int.from_bytes(ssrc, "big")
            for mid, announced in self.answer.ssrcs.items():
                if announced == value:
                    kind = self.answer.kinds.get(mid, "other")
        track = self.tracks[ssrc] = Track(kind)
        return track

    def on_readable(self) -> None:
        """One datagram per call: the server's fan-out rarely queues two on one player socket,
        so reading on until EAGAIN would mostly buy a failing syscall and an exception; epoll
        is level-triggered and calls again while data remains."""
        arrived = 0
        try:
            if self._countdown == 1 and self.arrivals is not None:  # the next one is sampled
                data, ancillary, _, _ = self.sock.recvmsg(2048, TIMESTAMP_SPACE)
                arrived = arrival_ns(ancillary)
            else:
                data = self.sock.recv(2048)
        except OSError:
            return  # EAGAIN, or ICMP port unreachable from an earlier send
        first = data[0] if data else 0
        if 127 < first < 192 and len(data) >= 12 and not 191 < data[1] < 224:
            ssrc = data[8:12]
            track = self.tracks.get(ssrc)
            if track is None:
                track = self._track(ssrc)
            track.count(data[2] << 8 | data[3])
            self.received += 1
            self._countdown -= 1
            if not self._countdown:
                self._countdown = self.sample_every
                self._sample(data, arrived)
        else:
            self.on_datagram(data)

    def _sample(self, data: bytes, arrived: int) -> None:
        """Decrypt one packet and record its one-way latency from the publisher's stamp: to
        now, and to `arrived` (the kernel's stamp in ns, 0 without one)."""
        srtp = self.srtp
        if srtp is None:
            return
        try:
            plain = srtp.unprotect_rtp(data)
            start, _ = rtp.payload_bounds(plain)
            publisher, sent_ns = STAMP.unpack_from(plain, start + STAMP_OFFSET)
        except (pylibsrtp.Error, rtp.RtpError, struct.error):
            self.unprotect_errors += 1
            return
        if publisher != self.publisher_index:
            self.wrong_source += 1
            return
        self.samples.append((time.time_ns() - sent_ns) / 1e6)
        if arrived and self.arrivals is not None:
            self.arrivals.append((arrived - sent_ns) / 1e6)

    def counts(self) -> tuple[int, int, int]:
        """(received, lost, late) over all tracks; lost nets out packets that came late."""
        received = lost = late = 0
        for track in self.tracks.values():
            received += track.received
            lost += track.lost
            late += track.late
        return received, max(0, lost - late), late

    def report(self) -> dict:
        info = super().report()
        by_kind: dict[str, int] = {}
        for track in self.tracks.values():
            by_kind[track.kind] = by_kind.get(track.kind, 0) + track.received
        received, lost, late = self.counts()
        info.update(
            publisher=self.publisher_index,
            received=received,
            by_kind=by_kind,
            lost=lost,
            late=late,
            wrong_source=self.wrong_source,
            unprotect_errors=self.unprotect_errors,
            other_in=self.other_in,
        )
        return info
