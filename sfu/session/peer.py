"""One remote peer: its ICE-lite credentials and address, DTLS handshake and SRTP contexts.

A session knows nothing of streams: once SRTP is up it hands plaintext RTP and RTCP to the
media handler the router gave it, and it protects and sends what the router asks it to.
"""

from __future__ import annotations

import collections
import logging
import random

import pylibsrtp

from sfu.config import MediaConfig
from sfu.media import PeerParams
from sfu.protocol import fastpath, ice
from sfu.protocol.certificate import Certificate
from sfu.protocol.dtls import DtlsEndpoint, DtlsState
from sfu.protocol.nomination import STALE_AFTER, Pairs
from sfu.protocol.srtp import MAX_PROTECTED, SrtpContext
from sfu.protocol.srtp_streams import InboundStreams
from sfu.session.data import SessionData
from sfu.session.path import PathChoice
from sfu.session.transport import (
    Address,
    MediaHandler,
    PairsChanged,
    SendFunction,
    SessionClosed,
    SessionEvent,
    SessionState,
    UfragChanged,
    is_tcp,
    short_hash,
)

log = logging.getLogger(__name__)
# Moving to a better nominated pair or off a silent one (sfu/protocol/nomination.py) waits, once
# media flows, until the new address has answered a check of our own (return routability).
ADDRESS_STALE_AFTER = STALE_AFTER

# Session ids are capabilities (the HTTP Location of a session): 128 random bits, in hex.
SESSION_ID_HEX = 32

# RTCP-only sender SSRCs given an SRTP stream, per m-line: a receiver SSRC per m-line (Firefox,
# aiortc) or per kind (Chromium), with room for one change.
RTCP_SENDERS_PER_MLINE = 2


class PeerSession(fastpath.TransportState, PathChoice):
    """ICE-lite + DTLS-SRTP for one peer connection, bundled on one 5-tuple."""

    # Flat: the fan-out reads addr and transport_seq of every player's session per packet
    # (from the C base where there is one).
    __slots__ = (
        *fastpath.TRANSPORT_SLOTS,
        "_events",
        "_latest",
        "_pending_timeout",
        "_rng",
        "_send",
        "_timeout",
        "checks",
        "close_reason",
        "created",
        "data",
        "drops",
        "dtls",
        "handler",
        "ice",
        "id",
        "last_seen",
        "log_name",
        "pairs",
        "peer",
        "role",
        "rtcp_ssrc",
        "srtp",
        "srtp_errors",
        "state",
        "stream",
        "streams",
    )

    def __init__(
        self,
        role: str,
        stream: str,
        peer: PeerParams,
        certificate: Certificate,
        send: SendFunction,
        now: float,
        config: MediaConfig | None = None,
        rng: random.Random = ice.SYSTEM_RANDOM,
    ) -> None:
        self.id = f"{rng.getrandbits(4 * SESSION_ID_HEX):0{SESSION_ID_HEX}x}"
        self.log_name = short_hash(self.id)  # what logs call it: the id is a capability
        self.role = role
        self.stream = stream
        self.peer = peer
        config = config or MediaConfig()
        self._timeout = config.session_timeout
        self._pending_timeout = config.pending_timeout
        self._rng = rng
        self.ice = ice.IceLite(ice.new_ufrag(rng), ice.new_pwd(rng), peer.ice_ufrag, peer.ice_pwd)
        self.checks = ice.ReturnRoutability(rng)
        self.pairs = Pairs()
        self.dtls = DtlsEndpoint(certificate, is_server=True, remote_fingerprints=peer.fingerprints)
        self.srtp: SrtpContext | None = None
        self.data = (
            None
            if peer.data is None
            else SessionData(self.dtls, peer.data, config, rng, self._send_all)
        )
        self.streams: InboundStreams | None = None  # the peer's SSRCs with an SRTP stream
        self.state = SessionState.NEW
        self.addr: Address | None = None
        self.created = now
        self.last_seen = now
        self._latest = now  # the newest time any input or timer brought: when it closed
        self.close_reason = ""
        self.rtcp_ssrc = rng.getrandbits(32) or 1  # our SSRC as the sender of feedback
        self.handler: MediaHandler | None = None
        self._send = send
        self._events: list[SessionEvent] = []
        self.srtp_errors = 0
        self.transport_seq = 0  # transport-wide CC sequence number of what we send this peer
        # Drops by reason; the session table shares its own, so they add up per endpoint.
        self.drops: collections.Counter[str] = collections.Counter()

    @property
    def transport(self) -> str | None:
        """ "udp" or "tcp", what the session's media goes over; None before ICE."""
        if self.addr is None:
            return None
        return "tcp" if is_tcp(self.addr) else "udp"

    # -- input, one method per demuxed packet class ---------------------------------------------

    def handle_dtls(self, data: bytes, now: float) -> None:
        """Feed a DTLS record from the session's address."""
        if self.state is SessionState.CLOSED:
            return
        self.last_seen = self._latest = now
        self._send_all(self.dtls.receive(data, now))
        self._after_dtls(now)
        if self.data is not None and self.dtls.received:
            self.data.on_records(now)

    def handle_srtp(self, data: bytes, now: float) -> None:
        """Decrypt one SRTP/SRTCP packet and hand it to the media handler; drop what fails.

        Only SSRCs with a stream (InboundStreams) are decrypted as they come; any other is
        tried only where it has room, so libsrtp's stream list stays bounded."""
        srtp = self.srtp
        if srtp is None:
            return
        if len(data) > MAX_PROTECTED:
            self.drops["srtp_too_large"] += 1
            return
        streams: InboundStreams = self.streams  # type: ignore[assignment]  # set with srtp
        try:
            if 191 < data[1] < 224:
                if data[4:8] in streams.rtcp:
                    packet = srtp.unprotect_rtcp(data)
                else:
                    packet = self._from_new_sender(srtp, streams, data)
                    if packet is None:
                        return
                self.last_seen = now
                self.handler.on_rtcp(packet, now)  # type: ignore[union-attr]
            else:
                if data[8:12] in streams.rtp:
                    packet = srtp.unprotect_rtp(data)
                else:
                    packet = self._from_new_ssrc(srtp, streams, data, now)
                    if packet is None:
                        return
                self.last_seen = now
                self.handler.on_rtp(packet, now)  # type: ignore[union-attr]
        except (pylibsrtp.Error, IndexError):
            self.srtp_errors += 1

    def _from_new_ssrc(
        self, srtp: SrtpContext, streams: InboundStreams, data: bytes, now: float
    ) -> bytes | None:
        """RTP from an SSRC without a stream: decrypted only for a slot the handler has for it
        (a forged packet then fails and leaves nothing), which it then holds."""
        ssrc = data[8:12]
        if streams.retired(ssrc):
            self.drops["retired_ssrc"] += 1
            return None
        slot = self.handler.ssrc_slot(data, now)  # type: ignore[union-attr]
        if slot is None:
            return None
        packet = srtp.unprotect_rtp(data)
        if not streams.adopt(slot, ssrc):
            self.drops["ssrc_limit"] += 1
            return None
        return packet

    def _from_new_sender(
        self, srtp: SrtpContext, streams: InboundStreams, data: bytes
    ) -> bytes | None:
        """SRTCP from a sender SSRC without a stream: decrypted while there is room for one."""
        sender = data[4:8]
        if not streams.may_try_sender(sender):
            self.drops["rtcp_sender_limit"] += 1
            return None
        packet = srtp.unprotect_rtcp(data)
        streams.add_sender(sender)
        return packet

    def restart_ice(self, remote_ufrag: str, remote_pwd: str) -> None:
        """ICE restart (RFC 8445 §9): new credentials on both sides; DTLS and SRTP carry on."""
        old_ufrag = self.ice.local_ufrag
        self.ice.restart(ice.new_ufrag(self._rng), ice.new_pwd(self._rng), remote_ufrag, remote_pwd)
        self._events.append(UfragChanged(self, old_ufrag))
        # The client nominates afresh, maybe from another network whose pairs rank lower.
        self._events.append(PairsChanged(self, (), tuple(self.pairs.clear())))
        self._log("ICE restart")

    # -- output ----------------------------------------------------------------------------------

    def send_rtcp(self, packet: bytes) -> None:
        """Protect and send one plaintext RTCP packet to the peer."""
        if self.srtp is not None and self.addr is not None:
            self._send(self.srtp.protect_rtcp(packet), self.addr)

    def _send_all(self, datagrams: list[bytes]) -> None:
        if self.addr is not None:
            for datagram in datagrams:
                self._send(datagram, self.addr)

    # -- time and lifecycle ----------------------------------------------------------------------

    def poll_events(self) -> list[SessionEvent]:
        """What happened since the last call (moves, ICE restarts, the end), oldest first."""
        events, self._events = self._events, []
        return events

    def next_timer(self) -> float | None:
        """When handle_timer has work next: a DTLS retransmission, a check's retry, or the
        silence and connect deadlines; None once closed."""
        if self.state is SessionState.CLOSED:
            return None
        at = self.last_seen + self._timeout
        if self.state is not SessionState.CONNECTED:
            at = min(at, self.created + self._pending_timeout)
        dtls_at = self.dtls.timer_at
        if dtls_at is not None:
            at = min(at, dtls_at)
        for other in (self.checks.next_due(), self.data and self.data.next_timer()):
            at = at if other is None else min(at, other)
        return at

    def handle_timer(self, now: float) -> None:
        """Run the DTLS and check timers; end the session when the peer went silent, or when it
        has not connected (ICE and DTLS) within the pending timeout, so it frees its slot."""
        if self.state is SessionState.CLOSED:
            return
        self._latest = now
        if now - self.last_seen > self._timeout:
            self.close(f"no valid packet for {self._timeout:g} s")
            return
        if self.state is not SessionState.CONNECTED and now - self.created > self._pending_timeout:
            self.close(f"not connected within {self._pending_timeout:g} s")
            return
        timer_at = self.dtls.timer_at
        if timer_at is not None and now >= timer_at:
            self._send_all(self.dtls.handle_timer(now))
            self._after_dtls(now)
        data_at = self.data and self.data.next_timer()
        if data_at is not None and now >= data_at:
            self.data.handle_timer(now)  # type: ignore[union-attr]
        if self.checks.pending:
            for request, addr in self.checks.due(now):
                self._send(request, addr)
            given_up, self.checks.given_up = self.checks.given_up, 0
            if given_up:
                self.drops["address_check_unanswered"] += given_up
                self._log("a new address never answered; media stays at the old one")

    def _log(self, message: str, *args: object, **extra: object) -> None:
        """One INFO line about the session, named by its short hash (never its id), with the
        session, stream and role as JSON fields."""
        context = {"session_id": self.log_name, "stream": self.stream, "role": self.role}
        log.info(f"session #%s: {message}", self.log_name, *args, extra={**context, **extra})

    def _after_dtls(self, now: float) -> None:
        state = self.dtls.state
        if state is DtlsState.CONNECTED and self.srtp is None:
            self.srtp = SrtpContext(self.dtls.keys)  # type: ignore[arg-type]
            tracks = self.peer.tracks
            self.streams = InboundStreams(
                self.srtp.remove_inbound,
                media_limit=sum(len(track.rids) or 1 for track in tracks),
                rtcp_limit=RTCP_SENDERS_PER_MLINE * max(1, len(tracks)),
            )
            self.state = SessionState.CONNECTED
            self._log("DTLS-SRTP connected (%s %s)", self.role, self.stream)
            if self.handler is not None:
                self.handler.on_connected(now)
        elif state is DtlsState.FAILED:
            self.close(f"DTLS failed: {self.dtls.failure}")
        elif state is DtlsState.CLOSED:
            self.close("peer closed DTLS")

    def close(self, reason: str, now: float | None = None) -> None:
        """End the session at once: tell the peer, free the media state, leave the tables.
        `now` (a DELETE's clock) makes the logged duration run to the close itself."""
        if self.state is SessionState.CLOSED:
            return
        self._latest = max(self._latest, self.last_seen, now or 0.0)
        if self.data is not None:
            self.data.close(reason)
        if self.dtls.state is DtlsState.CONNECTED:
            self._send_all(self.dtls.close())
        self.state = SessionState.CLOSED
        self.close_reason = reason
        self.srtp = None
        lived = self._latest - self.created
        self._log(
            "closed (%s %s) after %.1f s: %s",
            self.role,
            self.stream,
            lived,
            reason,
            duration=round(lived, 3),
        )
        if self.handler is not None:
            self.handler.on_closed()
        self._events.append(SessionClosed(self))
