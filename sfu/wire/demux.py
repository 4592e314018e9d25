"""RFC 7983 / RFC 9443 first-byte demultiplexing of the one UDP port."""

from __future__ import annotations

STUN = "stun"
DTLS = "dtls"
SRTP = "srtp"  # RTP or RTCP; the second byte tells which (see rtp.is_rtcp)
OTHER = "other"


def classify(datagram: bytes) -> str:
    """STUN 0-3, DTLS 20-63, RTP/RTCP 128-191; anything else (TURN, ZRTP, QUIC) is other."""
    if not datagram:
        return OTHER
    first = datagram[0]
    if first < 4:
        return STUN
    if 19 < first < 64:
        return DTLS
    if 127 < first < 192:
        return SRTP
    return OTHER
