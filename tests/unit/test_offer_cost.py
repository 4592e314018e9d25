"""Crafted 64 KiB offers cost little: too many formats on an m-line are refused at parse time,
and the largest offer that passes negotiates in time linear in its size."""

from __future__ import annotations

import time

import pytest

from sfu.media import VIDEO
from signaling.sdp.negotiate import negotiate_play
from signaling.sdp.parse import MAX_FORMATS, MAX_OFFER_BYTES, SdpError, parse_offer

HEAD = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:abcd\r\n"
    "a=ice-pwd:abcdefghijklmnopqrstuv\r\na=fingerprint:sha-256 "
    + ":".join(["AB"] * 32)
    + "\r\na=setup:actpass\r\n"
)


def attributes(mid: int) -> str:
    """64 VP8 payload types, each with an rtx whose apt points back at it."""
    lines = [f"c=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na=recvonly\r\n"]
    lines += [f"a=rtpmap:{pt} VP8/90000\r\n" for pt in range(64)]
    lines += [f"a=rtpmap:{pt} rtx/90000\r\na=fmtp:{pt} apt={pt - 64}\r\n" for pt in range(64, 128)]
    return "".join(lines)


def crafted_offer() -> str:
    """The attack measured before the fix: ~21k formats on one m-line, the rtx ones last, so
    a scan of the whole m-line per supported codec finds them only at its end."""
    tail = "\r\n" + attributes(0)
    room = MAX_OFFER_BYTES - len(HEAD) - len(tail) - 600
    formats = [str(i % 64) for i in range(room // 3)] + [str(pt) for pt in range(64, 128)]
    return HEAD + "m=video 9 UDP/TLS/RTP/SAVPF " + " ".join(formats) + tail


def widest_offer() -> str:
    """As many m-lines of 128 distinct formats and their rtpmaps as fit in 64 KiB, bundled."""
    formats = " ".join(str(pt) for pt in range(128))
    sections = []
    size = len(HEAD) + len("a=group:BUNDLE" + " 15" * 16 + "\r\n")
    for mid in range(16):
        section = f"m=video 9 UDP/TLS/RTP/SAVPF {formats}\r\n" + attributes(mid)
        if size + len(section) > MAX_OFFER_BYTES:
            break
        sections.append(section)
        size += len(section)
    group = "a=group:BUNDLE " + " ".join(str(mid) for mid in range(len(sections))) + "\r\n"
    return HEAD + group + "".join(sections)


def timed(text: str) -> tuple[float, object]:
    start = time.perf_counter()
    try:
        result: object = negotiate_play(parse_offer(text))
    except SdpError as exc:
        result = exc
    return (time.perf_counter() - start) * 1000, result


def test_crafted_offer_is_refused_at_parse_time() -> None:
    text = crafted_offer()
    assert len(text.encode()) <= MAX_OFFER_BYTES
    elapsed, result = timed(text)
    print(f"crafted {len(text)}-byte offer: {elapsed:.1f} ms")
    assert isinstance(result, SdpError)
    assert f"the limit is {MAX_FORMATS}" in str(result)


def test_widest_acceptable_offer_negotiates_every_codec_with_its_rtx() -> None:
    text = widest_offer()
    elapsed, peer = timed(text)
    print(f"widest accepted offer ({len(text)} bytes): negotiated in {elapsed:.1f} ms")
    tracks = peer.tracks  # type: ignore[attr-defined]
    assert tracks and all(t.kind == VIDEO for t in tracks)
    for track in tracks:
        assert [c.payload_type for c in track.codecs] == list(range(64))
        assert [c.rtx_payload_type for c in track.codecs] == list(range(64, 128))


@pytest.mark.parametrize("apt", ["", "x", "96x", "999"])
def test_rtx_with_a_bad_apt_is_left_out(apt: str) -> None:
    text = HEAD + (
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n"
        f"a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt={apt}\r\n"
    )
    [track] = negotiate_play(parse_offer(text)).tracks
    assert [(c.payload_type, c.rtx_payload_type) for c in track.codecs] == [(96, None)]
