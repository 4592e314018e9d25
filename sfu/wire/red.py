"""RED (RFC 2198) audio payloads: the primary block, for players that did not ask for RED.

A RED payload is a list of block headers, then the blocks: each redundant block's header is
four bytes (F=1, payload type, timestamp offset, length), the last one (F=0) a single byte
naming the primary block's payload type, and the primary block runs to the end of the
payload. Chromium sends Opus this way when RED is negotiated first: one earlier frame again
with each packet, so a lost packet's audio comes with the next.
"""

from __future__ import annotations

MAX_BLOCKS = 8  # redundant blocks read from one payload; Chromium sends one or two


def primary_block(payload: bytes | bytearray, start: int, end: int) -> tuple[int, int] | None:
    """(offset, payload type) of the primary block of the RED payload in [start, end); None
    when the headers announce more than MAX_BLOCKS blocks or blocks past the end."""
    pos = start
    redundant = 0
    for _ in range(MAX_BLOCKS + 1):
        if pos >= end:
            return None
        if not payload[pos] & 0x80:
            data = pos + 1 + redundant
            return (data, payload[pos] & 0x7F) if data <= end else None
        if pos + 4 > end:
            return None
        redundant += (payload[pos + 2] & 0x03) << 8 | payload[pos + 3]
        pos += 4
    return None


def unwrap(packet: bytes, start: int, end: int, payload_type: int) -> bytes | None:
    """The RTP packet as plain audio: its header (padding bit cleared, `payload_type` in
    place of RED's) and the primary block; None when the RED payload cannot be read."""
    found = primary_block(packet, start, end)
    if found is None:
        return None
    offset, _ = found
    header = bytearray(packet[:start])
    header[0] &= 0xDF
    header[1] = (header[1] & 0x80) | payload_type
    return bytes(header) + packet[offset:end]
