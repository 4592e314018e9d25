"""SRTP/SRTCP protection for one session, keyed from the DTLS handshake.

This is the per-packet hot path, so the methods are the bound pylibsrtp session methods
themselves: no Python frame is added per packet. They raise `pylibsrtp.Error` on a bad
tag, a replayed packet or a malformed header; callers drop (and count) such packets.
"""

from __future__ import annotations

from collections.abc import Callable

from pylibsrtp import Policy, Session

from sfu.dtls import SrtpKeys

__all__ = ["SrtpContext"]

_REPLAY_WINDOW = 1024  # tolerate reordering of video bursts and NACK retransmissions


class SrtpContext:
    """Inbound (peer's key) and outbound (our key) SRTP sessions for any SSRC.

    `protect_rtp(packet) -> bytes`, `unprotect_rtp(packet) -> bytes`,
    `protect_rtcp(packet) -> bytes` and `unprotect_rtcp(packet) -> bytes` raise
    `pylibsrtp.Error` when a packet cannot be processed; the caller drops it.
    """

    __slots__ = ("protect_rtcp", "protect_rtp", "unprotect_rtcp", "unprotect_rtp")

    protect_rtp: Callable[[bytes], bytes]
    unprotect_rtp: Callable[[bytes], bytes]
    protect_rtcp: Callable[[bytes], bytes]
    unprotect_rtcp: Callable[[bytes], bytes]

    def __init__(self, keys: SrtpKeys) -> None:
        inbound = Policy(
            key=keys.remote_key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=keys.profile
        )
        inbound.window_size = _REPLAY_WINDOW
        outbound = Policy(
            key=keys.local_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=keys.profile
        )
        # A NACKed packet is sent again with its original sequence number.
        outbound.allow_repeat_tx = True
        rx, tx = Session(inbound), Session(outbound)
        self.protect_rtp = tx.protect
        self.protect_rtcp = tx.protect_rtcp
        self.unprotect_rtp = rx.unprotect
        self.unprotect_rtcp = rx.unprotect_rtcp
