"""RFC 4571 framing: datagrams over a TCP stream, each behind a 16-bit length.

ICE-TCP (RFC 6544) carries STUN, DTLS, SRTP and SRTCP in these frames, so after unframing
every packet goes through the same first-byte demux as a UDP datagram. The reader is sans-IO:
bytes in as they arrive (split or coalesced however TCP likes), whole frames out.
"""

from __future__ import annotations

MAX_FRAME = 0xFFFF  # the length field's limit
# Unframed bytes kept per connection. A frame larger than a media datagram is refused at once,
# so a peer can make the server hold at most one frame and a header.
MAX_DATAGRAM = 2048


class FramingError(ValueError):
    """The stream announced a frame no WebRTC peer sends; the connection should be closed."""


def frame(datagram: bytes | bytearray) -> bytes:
    """One datagram as it goes on the stream."""
    if len(datagram) > MAX_FRAME:
        raise FramingError(f"{len(datagram)} bytes do not fit an RFC 4571 frame")
    return len(datagram).to_bytes(2, "big") + bytes(datagram)


class FrameReader:
    """Reassembles frames from stream bytes; holds at most one partial frame."""

    def __init__(self, max_datagram: int = MAX_DATAGRAM) -> None:
        self._buffer = bytearray()
        self._max = max_datagram

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by `data`; FramingError on a frame over the limit."""
        buffer = self._buffer
        buffer += data
        frames = []
        start = 0
        while len(buffer) - start >= 2:
            size = buffer[start] << 8 | buffer[start + 1]
            if size > self._max:
                raise FramingError(f"frame of {size} bytes is over the {self._max}-byte limit")
            end = start + 2 + size
            if end > len(buffer):
                break
            frames.append(bytes(buffer[start + 2 : end]))
            start = end
        del buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)


# The first bytes of a TCP stream that tell an RFC 4571-framed STUN Binding request from HTTP
# or TLS: the frame's length, the STUN type, the STUN length and the magic cookie.
SNIFF_BYTES = 10
_BINDING_REQUEST_SHAPE = {2: 0x00, 3: 0x01, 6: 0x21, 7: 0x12, 8: 0xA4, 9: 0x42}
_STUN_HEADER = 20


def starts_ice_tcp(prefix: bytes) -> bool | None:
    """Whether a stream beginning with `prefix` is ICE-TCP (its first frame a STUN Binding
    request whose length agrees with the frame's); None while too few bytes have come to tell.
    HTTP begins with a method's letters and TLS with 0x16, so either is told at its first byte."""
    if prefix and prefix[0] > MAX_DATAGRAM >> 8:
        return False
    for index, byte in enumerate(prefix[:SNIFF_BYTES]):
        wanted = _BINDING_REQUEST_SHAPE.get(index)
        if wanted is not None and byte != wanted:
            return False
    if len(prefix) < SNIFF_BYTES:
        return None
    frame_length = prefix[0] << 8 | prefix[1]
    stun_length = prefix[4] << 8 | prefix[5]
    return frame_length == stun_length + _STUN_HEADER
