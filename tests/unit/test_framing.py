"""RFC 4571 framing across split and coalesced reads, and its bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sfu.wire.framing import MAX_DATAGRAM, FrameReader, FramingError, frame

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
