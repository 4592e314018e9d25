"""The whole media plane in memory: a real Router and UdpEndpoint, sans-IO peers, a fake clock.

No socket is opened. The endpoint and the router send through a `MemorySocket` that hands each
datagram to a `Network`, which holds it for its link's delay (dropping, delaying, reordering it
as configured) and then calls `endpoint.datagram_received` or the peer's `receive`. Sessions are
created the way the HTTP handlers create them: offer text -> signaling.sdp.parse /
signaling.sdp.negotiate -> router.publish / router.play -> signaling.sdp.answer.render_answer
-> bench.sdp.parse_answer.

Peers are bench.client's `Transport` (client ICE, DTLS, SRTP) with synthetic media on top. The
network's randomness (loss, jitter) comes from one `random.Random(seed)`, and each server's
router gets a seeded one of its own (session ids, server ICE credentials, SSRCs, sequence
starts); the peers' own credentials and SSRCs still come from `secrets`.

Servers run their timers the way sfu/io/server.py does: `router.handle_timer(now)` at every step,
so DTLS retransmission follows the fake clock (sfu/protocol/dtls.py), except one case: a DTLS
client's final flight is resent by OpenSSL, on its own wall clock. The peers here are such
clients, so a lost server Finished is not repaired in fake time; set loss after `connect` returns.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

import pylibsrtp

from bench.client import (
    AUDIO_PPS,
    KEYFRAME_EVERY,
    SIMULCAST_LAYERS,
    VIDEO_FPS,
    SimulcastMedia,
    SyntheticMedia,
    Transport,
    asks_keyframe,
)
from bench.sdp import (
    AUDIO_LEVEL_ID,
    RID_ID,
    TRANSPORT_CC_ID,
    VIDEO_PT,
    VIDEO_RTX_PT,
    build_offer,
    parse_answer,
)
from sfu.config import MediaConfig
from sfu.io.udp import UdpEndpoint
from sfu.media import PeerParams
from sfu.protocol import ice
from sfu.protocol.certificate import Certificate
from sfu.protocol.datachannel import (
    ChannelMessage,
    ChannelOptions,
    DataChannels,
    DataEvent,
    DataReady,
)
from sfu.protocol.keyframes import vp8_keyframe_start
from sfu.protocol.receiver import ReceptionStats
from sfu.protocol.simulcast import vp8_picture_fields, vp8_temporal_id
from sfu.protocol.twcc import FMT_TRANSPORT_CC, TwccRecorder
from sfu.routing.router import PLAY, PUBLISH, SUBSCRIBE, Router
from sfu.session.peer import PeerSession
from sfu.session.table import SessionTable
from sfu.session.transport import Address
from sfu.wire import rtp
from sfu.wire.audio_level import audio_level_element
from sfu.wire.demux import DTLS, SRTP, STUN, classify
from sfu.wire.rtp import TRANSPORT_CC_URI
from signaling.sdp.answer import render_answer
from signaling.sdp.negotiate import negotiate_play, negotiate_publish, negotiate_subscribe
from signaling.sdp.parse import (
    MAX_MEDIA_SECTIONS,
    MAX_ROOM_MEDIA_SECTIONS,
    Offer,
    parse_offer,
)

SERVER_ADDRESS: Address = ("10.0.0.1", 8000)
TICK = 0.005  # fake-clock step: 5 ms, finer than any timer the server or peers run
START = 1000.0  # fake-clock origin; any positive value works
MAX_DELIVERIES_PER_STEP = 100_000
CHECK_EVERY = 0.1  # a connecting peer's connectivity checks
CONSENT_EVERY = 2.0  # a connected peer's consent checks
REPORT_EVERY = 1.0  # peers' RTCP reports (SR from publishers, RR from players)
MAX_MESSAGE_SIZE = 256 * 1024  # what a data peer accepts, as browsers do
CLIENT_CERTIFICATE = Certificate.generate()  # shared by all peers: generating one costs ms


class Receiver(Protocol):
    """Whatever the network can deliver a datagram to besides a server's endpoint."""

    def receive(self, data: bytes, src: Address, now: float) -> None: ...


@dataclass
class Link:
    """One direction between a peer and a server: loss probability, delay and its jitter
    (a uniform extra delay, which reorders packets when it exceeds their spacing), and a
    bottleneck: `rate` bits per second (0: none) with a queue of at most `queue` seconds,
    past which packets are dropped as a router's tail drop does."""

    loss: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    rate: float = 0.0
    queue: float = 0.2
    lose_dtls: int = 0  # drop this many DTLS datagrams next (a lost handshake flight)
    sent: int = 0
    dropped: int = 0
    busy_until: float = 0.0  # when the bottleneck has sent what is queued


class MemorySocket:
    """Stands where the UDP socket would: `sendto` queues the datagram on the network."""

    def __init__(self, network: Network, address: Address) -> None:
        self.network = network
        self.address = address

    def sendto(self, data: bytes, addr: Address) -> int:
        self.network.send(self.address, addr, bytes(data))
        return len(data)

    def getsockname(self) -> Address:
        return self.address


class Network:
    """Datagrams in flight, delivered by the fake clock through each peer's links."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.now = START
        self.servers: dict[Address, Server] = {}
        self.peers: dict[Address, Peer] = {}
        self.receivers: dict[Address, Receiver] = {}  # anything else that listens (relay ends)
        self.unroutable = 0
        self._queue: list[tuple[float, int, Address, Address, bytes]] = []
        self._order = 0

    def _link(self, src: Address, dst: Address) -> Link | None:
        if src in self.servers:
            peer = self.peers.get(dst)
            return peer.down if peer is not None else None
        peer = self.peers.get(src)
        return peer.up if peer is not None else None

    def send(self, src: Address, dst: Address, data: bytes) -> None:
        link = self._link(src, dst)
        delay = 0.0
        if link is not None:
            link.sent += 1
            if link.lose_dtls and classify(data) is DTLS:
                link.lose_dtls -= 1
                link.dropped += 1
                return
            if link.loss and self.rng.random() < link.loss:
                link.dropped += 1
                return
            delay = link.delay + (self.rng.uniform(0, link.jitter) if link.jitter else 0.0)
            if link.rate:
                start = max(self.now, link.busy_until)
                if start - self.now > link.queue:
                    link.dropped += 1
                    return
                link.busy_until = start + 8 * len(data) / link.rate
                delay += link.busy_until - self.now
            elif link.busy_until > self.now:  # a lifted bottleneck still drains in order
                delay += link.busy_until - self.now
        self._order += 1
        heapq.heappush(self._queue, (self.now + delay, self._order, src, dst, data))

    def deliver_due(self) -> None:
        """Deliver everything due by now, including answers to it that have no delay."""
        queue = self._queue
        for _ in range(MAX_DELIVERIES_PER_STEP):
            if not queue or queue[0][0] > self.now:
                return
            _, _, src, dst, data = heapq.heappop(queue)
            server = self.servers.get(dst)
            receiver = self.peers.get(dst) or self.receivers.get(dst)
            if server is not None:
                server.endpoint.datagram_received(data, src, self.now)
            elif receiver is not None:
                receiver.receive(data, src, self.now)
            else:
                self.unroutable += 1
        raise RuntimeError("more than MAX_DELIVERIES_PER_STEP datagrams in one step: a loop?")


class Server:
    """A Router and its UdpEndpoint on a memory socket, with sfu/io/server.py's timer cadence."""

    def __init__(
        self,
        network: Network,
        address: Address,
        config: MediaConfig,
        certificate: Certificate,
        rng: random.Random,
    ) -> None:
        self.network = network
        self.address = address
        self.certificate = certificate
        self.socket = MemorySocket(network, address)
        sessions = SessionTable()
        self.endpoint = UdpEndpoint(sessions)
        self.endpoint.sock = self.socket  # type: ignore[assignment]
        self.router = Router(
            config,
            certificate,
            self.endpoint.send,
            sessions,
            self.endpoint.sendto_for,
            rng,
        )
        network.servers[address] = self

    def tick(self, now: float) -> None:
        """What the server's ticker does when it wakes: whatever timers are due."""
        next_timer = self.router.next_timer()
        if next_timer is not None and now >= next_timer:
            self.router.handle_timer(now)

    def open_session(self, peer: Peer, offer_text: str) -> PeerSession:
        """What signaling's start_session does, minus HTTP: negotiate, create, answer. A
        subscriber's stream name is its room and participant, "ROOM/PARTICIPANT"."""
        router = self.router
        room = peer.role == SUBSCRIBE
        offer = parse_offer(offer_text, MAX_ROOM_MEDIA_SECTIONS if room else MAX_MEDIA_SECTIONS)
        if peer.role == PUBLISH:
            params = negotiate_publish(offer)
            session = router.publish(peer.stream, params, self.network.now)
        elif peer.role == SUBSCRIBE:
            params = negotiate_subscribe(offer)
            room, _, participant = peer.stream.partition("/")
            session = router.subscribe(room, participant, params, self.network.now)
        else:
            params = negotiate_play(offer, router.preferred_codecs(peer.stream))
            session = router.play(peer.stream, params, self.network.now)
        self.answer(peer, offer, params, session)
        return session

    def renegotiate(self, peer: Peer, kinds: tuple[str, ...]) -> None:
        """A subscriber's new offer of `kinds` m-lines (PATCH), same ICE credentials."""
        offer = parse_offer(peer.offer(kinds), MAX_ROOM_MEDIA_SECTIONS)
        params = negotiate_subscribe(offer)
        session = self.router.renegotiate(peer.session.id, params, self.network.now)
        self.answer(peer, offer, session.peer, session)  # the earlier m-lines as they were

    def answer(self, peer: Peer, offer: Offer, params: PeerParams, session: PeerSession) -> None:
        """Render the answer a new or renegotiated session gets into `peer.answer_text`."""
        sends = peer.role != PUBLISH
        ssrcs = session.handler.ssrcs() if sends else None  # type: ignore[union-attr]
        answer = render_answer(
            offer,
            params,
            direction="sendonly" if sends else "recvonly",
            ice_ufrag=session.ice.local_ufrag,
            ice_pwd=session.ice.local_pwd,
            fingerprint=self.certificate.fingerprint,
            candidates=[self.address],
            ssrcs=ssrcs,
            stream_id=peer.stream.replace("/", "-"),
        )
        peer.answer_text = answer


@dataclass
class Received:
    """One RTP packet as a player decrypted it."""

    at: float
    ssrc: int
    payload_type: int
    seq: int
    ts: int
    keyframe: bool  # the first packet of a VP8 keyframe
    original_seq: int | None = None  # for RTX: the sequence number it repairs
    picture_id: int | None = None  # VP8 15-bit picture ID, when the descriptor has one
    tl0: int | None = None  # VP8 TL0PICIDX, when the descriptor has one
    temporal_id: int | None = None  # VP8 TID, when the descriptor has one


@dataclass
class PeerStats:
    """What a peer saw of the server's RTCP and checks."""

    plis: int = 0
    nacks: list[int] = field(default_factory=list)
    receiver_reports: list[tuple[float, rtp.ReportBlock]] = field(default_factory=list)
    sender_reports: list[tuple[float, int]] = field(default_factory=list)  # (at, SSRC)
    transport_feedback: list[float] = field(default_factory=list)
    unprotect_errors: int = 0


class Peer:
    """A sans-IO WebRTC peer: publishes synthetic VP8/Opus or plays and checks what it gets."""

    def __init__(
        self,
        network: Network,
        server: Server,
        role: str,
        stream: str,
        address: Address,
        *,
        rtx: bool = True,
        transport_cc: bool = True,
        auto_nack: bool = False,
        simulcast: bool = False,
        kinds: tuple[str, ...] = ("audio", "video"),
        audio_level: bool = False,
        data: bool = False,
    ) -> None:
        self.network = network
        self.server = server
        self.role = role
        self.stream = stream
        self.address = address
        self.up = Link()
        self.down = Link()
        self.transport = Transport(CLIENT_CERTIFICATE)
        media_type = SimulcastMedia if simulcast else SyntheticMedia
        self.media = media_type(len(network.peers)) if role == PUBLISH else None
        self.auto_nack = auto_nack
        self.answer_text = ""
        self.sending = True  # a publisher's media; False pauses it
        self.silent = False  # sends nothing at all (a peer that vanished)
        self.level = -127  # dBov of its audio (RFC 6464, voice bit set) when it offered levels
        self.stats = PeerStats()
        self.received: list[Received] = []
        self.rtcp_ssrc = 0x5EED0000 | len(network.peers)
        self._keyframe_wanted = True
        self._next_check = network.now
        self._next_frame = self._next_audio = self._next_report = network.now
        self._next_keyframe = network.now
        self._reception: dict[int, ReceptionStats] = {}
        self._highest: dict[int, int] = {}
        self._twcc = TwccRecorder()
        self._twcc_media_ssrc = 0
        self._transport_seq = 0
        network.peers[address] = self
        self._offer_options = {
            "rtx": rtx,
            "transport_cc": transport_cc,
            "simulcast": simulcast,
            "audio_level": audio_level,
            "data": data,
        }
        self.session = server.open_session(self, self.offer(kinds))
        self.transport.accept_answer(parse_answer(self.answer_text))
        self._extension_up = TRANSPORT_CC_URI in self.answer_text
        # Data channels, the client end (sfu.protocol.datachannel run with client=True).
        self.channels: DataChannels | None = None
        self.data_events: list[DataEvent] = []
        self._sctp_started = False
        if data and "m=application 0 " not in self.answer_text:
            self.channels = DataChannels(
                random.Random(address[0]),
                max_message_size=MAX_MESSAGE_SIZE,
                peer_max_message_size=MAX_MESSAGE_SIZE,
                client=True,
            )
            self.transport.dtls.keep_application_data = True  # type: ignore[union-attr]

    def offer(self, kinds: tuple[str, ...]) -> str:
        """This peer's offer, with an m-line per entry of `kinds` (a subscriber's slots)."""
        options = self._offer_options
        return build_offer(
            self.transport.ufrag,
            self.transport.pwd,
            CLIENT_CERTIFICATE.fingerprint,
            send=self.role == PUBLISH,
            audio_ssrc=self.media.audio_ssrc if self.media else 0,
            video_ssrc=self.media.video_ssrc if self.media else 0,
            rtx=options["rtx"],
            transport_cc=options["transport_cc"],
            rids=tuple(rid for rid, _ in SIMULCAST_LAYERS)
            if options["simulcast"] and self.role == PUBLISH
            else (),
            kinds=kinds,
            audio_level=options["audio_level"],
            data=options["data"],
        )

    # -- network ---------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.transport.srtp is not None

    def send(self, data: bytes) -> None:
        if not self.silent:
            self.network.send(self.address, self.server.address, data)

    def move_to(self, address: Address) -> None:
        """The peer's address changes (NAT rebinding): datagrams to the old one are lost."""
        del self.network.peers[self.address]
        self.address = address
        self.network.peers[address] = self

    def restart_ice(self) -> None:
        """New credentials on both sides, as a PATCH with a new ice-ufrag/pwd does."""
        transport = self.transport
        transport.ufrag, transport.pwd = ice.new_ufrag(), ice.new_pwd()
        session = self.server.router.restart_ice(self.session.id, transport.ufrag, transport.pwd)
        assert session is not None, "the server no longer knows this session"
        assert transport.answer is not None
        transport.answer = dataclasses.replace(
            transport.answer, ice_ufrag=session.ice.local_ufrag, ice_pwd=session.ice.local_pwd
        )

    def close_dtls(self) -> None:
        """Leave with a DTLS close_notify, as a browser closing its peer connection does."""
        assert self.transport.dtls is not None
        for record in self.transport.dtls.close():
            self.send(record)
        self.silent = True

    def receive(self, data: bytes, src: Address, now: float) -> None:
        kind = classify(data)
        if kind is STUN:
            reply = self.transport.on_stun(data, src, now)
            if reply is not None:
                self.send(reply)
        elif kind is DTLS:
            for record in self.transport.on_dtls(data, now):
                self.send(record)
            if self.channels is not None:
                for packet in self.transport.dtls.take_received():  # type: ignore[union-attr]
                    self.send_sctp(self.channels.receive(packet, now))
                self.data_events += self.channels.poll_events()
        elif kind is SRTP and self.transport.srtp is not None:
            try:
                if rtp.is_rtcp(data):
                    self._on_rtcp(self.transport.srtp.unprotect_rtcp(data), now)
                else:
                    self._on_rtp(self.transport.srtp.unprotect_rtp(data), now)
            except (pylibsrtp.Error, rtp.RtpError):
                self.stats.unprotect_errors += 1

    def _on_rtcp(self, plain: bytes, now: float) -> None:
        packets = rtp.split_rtcp(plain)
        if asks_keyframe(packets):
            self.stats.plis += 1
            self._keyframe_wanted = True
        for item in packets:
            if item.packet_type == rtp.RTCP_RR:
                self.stats.receiver_reports += [(now, b) for b in rtp.report_blocks(item)]
            elif item.packet_type == rtp.RTCP_SR:
                self.stats.sender_reports.append((now, item.ssrc))
            elif item.packet_type == rtp.RTCP_RTPFB and item.fmt == rtp.FMT_NACK:
                self.stats.nacks += rtp.nack_sequence_numbers(item)
            elif item.packet_type == rtp.RTCP_RTPFB and item.fmt == FMT_TRANSPORT_CC:
                self.stats.transport_feedback.append(now)

    def _on_rtp(self, plain: bytes, now: float) -> None:
        ssrc = int.from_bytes(plain[8:12], "big")
        seq = plain[2] << 8 | plain[3]
        ts = int.from_bytes(plain[4:8], "big")
        pt = plain[1] & 0x7F
        start, end = rtp.payload_bounds(plain)
        payload = plain[start:end]
        twcc = rtp.find_extension(plain, TRANSPORT_CC_ID)
        if twcc is not None and len(twcc) >= 2:
            self._twcc.record(twcc[0] << 8 | twcc[1], int(now * 1_000_000))
            self._twcc_media_ssrc = ssrc
        if pt == VIDEO_RTX_PT:
            original = int.from_bytes(payload[:2], "big")
            self.received.append(Received(now, ssrc, pt, seq, ts, False, original))
            return
        keyframe = pt == VIDEO_PT and vp8_keyframe_start(payload)
        picture_at, bits, tl0_at = vp8_picture_fields(payload, 0) if pt == VIDEO_PT else (-1, 0, -1)
        picture = None
        if bits == 15:
            picture = (payload[picture_at] & 0x7F) << 8 | payload[picture_at + 1]
        tl0 = payload[tl0_at] if tl0_at >= 0 else None
        tid = vp8_temporal_id(payload, 0) if pt == VIDEO_PT else None
        self.received.append(Received(now, ssrc, pt, seq, ts, keyframe, None, picture, tl0, tid))
        clock = 90000 if pt == VIDEO_PT else 48000
        reception = self._reception.setdefault(ssrc, ReceptionStats(clock))
        reception.update(seq, ts, now)
        highest = self._highest.get(ssrc)
        gap = (seq - highest) & 0xFFFF if highest is not None else 1
        if gap < 0x8000:
            self._highest[ssrc] = seq
            if self.auto_nack and pt == VIDEO_PT and gap > 1:
                missing = [(highest + i) & 0xFFFF for i in range(1, gap)]  # type: ignore[operator]
                self.send_rtcp(rtp.nack(self.rtcp_ssrc, ssrc, missing))

    # -- output ----------------------------------------------------------------------------------

    def send_rtcp(self, plain: bytes) -> None:
        if self.transport.srtp is not None:
            self.send(self.transport.srtp.protect_rtcp(plain))

    def send_pli(self, media_ssrc: int) -> None:
        self.send_rtcp(rtp.pli(self.rtcp_ssrc, media_ssrc))

    def _send_rtp(self, plain: bytes, rid: bytes = b"", level: bool = False) -> None:
        """Protect and send, with a transport-wide sequence number when the answer agreed,
        a simulcast layer's RID, and an audio packet's level when it offered levels."""
        elements = [(RID_ID, rid)] if rid else []
        if level:
            elements.append((AUDIO_LEVEL_ID, audio_level_element(self.level, True)))
        if self._extension_up:
            elements.append((TRANSPORT_CC_ID, self._transport_seq.to_bytes(2, "big")))
            self._transport_seq = (self._transport_seq + 1) & 0xFFFF
        if elements:
            plain = bytes(rtp.add_extensions(plain, elements)[0])
        self.send(self.transport.srtp.protect_rtp(plain))  # type: ignore[union-attr]

    # -- time ------------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        transport = self.transport
        if transport.srtp is None:
            if not transport.ice_ok and now >= self._next_check:
                self.send(transport.check(use_candidate=True))
                self._next_check = now + CHECK_EVERY
            for record in transport.dtls_step(now):
                self.send(record)
            return
        if now >= self._next_check:
            self.send(transport.check(use_candidate=False))
            self._next_check = now + CONSENT_EVERY
        if self.channels is not None:
            self._data_tick(now)
        if self.media is not None and self.sending:
            self._send_media(now)
        if now >= self._next_report:
            self._send_reports(now)
            self._next_report = now + REPORT_EVERY
        feedback = self._twcc.build(self.rtcp_ssrc, self._twcc_media_ssrc)
        if feedback is not None:
            self.send_rtcp(feedback)

    # -- data channels ---------------------------------------------------------------------------

    def _data_tick(self, now: float) -> None:
        channels = self.channels
        assert channels is not None
        if not self._sctp_started:
            self._sctp_started = True
            self.send_sctp(channels.connect(now))
        at = channels.next_timer()
        if at is not None and now >= at:
            self.send_sctp(channels.handle_timer(now))
            self.data_events += channels.poll_events()

    def send_sctp(self, packets: list[bytes]) -> None:
        for packet in packets:
            for record in self.transport.dtls.send(packet):  # type: ignore[union-attr]
                self.send(record)

    def open_channel(self, options: ChannelOptions) -> int:
        assert self.channels is not None
        stream, packets = self.channels.open(options, self.network.now)
        assert stream is not None
        self.send_sctp(packets)
        return stream

    def send_message(self, stream: int, data: bytes, text: bool = False) -> bool:
        assert self.channels is not None
        ok, packets = self.channels.send(stream, data, text, self.network.now)
        self.send_sctp(packets)
        return ok

    def messages(self) -> list[bytes]:
        """Every data channel message received, in arrival order."""
        return [e.data for e in self.data_events if isinstance(e, ChannelMessage)]

    @property
    def data_up(self) -> bool:
        return any(isinstance(e, DataReady) for e in self.data_events)

    def _send_media(self, now: float) -> None:
        media = self.media
        assert media is not None
        stamp = int(now * 1e9)
        if now >= self._next_frame:
            keyframe = self._keyframe_wanted or now >= self._next_keyframe
            if keyframe:
                self._keyframe_wanted = False
                self._next_keyframe = now + KEYFRAME_EVERY
            if isinstance(media, SimulcastMedia):
                for rid, packet in media.simulcast_frame(keyframe, stamp):
                    self._send_rtp(packet, rid)
            else:
                for packet in media.video_frame(keyframe, stamp):
                    self._send_rtp(packet)
            self._next_frame += 1 / VIDEO_FPS
        if now >= self._next_audio:
            self._send_rtp(media.audio_packet(stamp), level=self._offer_options["audio_level"])
            self._next_audio += 1 / AUDIO_PPS

    def _send_reports(self, now: float) -> None:
        """A publisher's SR per SSRC (for the server's A/V mapping), a player's RR."""
        ntp = int(now * (1 << 32))
        if self.media is not None:
            media = self.media
            frames_ts = media.video_ts0 + media.frames * 90000 // VIDEO_FPS
            audio_ts = media.audio_ts0 + media.audio_packets * 48000 // AUDIO_PPS
            self.send_rtcp(
                rtp.sender_report(media.video_ssrc, ntp, frames_ts, 0, 0)
                + rtp.sender_report(media.audio_ssrc, ntp, audio_ts, 0, 0)
            )
        elif self._reception:
            blocks = [r.report_block(ssrc, now) for ssrc, r in self._reception.items()]
            self.send_rtcp(rtp.receiver_report(self.rtcp_ssrc, blocks))

    # -- checks ----------------------------------------------------------------------------------

    def media_packets(self, payload_type: int) -> list[Received]:
        """Packets of one payload type in arrival order, repairs (RTX) left out."""
        return [r for r in self.received if r.payload_type == payload_type]

    def repaired(self) -> set[int]:
        """Sequence numbers an RTX packet brought back."""
        return {r.original_seq for r in self.received if r.original_seq is not None}


class Harness:
    """Servers, peers and the network between them on one fake clock."""

    def __init__(self, seed: int = 1, config: MediaConfig | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.network = Network(self.rng)
        self.config = config or MediaConfig()
        self._certificate: Certificate | None = None
        self.server = self.add_server(SERVER_ADDRESS)
        self.peers: list[Peer] = []

    @property
    def now(self) -> float:
        return self.network.now

    @property
    def router(self) -> Router:
        return self.server.router

    def add_server(self, address: Address) -> Server:
        if self._certificate is None:
            self._certificate = Certificate.generate()
        rng = random.Random(f"{self.seed} {address}")  # the server's own, apart from the network's
        return Server(self.network, address, self.config, self._certificate, rng)

    def _peer(self, role: str, stream: str, server: Server | None, **options: Any) -> Peer:
        n = len(self.peers)  # never reused, though peers leave the network
        address = (f"10.0.{1 + n // 250}.{n % 250 + 1}", 5000)
        peer = Peer(self.network, server or self.server, role, stream, address, **options)
        self.peers.append(peer)
        return peer

    def simulcast_pair(self, stream: str = "s", **player_options: bool) -> tuple[Peer, Peer]:
        """A connected 3-layer simulcast publisher (SimulcastMedia) and a player."""
        publisher = self.publisher(stream, simulcast=True)
        player = self.player(stream, **player_options)
        self.connect(publisher, player)
        return publisher, player

    def publisher(self, stream: str, server: Server | None = None, **options: bool) -> Peer:
        return self._peer(PUBLISH, stream, server, **options)

    def player(self, stream: str, server: Server | None = None, **options: bool) -> Peer:
        return self._peer(PLAY, stream, server, **options)

    def subscriber(
        self,
        room: str,
        participant: str,
        kinds: tuple[str, ...] = ("audio", "video"),
        **options: bool,
    ) -> Peer:
        """A room participant's subscribe session, an m-line (a slot) per entry of `kinds`."""
        return self._peer(SUBSCRIBE, f"{room}/{participant}", None, kinds=kinds, **options)

    def pair(self, stream: str = "s", **player_options: bool) -> tuple[Peer, Peer]:
        """A connected publisher and player of `stream`, the start of most scenarios."""
        publisher = self.publisher(stream)
        player = self.player(stream, **player_options)
        self.connect(publisher, player)
        return publisher, player

    def step(self, now: float) -> None:
        """Advance the clock to `now`: deliver what is due, run peers' and servers' timers."""
        network = self.network
        network.now = now
        network.deliver_due()
        for peer in list(network.peers.values()):
            peer.tick(now)
        for server in list(network.servers.values()):
            server.tick(now)
        network.deliver_due()

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / TICK)):
            self.step(self.now + TICK)

    def connect(self, *peers: Peer, within: float = 2.0) -> None:
        """Run until every peer has SRTP keys; fail with the peer's error otherwise."""
        for _ in range(round(within / TICK)):
            if all(p.connected for p in peers):
                return
            self.step(self.now + TICK)
        waiting = [p.transport.error or f"{p.role} not connected" for p in peers if not p.connected]
        if waiting:
            raise AssertionError(f"peers did not connect within {within} s: {waiting}")


def record_rtp(peer: Peer) -> list[tuple[float, bytes]]:
    """From now on, keep every RTP packet `peer` decrypts (arrival time, plaintext), for checks
    that need more than `Received` holds: padding, header extensions, H264 payloads."""
    packets: list[tuple[float, bytes]] = []
    handle = peer._on_rtp

    def recording(plain: bytes, now: float) -> None:
        packets.append((now, plain))
        handle(plain, now)

    peer._on_rtp = recording  # type: ignore[method-assign]
    return packets
