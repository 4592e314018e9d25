"""RFC 7983 / RFC 9443 first-byte demultiplexing of the single media port."""

from __future__ import annotations

import pytest

from sfu.wire.demux import DTLS, OTHER, SRTP, STUN, classify


def expected_class(first: int) -> str:
    """RFC 7983 §7 as a table of ranges (RFC 9443 keeps these for STUN, DTLS and RTP)."""
    ranges = [(0, 3, STUN), (20, 63, DTLS), (128, 191, SRTP)]
    for low, high, name in ranges:
        if low <= first <= high:
            return name
    return OTHER


@pytest.mark.parametrize("first", range(256))
def test_every_first_byte(first: int) -> None:
    datagram = bytes([first]) + bytes(range(1, 20))
    assert classify(datagram) == expected_class(first)
    assert classify(bytes([first])) == expected_class(first)


def test_range_sizes() -> None:
    counts = {STUN: 0, DTLS: 0, SRTP: 0, OTHER: 0}
    for first in range(256):
        counts[classify(bytes([first, 0]))] += 1
    assert counts == {STUN: 4, DTLS: 44, SRTP: 64, OTHER: 144}


@pytest.mark.parametrize(
    ("datagram", "expected"),
    [
        (b"\x00\x01\x00\x00\x21\x12\xa4\x42", STUN),  # Binding Request
        (b"\x16\xfe\xfd", DTLS),  # handshake record, DTLS 1.2
        (b"\x17\xfe\xfd", DTLS),  # application data
        (b"\x80\x60", SRTP),  # RTP PT 96
        (b"\x80\xc8", SRTP),  # RTCP SR
        (b"\x40\x00", OTHER),  # TURN ChannelData (64-79)
        (b"\x10", OTHER),  # ZRTP (16-19)
        (b"\xc0", OTHER),  # QUIC long header
    ],
)
def test_known_protocols(datagram: bytes, expected: str) -> None:
    assert classify(datagram) == expected


def test_empty_datagram() -> None:
    assert classify(b"") == OTHER
