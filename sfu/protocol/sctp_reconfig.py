"""Stream reset (RFC 6525), the part data channels use to close a channel (RFC 8831 section 6.7).

A peer closes a channel by resetting its outgoing stream; we answer "performed" and reset our
own outgoing stream of the same number in the same chunk, so the channel closes both ways and
its number may be used again with sequence numbers from zero.
"""

from __future__ import annotations

import struct

from sfu.wire.sctp import RECONFIG, SctpError, chunk, param

OUTGOING_RESET_REQUEST = 13
RESPONSE = 16
RESULT_PERFORMED = 1
MAX_RESET_STREAMS = 256  # stream numbers read from one request


def parse_reset_request(body: bytes) -> tuple[int, tuple[int, ...]] | None:
    """(request sequence number, streams) of an Outgoing SSN Reset Request; None for any other
    reconfiguration, which we do not support."""
    if len(body) < 16:
        raise SctpError("RE-CONFIG chunk is too short")
    kind, length = struct.unpack_from("!HH", body)
    if kind != OUTGOING_RESET_REQUEST:
        return None
    if length < 16 or length > len(body) or length % 2:
        raise SctpError("RE-CONFIG reset request has a bad length")
    request = struct.unpack_from("!I", body, 4)[0]
    count = min((length - 16) // 2, MAX_RESET_STREAMS)
    return request, struct.unpack_from(f"!{count}H", body, 16)


def reset_chunk(answered: int, own_request: int, last_tsn: int, streams: tuple[int, ...]) -> bytes:
    """Our answer to request `answered`, and our own reset of the same outgoing streams."""
    response = param(RESPONSE, struct.pack("!II", answered, RESULT_PERFORMED))
    numbers = struct.pack(f"!{len(streams)}H", *streams)
    request = param(
        OUTGOING_RESET_REQUEST, struct.pack("!III", own_request, answered, last_tsn) + numbers
    )
    return chunk(RECONFIG, 0, response + request)
