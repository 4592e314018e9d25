"""The client-to-mixer audio level header extension (RFC 6464): how loud each audio packet is.

A sender puts one byte in every audio packet: a voice-activity bit V and a 7-bit level in
-dBov (0 is the loudest, 127 silence or below). Reading it costs no decoding, which is how an
SFU can tell who speaks. The element is found with rtp.find_extension's one pass over the
block; this module only names and reads (or writes, for tests and the harness) the byte.
"""

from __future__ import annotations

from typing import NamedTuple

from sfu.wire import rtp

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


class AudioLevel(NamedTuple):
    """One packet's level in dBov (0 loudest down to -127) and its voice-activity bit.
    (A tuple: one is made per audio packet.)"""

    dbov: int
    voice: bool


def parse_audio_level(element: bytes | None) -> AudioLevel | None:
    """The level of one element's bytes; None unless it is exactly one byte, the only size
    RFC 6464 §3 defines (the one-byte form's length field 0, the two-byte form's length 1)."""
    if element is None or len(element) != 1:
        return None
    byte = element[0]
    return AudioLevel(-(byte & 0x7F), bool(byte & 0x80))


def audio_level(packet: bytes, ext_id: int) -> AudioLevel | None:
    """The level an RTP packet carries under the negotiated extension ID; None when it has
    none or its header is malformed (never raises: this runs on every audio packet)."""
    return parse_audio_level(rtp.find_extension(packet, ext_id))


def audio_level_element(dbov: int, voice: bool) -> bytes:
    """The one-byte element for a level in dBov, clamped to 0..-127."""
    return bytes(((0x80 if voice else 0) | min(127, max(0, -dbov)),))
