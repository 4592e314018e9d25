"""Which forwarding path is active: the compiled fan-out (sfu.protocol._fanout) or pure Python.

The extension is optional at build time, and `SFU_NO_EXTENSION=1` forces the Python path;
both produce the same bytes. `PATH` is what the server logs at start and reports in its stats.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from sfu.protocol.dtls import SrtpKeys

log = logging.getLogger(__name__)


def _load() -> tuple[Any, str]:
    if os.environ.get("SFU_NO_EXTENSION", "") not in ("", "0"):
        return None, "SFU_NO_EXTENSION is set"
    try:
        from sfu.protocol import _fanout
    except ImportError as error:
        return None, f"the extension is not built ({error})"
    return _fanout, "sfu.protocol._fanout is built"


_extension, WHY = _load()
PATH = "compiled" if _extension is not None else "python"

# What fanout() does to a payload besides the header, by its codec and layering (the values
# _fanout.h's RULE_* defines): nothing; continue each player's VP8 ids and apply its temporal
# limit (a VP8 simulcast layer); or each player's VP9 SVC layers and marker (svc.SvcFilter).
PAYLOAD_AS_IS = 0
PAYLOAD_VP8_IDS = 1
PAYLOAD_VP9_SVC = 2
# fanout(packet, players, now, payload_rule) -> (sent, dropped, left), or None on the Python
# path.
fanout: Callable[[bytes, list, float, int], tuple[int, int, int]] | None = (
    _extension.fanout if _extension is not None else None
)
# The base of SubscriberTrack: its per-player fields kept flat in C, or a plain object, and
# then SubscriberTrack keeps them in PLAYER_SLOTS of its own (less the C path's own _fd and
# _sender, which the Python path never sets).
PlayerState: type = _extension.PlayerState if _extension is not None else object
PLAYER_SLOTS: tuple[str, ...] = (
    ()
    if _extension is not None
    else (
        "bytes",
        "extension_layout",
        "first_out_seq",
        "max_temporal",
        "packets",
        "payload_type",
        "picture_offset",
        "seq_offset",
        "session",
        "ssrc",
        "started",
        "target_spatial",
        "target_temporal",
        "current_spatial",
        "current_temporal",
        "svc_picture",
        "temporal_drops",
        "tl0_offset",
        "ts_offset",
        "vp8_after",
    )
)
# The base of PeerSession and the relay's PlainSession: addr and transport_seq, which the
# fan-out reads for every packet, flat in C; or a plain object, and then a subclass with
# __slots__ keeps them in TRANSPORT_SLOTS of its own.
TransportState: type = _extension.TransportState if _extension is not None else object
TRANSPORT_SLOTS: tuple[str, ...] = () if _extension is not None else ("addr", "transport_seq")
# How the compiled path can run AES here, best first ("openssl": EVP); the first is used.
AES_ENGINES: tuple[str, ...] = _extension.AES_ENGINES if _extension is not None else ()
# What runs forwarded media's AES: that engine, or pylibsrtp's libsrtp on the Python path.
SRTP_AES = AES_ENGINES[0] if AES_ENGINES else "libsrtp"


def announce() -> None:
    """The log line that says which path forwards packets (once, at server start)."""
    log.info("forwarding path: %s (%s; SRTP's AES on %s)", PATH, WHY, SRTP_AES)


def bind(player: Any, sendto: Callable) -> Callable[[bytes | bytearray], bytes]:
    """Prepare `player` (a SubscriberTrack being attached) for the active path and return
    what protects its RTP on both paths (the fan-out and NACK answers share its SRTP state).

    A player takes the compiled path when its session has DTLS-SRTP keys of a profile the
    extension implements and it sends with a datagram socket's own sendto; otherwise it keeps
    the session's pylibsrtp protection and the Python loop."""
    session = player.session
    if fanout is None:
        return session.srtp.protect_rtp
    if player._sender is None:  # made once: the rollover counters must carry over re-attaches
        player._sender = _srtp_sender(session)
    sender = player._sender
    player._fd = _socket_fd(sendto) if sender is not None else -1
    return sender.protect if sender is not None else session.srtp.protect_rtp


def srtp_sender(keys: SrtpKeys, engine: str | None = None) -> Any:
    """The compiled path's SRTP protection with our side's keys, AES on `engine` (one of
    AES_ENGINES; None: the best); ValueError for a profile or engine it does not have."""
    return _extension.SrtpSender(keys.profile, keys.local_key, engine)


def _srtp_sender(session: Any) -> Any:
    keys = getattr(getattr(session, "dtls", None), "keys", None)
    if not isinstance(keys, SrtpKeys):
        return None
    try:
        return srtp_sender(keys)
    except ValueError as error:
        log.warning("SRTP profile %s stays on the Python path: %s", keys.profile, error)
        return None


def _socket_fd(sendto: Callable) -> int:
    """The descriptor behind a socket's bound sendto, or -1 for any other send function."""
    owner = getattr(sendto, "__self__", None)
    if not isinstance(owner, socket.socket) or getattr(sendto, "__name__", "") != "sendto":
        return -1
    if owner.type != socket.SOCK_DGRAM or owner.getblocking():
        return -1
    return owner.fileno()
