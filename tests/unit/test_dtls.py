"""DtlsEndpoint: two endpoints shuttled in memory, with a fake clock unless noted."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time

import pylibsrtp
import pytest
from aiortc import RTCCertificate, RTCDtlsFingerprint, RTCDtlsParameters, RTCDtlsTransport
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from sfu.protocol.certificate import Certificate
from sfu.protocol.dtls import DtlsEndpoint, DtlsState, SrtpKeys
from sfu.protocol.srtp import SrtpContext
from tests.unit.dtls_pair import connect, make_pair, shuttle

PROFILES = {
    b"SRTP_AES128_CM_SHA1_80": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
    b"SRTP_AEAD_AES_128_GCM": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM, 28),
}


@pytest.fixture(scope="module")
def server_cert() -> Certificate:
    return Certificate.generate()


@pytest.fixture(scope="module")
def client_cert() -> Certificate:
    return Certificate.generate()


def test_certificate_fingerprint_format(server_cert: Certificate) -> None:
    parts = server_cert.fingerprint.split(":")
    assert len(parts) == 32
    assert all(len(p) == 2 and p == p.upper() for p in parts)
    int("".join(parts), 16)
    assert Certificate.generate().fingerprint != server_cert.fingerprint


def test_context_is_shared(server_cert: Certificate) -> None:
    assert server_cert.ssl_context() is server_cert.ssl_context()


def test_handshake_derives_mirrored_keys(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    server, client = make_pair(server_cert, client_cert)
    connect(server, client)
    assert server.keys is not None and client.keys is not None
    assert server.keys.local_key == client.keys.remote_key
    assert server.keys.remote_key == client.keys.local_key
    assert server.keys.local_key != server.keys.remote_key
    # Both offered, our list prefers GCM.
    assert server.keys.profile == pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    assert server.timer_at is None and client.timer_at is None


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("forced_on", ["server", "client"])
def test_each_profile(
    server_cert: Certificate, client_cert: Certificate, name: bytes, forced_on: str
) -> None:
    kwargs = {f"{forced_on}_profiles": name}
    server, client = make_pair(server_cert, client_cert, **kwargs)
    connect(server, client)
    profile, key_len = PROFILES[name]
    for side in (server, client):
        assert side.keys is not None
        assert side.keys.profile == profile
        assert len(side.keys.local_key) == len(side.keys.remote_key) == key_len


def test_no_common_profile_fails(server_cert: Certificate, client_cert: Certificate) -> None:
    server, client = make_pair(
        server_cert,
        client_cert,
        server_profiles=b"SRTP_AES128_CM_SHA1_80",
        client_profiles=b"SRTP_AEAD_AES_128_GCM",
    )
    server.start(0.0)
    shuttle(server, client, client.start(0.0))
    assert server.state is DtlsState.FAILED
    assert server.failure == "no SRTP profile negotiated"
    assert client.state is not DtlsState.CONNECTED


def test_fingerprint_mismatch_fails_server(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    other = Certificate.generate()
    server, client = make_pair(server_cert, client_cert, client_fingerprint=other.fingerprint)
    server.start(0.0)
    shuttle(server, client, client.start(0.0))
    assert server.state is DtlsState.FAILED
    assert server.failure is not None and "fingerprint" in server.failure
    assert server.keys is None
    # The server withheld its Finished, so the client cannot believe it is connected.
    assert client.state is DtlsState.CONNECTING


def sha1_fingerprint(cert: Certificate) -> str:
    digest = hashlib.sha1(cert.cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def test_fingerprint_any_supported_entry_matches(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    server = DtlsEndpoint(
        server_cert,
        is_server=True,
        remote_fingerprints=[
            ("md5", "00:11"),  # unsupported: skipped
            ("sha-256", Certificate.generate().fingerprint),  # wrong: skipped
            ("SHA-1", sha1_fingerprint(client_cert).lower()),  # any case
        ],
    )
    _, client = make_pair(server_cert, client_cert)
    connect(server, client)


def test_only_unsupported_fingerprints_fail(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    server = DtlsEndpoint(server_cert, is_server=True, remote_fingerprints=[("md5", "00:11:22")])
    _, client = make_pair(server_cert, client_cert)
    server.start(0.0)
    shuttle(server, client, client.start(0.0))
    assert server.state is DtlsState.FAILED
    assert server.failure is not None and "supported" in server.failure


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16",
        b"\x16\xfe\xfd" + b"\x00" * 10,
        b"\x16\xfe\xfd\x00\x00" + b"\x00" * 6 + b"\x00\x05" + b"hello",
        b"\x17\xfe\xfd" + b"\xff" * 200,
        b"\x15\xfe\xfd\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x02\x28",
        bytes(range(256)) * 3,
    ],
)
def test_garbage_never_raises(
    server_cert: Certificate, client_cert: Certificate, garbage: bytes
) -> None:
    server, client = make_pair(server_cert, client_cert)
    server.start(0.0)
    for _ in range(3):
        assert isinstance(server.receive(garbage, 0.0), list)
        assert isinstance(client.receive(garbage, 0.0), list)
    assert server.state in (DtlsState.CONNECTING, DtlsState.FAILED)
    assert server.failure is None or server.state is DtlsState.FAILED
    assert server.state is not DtlsState.CONNECTED


def test_garbage_after_connected_is_ignored(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    server, client = make_pair(server_cert, client_cert)
    connect(server, client)
    for garbage in (b"\x17\xfe\xfd" + b"\x00" * 30, b"\x16" * 5, b""):
        assert server.receive(garbage, 1.0) == []
    assert server.state is DtlsState.CONNECTED


def test_handshake_datagrams_fit_mtu(server_cert: Certificate, client_cert: Certificate) -> None:
    server, client = make_pair(server_cert, client_cert)
    server.start(0.0)
    flight = client.start(0.0)
    sizes = []
    for _ in range(20):
        sizes += [len(d) for d in flight]
        flight = [out for d in flight for out in server.receive(d, 0.0)]
        sizes += [len(d) for d in flight]
        flight = [out for d in flight for out in client.receive(d, 0.0)]
        if not flight:
            break
    assert client.state is DtlsState.CONNECTED
    assert sizes and max(sizes) <= 1200


def test_lost_server_flight_is_resent_on_our_clock(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    """The server keeps its flight and resends those bytes when the caller's clock says so,
    1 s and then 2 s later: no wall time passes, and OpenSSL's own timer has not expired."""
    server, client = make_pair(server_cert, client_cert)
    server.start(0.0)
    [hello] = client.start(0.0)
    lost = server.receive(hello, 0.0)
    assert lost and server.next_timer() == pytest.approx(1.0)
    assert server.handle_timer(0.99) == []
    assert server.handle_timer(1.0) == lost  # the very bytes: the peer has not seen them
    remaining = server._conn.DTLSv1_get_timeout()
    assert remaining is not None and remaining > 0  # OpenSSL alone would not have resent
    assert server.next_timer() == pytest.approx(3.0)  # doubled, and lost again
    resent = server.handle_timer(3.0)
    assert resent == lost and server.retransmissions == 2
    shuttle(server, client, [out for d in resent for out in client.receive(d, 3.0)], 3.0)
    assert server.state is DtlsState.CONNECTED, server.failure
    assert client.state is DtlsState.CONNECTED, client.failure
    assert server.next_timer() is None
    assert client.keys is not None
    assert server.keys == SrtpKeys(
        client.keys.profile, local_key=client.keys.remote_key, remote_key=client.keys.local_key
    )


def test_duplicates_after_connected(server_cert: Certificate, client_cert: Certificate) -> None:
    """Byte-exact duplicates are dropped by replay protection; a real retransmission of
    the client's last flight (lost server Finished) makes the connected server re-send."""
    server, client = make_pair(server_cert, client_cert)
    now = time.monotonic()
    server.start(now)
    to_client = [out for d in client.start(now) for out in server.receive(d, now)]
    final = [out for d in to_client for out in client.receive(d, now)]
    assert final
    assert [out for d in final for out in server.receive(d, now)]  # lost on the way
    assert server.state is DtlsState.CONNECTED
    assert [out for d in final for out in server.receive(d, now)] == []
    assert server.state is DtlsState.CONNECTED

    retransmitted: list[bytes] = []
    for _ in range(100):
        assert client.timer_at is not None
        time.sleep(max(0.0, client.timer_at - time.monotonic()) + 0.01)
        retransmitted = client.handle_timer(time.monotonic())
        if retransmitted:
            break
    assert retransmitted
    answer = [out for d in retransmitted for out in server.receive(d, time.monotonic())]
    assert answer, "the connected server should re-send its final flight"
    assert server.state is DtlsState.CONNECTED
    for d in answer:
        assert client.receive(d, time.monotonic()) == []
    assert client.state is DtlsState.CONNECTED
    assert client.keys is not None and server.keys is not None
    assert client.keys.remote_key == server.keys.local_key


def test_handshake_deadline(server_cert: Certificate, client_cert: Certificate) -> None:
    server, _ = make_pair(server_cert, client_cert)
    server.start(100.0)
    assert server.timer_at == pytest.approx(130.0)
    assert server.handle_timer(110.0) == []
    assert server.state is DtlsState.CONNECTING
    server.handle_timer(130.0)
    assert server.state is DtlsState.FAILED
    assert server.failure == "handshake timed out"
    assert server.timer_at is None


def test_retransmissions_are_bounded(server_cert: Certificate, client_cert: Certificate) -> None:
    """A peer that never answers: the ClientHello goes again at 1, 3, 7 and 15 s of the
    caller's clock, byte for byte, and the handshake fails at its 30 s deadline."""
    _, client = make_pair(server_cert, client_cert)
    [hello] = client.start(0.0)
    resent_at = []
    for step in range(1, 400):
        now = step * 0.1
        out = client.handle_timer(now)
        if out:
            assert out == [hello]
            resent_at.append(round(now, 1))
        if client.state is DtlsState.FAILED:
            break
    assert resent_at == [1.0, 3.0, 7.0, 15.0]
    assert client.state is DtlsState.FAILED
    assert client.failure == "handshake timed out" and step == 300


@pytest.mark.parametrize("closer", ["server", "client"])
def test_close_notify(server_cert: Certificate, client_cert: Certificate, closer: str) -> None:
    server, client = make_pair(server_cert, client_cert)
    connect(server, client)
    a, b = (server, client) if closer == "server" else (client, server)
    notify = a.close()
    assert a.state is DtlsState.CLOSED
    assert notify
    for d in notify:
        b.receive(d, 1.0)
    assert b.state is DtlsState.CLOSED
    assert a.close() == []


def test_close_before_connected_sends_nothing(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    server, client = make_pair(server_cert, client_cert)
    server.start(0.0)
    client.start(0.0)
    assert server.close() == []
    assert server.state is DtlsState.CLOSED
    assert server.receive(b"\x16\xfe\xfd", 0.0) == []


class MemoryIce:
    """Stands in for aiortc's RTCIceTransport: what aiortc sends goes straight into our
    endpoint, and our answers queue up for aiortc to receive."""

    def __init__(self, role: str, peer: DtlsEndpoint) -> None:
        self.role = role
        self.peer = peer
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def _send(self, data: bytes) -> None:
        for datagram in self.peer.receive(data, time.monotonic()):
            self.inbox.put_nowait(datagram)

    async def _recv(self) -> bytes:
        return await self.inbox.get()


def rtp_packet(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 111, seq, seq * 960, 0x01020304) + b"\x42" * 50


@pytest.mark.parametrize("we_are_server", [True, False], ids=["ours-server", "ours-client"])
async def test_interop_with_aiortc(server_cert: Certificate, we_are_server: bool) -> None:
    theirs = RTCCertificate.generateCertificate()
    their_fingerprints = [(f.algorithm, f.value) for f in theirs.getFingerprints()]
    ours = DtlsEndpoint(
        server_cert, is_server=we_are_server, remote_fingerprints=their_fingerprints
    )
    # aiortc derives its DTLS role from the ICE role: controlled -> client.
    ice = MemoryIce("controlled" if we_are_server else "controlling", ours)
    dtls = RTCDtlsTransport(ice, [theirs])  # type: ignore[arg-type]
    for datagram in ours.start(time.monotonic()):
        ice.inbox.put_nowait(datagram)
    params = RTCDtlsParameters(
        fingerprints=[RTCDtlsFingerprint("sha-256", server_cert.fingerprint)]
    )
    await asyncio.wait_for(dtls.start(params), timeout=10)
    try:
        assert dtls.state == "connected"
        assert ours.state is DtlsState.CONNECTED, ours.failure
        assert ours.keys is not None
        srtp = SrtpContext(ours.keys)
        packet = rtp_packet(7)
        assert srtp.unprotect_rtp(dtls._tx_srtp.protect(packet)) == packet
        assert dtls._rx_srtp.unprotect(srtp.protect_rtp(packet)) == packet
    finally:
        await dtls.stop()
    # aiortc's close_notify reached us.
    assert ours.state is DtlsState.CLOSED


def _legacy_client_hello(cipher: bytes, client_cert: Certificate) -> bytes:
    """The first flight of a DTLS 1.2 client that offers only `cipher`."""
    legacy = SSL.Context(SSL.DTLS_METHOD)
    legacy.use_certificate(client_cert.cert)
    legacy.use_privatekey(client_cert.key)
    legacy.set_cipher_list(cipher)
    legacy.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    conn = SSL.Connection(legacy, None)
    conn.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        conn.do_handshake()
    return conn.bio_read(65536)


@pytest.mark.parametrize("cipher", [b"AES128-SHA", b"AES256-SHA", b"ECDHE-ECDSA-AES128-SHA"])
def test_legacy_cbc_suites_are_refused(
    server_cert: Certificate, client_cert: Certificate, cipher: bytes
) -> None:
    server, _ = make_pair(server_cert, client_cert)
    server.start(0.0)
    server.receive(_legacy_client_hello(cipher, client_cert), 0.0)
    assert server.state is DtlsState.FAILED
    assert server.keys is None


def test_modern_suites_still_connect(server_cert: Certificate, client_cert: Certificate) -> None:
    server, client = make_pair(server_cert, client_cert)
    connect(server, client)
    assert server.keys is not None
