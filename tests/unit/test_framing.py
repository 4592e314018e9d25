"""RFC 4571 framing across split and coalesced reads, and its bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.protocol import ice
from sfu.wire.framing import (
    MAX_DATAGRAM,
    SNIFF_BYTES,
    FrameReader,
    FramingError,
    frame,
    starts_ice_tcp,
)

DATAGRAMS = [b"\x00\x01stun", bytes(range(200)), b"\x80" + bytes(1199), b"", b"\x17dtls"]


def test_frame_is_length_then_bytes() -> None:
    assert frame(b"abc") == b"\x00\x03abc"
    assert frame(bytearray(b"")) == b"\x00\x00"
    with pytest.raises(FramingError):
        frame(bytes(0x10000))


def test_coalesced_frames_come_out_whole_and_in_order() -> None:
    reader = FrameReader()
    assert reader.feed(b"".join(frame(d) for d in DATAGRAMS)) == DATAGRAMS
    assert reader.pending == 0


def test_byte_by_byte_reads_reassemble() -> None:
    reader = FrameReader()
    stream = b"".join(frame(d) for d in DATAGRAMS)
    out = []
    for i in range(len(stream)):
        out += reader.feed(stream[i : i + 1])
    assert out == DATAGRAMS


@given(st.lists(st.binary(max_size=MAX_DATAGRAM), max_size=20), st.randoms())
def test_any_split_of_the_stream_gives_the_same_frames(
    datagrams: list[bytes], rng: random.Random
) -> None:
    stream = b"".join(frame(d) for d in datagrams)
    cuts = sorted(rng.sample(range(len(stream) + 1), k=min(len(stream) + 1, 8)))
    reader = FrameReader()
    out = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += reader.feed(stream[start:end])
    assert out == datagrams
    assert reader.pending == 0


def test_oversized_frame_is_refused_before_it_is_buffered() -> None:
    reader = FrameReader()
    with pytest.raises(FramingError, match="over the 2048-byte limit"):
        reader.feed((MAX_DATAGRAM + 1).to_bytes(2, "big") + b"x")
    assert FrameReader(max_datagram=10).feed(frame(b"0123456789")) == [b"0123456789"]


def test_a_partial_frame_is_held_not_lost() -> None:
    reader = FrameReader()
    assert reader.feed(frame(b"hello")[:4]) == []
    assert reader.pending == 4
    assert reader.feed(b"llo" + frame(b"x")) == [b"hello", b"x"]


def binding_request_frame() -> bytes:
    request = ice.binding_request(
        b"t" * 12, "a:b", "p" * 22, controlling=True, tie_breaker=1, priority=1
    )
    return frame(request)


def test_the_first_bytes_tell_ice_tcp_from_http_and_tls() -> None:
    start = binding_request_frame()
    assert starts_ice_tcp(start) is True
    assert starts_ice_tcp(start[:SNIFF_BYTES]) is True
    for cut in range(1, SNIFF_BYTES):
        assert starts_ice_tcp(start[:cut]) is None  # not enough yet
    assert starts_ice_tcp(b"GET / HTTP/1.1\r\n") is False
    assert starts_ice_tcp(b"POST /whip/live HTTP/1.1\r\n") is False
    assert starts_ice_tcp(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03") is False  # ClientHello
    assert starts_ice_tcp(b"G") is False and starts_ice_tcp(b"\x16") is False


@pytest.mark.parametrize(
    "change",
    [
        (3, 0x03),  # a STUN type other than Binding request
        (8, 0x00),  # no magic cookie
        (1, 0x7F),  # a frame length the STUN length does not agree with
        (0, 0x09),  # a frame longer than any datagram
    ],
)
def test_what_is_not_a_binding_request_frame_is_not_ice_tcp(change: tuple[int, int]) -> None:
    start = bytearray(binding_request_frame())
    index, value = change
    start[index] = value
    assert starts_ice_tcp(bytes(start)) is False
