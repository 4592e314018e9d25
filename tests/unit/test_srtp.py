"""SrtpContext built from the keys both ends of a real DTLS handshake derived."""

from __future__ import annotations

import struct

import pylibsrtp
import pytest

from sfu.protocol.certificate import Certificate
from sfu.protocol.dtls import SrtpKeys
from sfu.protocol.srtp import SrtpContext, direct_protect, has_direct_path
from tests.unit.dtls_pair import connect, make_pair

PROFILES = [b"SRTP_AES128_CM_SHA1_80", b"SRTP_AEAD_AES_128_GCM"]


def handshake_keys(profile: bytes) -> tuple[SrtpKeys, SrtpKeys]:
    server, client = make_pair(
        Certificate.generate(), Certificate.generate(), server_profiles=profile
    )
    connect(server, client)
    assert server.keys is not None and client.keys is not None
    return server.keys, client.keys


@pytest.fixture(scope="module", params=PROFILES, ids=lambda p: p.decode())
def contexts(request: pytest.FixtureRequest) -> tuple[SrtpContext, SrtpContext]:
    server_keys, client_keys = handshake_keys(request.param)
    return SrtpContext(server_keys), SrtpContext(client_keys)


def rtp(seq: int, ssrc: int = 0x11223344, payload: bytes = b"\xab" * 100) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, seq, seq * 3000, ssrc) + payload


def rtcp_receiver_report(ssrc: int = 0x55667788) -> bytes:
    return struct.pack("!BBHI", 0x80, 201, 1, ssrc)


def test_rtp_round_trip_both_directions(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    server, client = contexts
    for seq in range(1, 6):
        packet = rtp(seq)
        protected = client.protect_rtp(packet)
        assert protected != packet and len(protected) > len(packet)
        assert server.unprotect_rtp(protected) == packet
        back = rtp(seq, ssrc=0x99AABBCC)
        assert client.unprotect_rtp(server.protect_rtp(back)) == back


def test_rtcp_round_trip_both_directions(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    server, client = contexts
    report = rtcp_receiver_report()
    protected = client.protect_rtcp(report)
    assert protected[:8] == report  # SRTCP keeps the first header in clear
    assert server.unprotect_rtcp(protected) == report
    assert client.unprotect_rtcp(server.protect_rtcp(report)) == report


def test_tampered_packet_is_rejected(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    server, client = contexts
    protected = bytearray(client.protect_rtp(rtp(100)))
    protected[20] ^= 0x01
    with pytest.raises(pylibsrtp.Error):
        server.unprotect_rtp(bytes(protected))
    rtcp = bytearray(client.protect_rtcp(rtcp_receiver_report()))
    rtcp[-1] ^= 0x01
    with pytest.raises(pylibsrtp.Error):
        server.unprotect_rtcp(bytes(rtcp))


def test_wrong_direction_key_is_rejected(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    server, _ = contexts
    with pytest.raises(pylibsrtp.Error):
        server.unprotect_rtp(server.protect_rtp(rtp(200, ssrc=0x01020304)))


def test_retransmission_protected_again(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    """A NACKed packet goes out twice with the same sequence number."""
    server, client = contexts
    packet = rtp(300, ssrc=0x0BADCAFE)
    first = server.protect_rtp(packet)
    second = server.protect_rtp(packet)
    assert first == second
    assert client.unprotect_rtp(first) == packet
    # The receiver's replay window drops the copy it has already seen.
    with pytest.raises(pylibsrtp.Error):
        client.unprotect_rtp(second)


def test_reordering_within_window(contexts: tuple[SrtpContext, SrtpContext]) -> None:
    server, client = contexts
    protected = [client.protect_rtp(rtp(seq, ssrc=0x0FEDCBA9)) for seq in range(1000, 1600)]
    assert server.unprotect_rtp(protected[-1]) == rtp(1599, ssrc=0x0FEDCBA9)
    # 599 packets behind the newest: outside libsrtp's default 128 window, inside ours.
    assert server.unprotect_rtp(protected[0]) == rtp(1000, ssrc=0x0FEDCBA9)


@pytest.mark.parametrize("profile", [b"SRTP_AEAD_AES_128_GCM", b"SRTP_AES128_CM_SHA1_80"])
def test_direct_protect_matches_pylibsrtp(profile: bytes) -> None:
    """The fast path through pylibsrtp's binding gives the public method's bytes exactly, for
    bytes and bytearray input, so a pylibsrtp change that broke it would show here."""
    server_keys, _ = handshake_keys(profile)
    ours = SrtpContext(server_keys)
    policy = pylibsrtp.Policy(
        key=server_keys.local_key,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=server_keys.profile,
    )
    policy.allow_repeat_tx = True
    reference = pylibsrtp.Session(policy)
    # The pinned pylibsrtp has the internals: a silent fall back to the slow path fails here.
    assert ours.direct
    for seq in range(5):
        packet = rtp(seq, payload=bytes(range(seq, seq + 200)))
        assert ours.protect_rtp(bytearray(packet)) == reference.protect(packet)
    with pytest.raises(pylibsrtp.Error):
        ours.protect_rtp(rtp(9, payload=b"\x00" * 2000))


def test_direct_protect_falls_back_to_the_public_method() -> None:
    """Without the binding internals, protection still works through Session.protect."""
    server_keys, _ = handshake_keys(b"SRTP_AEAD_AES_128_GCM")
    policy = pylibsrtp.Policy(
        key=server_keys.local_key,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=server_keys.profile,
    )

    class Wrapped:
        def __init__(self) -> None:
            self.inner = pylibsrtp.Session(policy)

        def protect(self, packet: bytes) -> bytes:
            return self.inner.protect(packet)

    reference = pylibsrtp.Session(policy)
    assert not has_direct_path(Wrapped())  # type: ignore[arg-type]
    protect = direct_protect(Wrapped())  # type: ignore[arg-type]
    assert protect(bytearray(rtp(1))) == reference.protect(rtp(1))


def test_only_an_authenticated_packet_makes_an_inbound_stream(
    contexts: tuple[SrtpContext, SrtpContext],
) -> None:
    """What srtp_streams.InboundStreams relies on: a new SSRC whose packet fails
    authentication leaves libsrtp no stream, one that passes leaves one until removed."""
    server, client = contexts
    for protect, unprotect, packet in (
        (client.protect_rtp, server.unprotect_rtp, rtp(1, ssrc=0x0A0B0C0D)),
        (client.protect_rtcp, server.unprotect_rtcp, rtcp_receiver_report(ssrc=0x0A0B0C0D)),
    ):
        forged = bytearray(protect(packet))
        forged[-1] ^= 0x01
        with pytest.raises(pylibsrtp.Error):
            unprotect(bytes(forged))
        with pytest.raises(pylibsrtp.Error):
            server.remove_inbound(0x0A0B0C0D)  # no stream to remove
        assert unprotect(protect(packet)) == packet
        server.remove_inbound(0x0A0B0C0D)
        with pytest.raises(pylibsrtp.Error):
            server.remove_inbound(0x0A0B0C0D)
