"""Compiled fan-out: SRTP protection on OpenSSL and batched sends (see sfu/protocol/_fanout.c)."""

from typing import Any

import pylibsrtp

MAX_PLAINTEXT: int
AES_ENGINES: tuple[str, ...]
"""The AES engines this CPU runs, best first: "vaes", "aes-ni", and always "openssl" (EVP)."""

class SrtpError(pylibsrtp.Error): ...

class SrtpSender:
    """Outbound SRTP for any SSRC: RFC 3711 AES-CM/HMAC-SHA1-80 (profile 1) or RFC 7714
    AES-128-GCM (profile 7), from the DTLS-exported master key || master salt."""

    def __init__(self, profile: int, master: bytes, engine: str | None = None) -> None: ...
    @property
    def engine(self) -> str: ...
    def protect(self, packet: bytes | bytearray) -> bytes: ...

class TransportState:
    """The per-peer fields the fan-out reads for every packet, flat in C; the base of
    PeerSession and the relay's PlainSession."""

    addr: Any
    transport_seq: int

class PlayerState:
    """The per-player fields the fan-out reads, flat in C; the base of SubscriberTrack."""

    ssrc: int
    payload_type: int
    seq_offset: int
    ts_offset: int
    started: bool
    packets: int
    bytes: int
    session: Any
    extension_layout: tuple[int, str, int, int] | None
    _sender: SrtpSender | None
    _fd: int

def fanout(packet: bytes, players: list[PlayerState], now: float) -> tuple[int, int, int]:
    """Rewrite, protect and send `packet` to every started player that has a socket and an
    SrtpSender, with one sendmmsg: (sent, dropped, left), `left` counting the players it
    did not handle."""
