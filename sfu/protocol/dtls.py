"""DTLS-SRTP as a sans-IO endpoint on pyOpenSSL memory BIOs.

The endpoint never touches a socket: datagrams go in through `receive`, datagrams to send
come back as return values, and the caller's clock is passed in so retransmission is
driven by the owner's event loop (see `next_timer` / `handle_timer`). Once the handshake is
done and the peer certificate matches the fingerprint from its SDP, `keys` holds the SRTP
master keys (RFC 5764 section 4.2) for `sfu.protocol.srtp.SrtpContext`. The certificate,
its SSL context and the fingerprint check are the process-wide part (certificate.py).

Retransmission runs on the caller's clock wherever it can. pyOpenSSL has no
DTLS_set_timer_cb, and DTLSv1_handle_timeout does nothing until OpenSSL's own wall-clock
timer has expired, so the endpoint keeps its last flight and resends those very bytes when
its timer (1 s, doubling) fires. That is right for every flight but one holding our
Finished: a peer that received such a flight may be done, and its replay window drops the
identical records without answering. Only a DTLS client sends such a flight and then waits
(a server's Finished goes last and is resent when the client's retransmission comes in), and
for it the endpoint lets OpenSSL retransmit (new record numbers) on OpenSSL's schedule.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass

import pylibsrtp
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from sfu.protocol.certificate import (
    DEFAULT_SRTP_PROFILES,
    Certificate,
    check_fingerprint,
    parse_fingerprints,
)

__all__ = ["DtlsEndpoint", "DtlsState", "SrtpKeys"]

_MTU = 1200  # below any path MTU WebRTC meets, leaving room for IP/UDP/TURN headers
_HANDSHAKE_TIMEOUT = 30.0  # also bounds retransmissions: 1 s doubling leaves 4 before it
_FIRST_RESEND = 1.0  # RFC 6347 section 4.2.4.1's initial timer value
_MAX_DRAIN = 64  # bound on loops that empty OpenSSL's buffers
_RECORD_HEADER = 13  # content type, version, epoch, sequence number, length
_CHANGE_CIPHER_SPEC = 20  # the record type that precedes our Finished in a flight

# OpenSSL profile name -> (pylibsrtp profile, master key length, master salt length).
_PROFILES: dict[bytes, tuple[int, int, int]] = {
    b"SRTP_AES128_CM_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 16, 14),
    b"SRTP_AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 16, 12),
}


@dataclass(frozen=True)
class SrtpKeys:
    """SRTP master key || master salt for each direction, from the DTLS exporter."""

    profile: int  # a pylibsrtp.Policy.SRTP_PROFILE_* value
    local_key: bytes  # protects what we send
    remote_key: bytes  # unprotects what we receive


class DtlsState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


def _has_change_cipher_spec(datagrams: list[bytes]) -> bool:
    """Whether a flight carries our ChangeCipherSpec, and so our Finished."""
    for datagram in datagrams:
        pos = 0
        while pos + _RECORD_HEADER <= len(datagram):
            if datagram[pos] == _CHANGE_CIPHER_SPEC:
                return True
            pos += _RECORD_HEADER + int.from_bytes(datagram[pos + 11 : pos + 13], "big")
    return False


def _pack_datagrams(data: bytes, mtu: int) -> list[bytes]:
    """Split what OpenSSL wrote into DTLS records and pack them into datagrams.

    A memory BIO loses datagram boundaries; records are self-delimiting, so several
    fit in one datagram as long as it stays within the MTU (RFC 6347 section 4.1.1).
    """
    datagrams: list[bytes] = []
    current = bytearray()
    pos = 0
    while pos + _RECORD_HEADER <= len(data):
        end = pos + _RECORD_HEADER + int.from_bytes(data[pos + 11 : pos + 13], "big")
        if current and len(current) + (end - pos) > mtu:
            datagrams.append(bytes(current))
            current.clear()
        current += data[pos:end]
        pos = end
    current += data[pos:]  # never expected: a partial record goes out as OpenSSL wrote it
    if current:
        datagrams.append(bytes(current))
    return datagrams


class DtlsEndpoint:
    """One DTLS-SRTP association, client or server, with no I/O of its own.

    Every method returns the datagrams to send and never raises on bad input: OpenSSL
    errors turn into state FAILED with `failure` explaining why.
    """

    def __init__(
        self,
        certificate: Certificate,
        *,
        is_server: bool,
        remote_fingerprints: list[tuple[str, str]],
        srtp_profiles: bytes | None = None,
    ) -> None:
        self.is_server = is_server
        self.state = DtlsState.NEW
        self.keys: SrtpKeys | None = None
        self.failure: str | None = None
        self.timer_at: float | None = None
        self._remote_fingerprints = parse_fingerprints(remote_fingerprints)
        self._conn = SSL.Connection(
            certificate.ssl_context(srtp_profiles or DEFAULT_SRTP_PROFILES), None
        )
        self._conn.set_ciphertext_mtu(_MTU)
        if is_server:
            self._conn.set_accept_state()
        else:
            self._conn.set_connect_state()
        self._deadline = 0.0
        self._flight: list[bytes] = []  # the last flight we sent while the handshake runs
        self._flight_finishes = False  # it holds our Finished: OpenSSL resends it
        self._resend_interval = _FIRST_RESEND
        self._resend_at: float | None = None
        self.retransmissions = 0  # flights resent, by us or by OpenSSL
        self.keep_application_data = False  # only a session that negotiated data channels
        self.received: list[bytes] = []

    def start(self, now: float) -> list[bytes]:
        """Begin the handshake; a client returns its ClientHello, a server waits."""
        if self.state is not DtlsState.NEW:
            return []
        self.state = DtlsState.CONNECTING
        self._deadline = now + _HANDSHAKE_TIMEOUT
        if self.is_server:
            self._update_timer()
            return []
        return self._handshake(now)

    def receive(self, data: bytes, now: float) -> list[bytes]:
        """Feed one datagram from the peer; returns the datagrams to send back."""
        if not data:
            return []  # a memory BIO refuses empty writes
        if self.state is DtlsState.NEW:
            self.start(now)
        if self.state is DtlsState.CONNECTING:
            self._conn.bio_write(data)
            return self._handshake(now)
        if self.state is DtlsState.CONNECTED:
            self._conn.bio_write(data)
            return self._read_connected()
        return []

    def next_timer(self) -> float | None:
        """When handle_timer has work: a resend or the handshake deadline; None after it."""
        return self.timer_at

    def handle_timer(self, now: float) -> list[bytes]:
        """Resend the last flight when its timer is due (see the module docstring for whose
        clock); fail once the handshake deadline has passed."""
        if self.state is not DtlsState.CONNECTING:
            return []
        if now >= self._deadline:
            return self._fail("handshake timed out")
        if self._resend_at is None or now < self._resend_at:
            return []
        # OpenSSL handles its own timeout in every case: in real time that keeps its timer in
        # step with ours, so reading the peer's next flight does not make it resend as well.
        try:
            fired = self._conn.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            return self._fail(f"retransmission error: {exc}")
        out = self._drain()
        if self._flight_finishes:
            remaining = self._conn.DTLSv1_get_timeout()
            self._resend_at = now + (remaining if remaining is not None else _FIRST_RESEND)
        else:
            fired = True
            out = list(self._flight)  # instead of OpenSSL's copy, if it made one
            self._resend_interval *= 2
            self._resend_at = now + self._resend_interval
        self.retransmissions += bool(fired)
        self._update_timer()
        return out

    def close(self) -> list[bytes]:
        """Send close_notify if connected; the endpoint is CLOSED afterwards."""
        out: list[bytes] = []
        if self.state is DtlsState.CONNECTED:
            with contextlib.suppress(SSL.Error):  # closing either way; send what was made
                self._conn.shutdown()
            out = self._drain()
        if self.state is not DtlsState.FAILED:
            self.state = DtlsState.CLOSED
        self.timer_at = None
        return out

    def _handshake(self, now: float) -> list[bytes]:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return self._sent_flight(self._drain(), now)
        except SSL.Error as exc:
            out = self._drain()  # usually a fatal alert for the peer
            self._fail(f"handshake error: {exc}")
            return out
        failure = self._verify_peer()
        if failure is not None:
            return self._fail(failure)  # withhold our Finished: the peer never connects
        keys = self._export_keys()
        if keys is None:
            return self._fail("no SRTP profile negotiated")
        self.keys = keys
        self.state = DtlsState.CONNECTED
        self._flight = []
        self._update_timer()
        return self._drain()

    def _sent_flight(self, flight: list[bytes], now: float) -> list[bytes]:
        """Keep a flight that is on its way, and time its resend from now."""
        if flight:
            self._flight = flight
            self._flight_finishes = _has_change_cipher_spec(flight)
            self._resend_interval = _FIRST_RESEND
            remaining = self._conn.DTLSv1_get_timeout() if self._flight_finishes else None
            self._resend_at = now + (remaining if remaining is not None else _FIRST_RESEND)
            self._update_timer()
        return flight

    def send(self, data: bytes) -> list[bytes]:
        """One application data record (an SCTP packet, RFC 8261) once connected."""
        if self.state is not DtlsState.CONNECTED:
            return []
        try:
            self._conn.send(data)
            return [self._conn.bio_read(65536)]  # one record, all of it: no second read
        except SSL.WantReadError:
            return []
        except SSL.Error as exc:
            return self._fail(f"send error: {exc}")

    def take_received(self) -> list[bytes]:
        """The application data records that came in since the last call."""
        received, self.received = self.received, []
        return received

    def _read_connected(self) -> list[bytes]:
        """Keep application data for take_received; answer retransmitted handshake records."""
        for _ in range(_MAX_DRAIN):
            try:
                record = self._conn.recv(65536)
                if self.keep_application_data:
                    self.received.append(record)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                with contextlib.suppress(SSL.Error):
                    self._conn.shutdown()  # answer close_notify with ours
                out = self._drain()
                self.state = DtlsState.CLOSED
                self.timer_at = None
                return out
            except SSL.Error as exc:
                out = self._drain()
                self._fail(f"connection error: {exc}")
                return out
        return self._drain()

    def _verify_peer(self) -> str | None:
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        if cert is None:
            return "peer sent no certificate"
        der = cert.public_bytes(serialization.Encoding.DER)
        return check_fingerprint(der, self._remote_fingerprints)

    def _export_keys(self) -> SrtpKeys | None:
        profile = _PROFILES.get(self._conn.get_selected_srtp_profile())
        if profile is None:
            return None
        srtp_profile, key_len, salt_len = profile
        material = self._conn.export_keying_material(
            b"EXTRACTOR-dtls_srtp", 2 * (key_len + salt_len)
        )
        client_key = material[:key_len]
        server_key = material[key_len : 2 * key_len]
        client_salt = material[2 * key_len : 2 * key_len + salt_len]
        server_salt = material[2 * key_len + salt_len :]
        client, server = client_key + client_salt, server_key + server_salt
        if self.is_server:
            return SrtpKeys(srtp_profile, local_key=server, remote_key=client)
        return SrtpKeys(srtp_profile, local_key=client, remote_key=server)

    def _update_timer(self) -> None:
        if self.state is not DtlsState.CONNECTING:
            self.timer_at = None
        elif self._resend_at is None:
            self.timer_at = self._deadline
        else:
            self.timer_at = min(self._resend_at, self._deadline)

    def _drain(self) -> list[bytes]:
        chunks = []
        for _ in range(_MAX_DRAIN):
            try:
                chunks.append(self._conn.bio_read(65536))
            except SSL.WantReadError:
                break
        return _pack_datagrams(b"".join(chunks), _MTU)

    def _fail(self, reason: str) -> list[bytes]:
        self.state = DtlsState.FAILED
        self.failure = reason
        self.timer_at = None
        return []
