"""The bytes a player gets of a publisher's packet, shared by both sides of a track.

The fan-out loop (publisher_track) and the NACK answers and probes of a player
(subscriber_track, player) must write the same header fields and extensions, and index
packets kept for NACKs alike; so those live here, apart from either side.
"""

from __future__ import annotations

import struct

from sfu.media import TrackSpec
from sfu.wire import rtp

# Marker+PT byte, sequence number, timestamp, SSRC: bytes 1..11 of the RTP header.
REWRITE = struct.Struct("!BHII")
# Packets kept per video track for players' NACKs: over a second of video at 2.5 Mbps.
CACHE_SIZE = 1024
CACHE_MASK = CACHE_SIZE - 1


# (mid ID, mid value, abs-send-time ID, transport-wide-cc ID) as a player negotiated them.
ExtensionLayout = tuple[int, str, int, int]


def extension_layout(spec: TrackSpec) -> ExtensionLayout | None:
    """Which of the extensions the server writes this player agreed to, and with which IDs
    (one-byte form only: IDs 1-14); None when it agreed to none."""
    ids = {uri: ext_id for ext_id, uri in spec.extensions.items() if 1 <= ext_id <= 14}
    mid_id = ids.get(rtp.MID_URI, 0) if 0 < len(spec.mid.encode()) <= 16 else 0
    layout = (
        mid_id,
        spec.mid if mid_id else "",
        ids.get(rtp.ABS_SEND_TIME_URI, 0),
        ids.get(rtp.TRANSPORT_CC_URI, 0),
    )
    return layout if layout != (0, "", 0, 0) else None


def extend_for_player(packet: bytes, layout: ExtensionLayout, now: float) -> tuple[bytearray, int]:
    """The packet with the player's extensions; the offset of the transport-wide sequence
    number (0 if none), which differs per player session and is filled in per send."""
    mid_id, mid, abs_id, transport_id = layout
    elements = []
    if mid_id:
        elements.append((mid_id, mid.encode()))
    if abs_id:
        elements.append((abs_id, rtp.abs_send_time(now)))
    if transport_id:
        elements.append((transport_id, b"\x00\x00"))
    buf, offsets = rtp.add_extensions(packet, elements)
    return buf, offsets[-1] if transport_id else 0
