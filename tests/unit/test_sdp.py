"""Offer parsing: real-world offer shapes, strictness on structure, bounded work."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.sdp.negotiate import NegotiationError, negotiate_play, negotiate_publish
from signaling.sdp.parse import MAX_MEDIA_SECTIONS, Rtpmap, SdpError, parse_offer

OFFERS = Path(__file__).parent / "offers"


def load(name: str) -> str:
    return (OFFERS / name).read_text()


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def test_chrome_offer_structure() -> None:
    offer = parse_offer(crlf(load("chrome_publish.sdp")))
    assert offer.bundle_groups == [["0", "1", "2"]]
    assert offer.ice_ufrag is None and not offer.ice_lite
    assert [(m.kind, m.mid, m.direction) for m in offer.media] == [
        ("audio", "0", "sendonly"),
        ("video", "1", "sendonly"),
        ("application", "2", "sendrecv"),
    ]
    audio, video, data = offer.media
    assert audio.ice_ufrag == "Xk2p" and audio.ice_pwd == "bNq3Yt0sZ8hW5mKc1LrE9vPa"
    assert audio.setup == "actpass"
    assert audio.fingerprints[0][0] == "sha-256"
    assert audio.fingerprints[0][1].startswith("3C:4A:8B")
    assert audio.payload_types == [111, 63, 9, 0, 8, 13, 110, 126]
    assert audio.rtpmap[111] == Rtpmap("opus", 48000, 2)
    assert audio.rtpmap[0] == Rtpmap("PCMU", 8000, 0)
    assert audio.fmtp[111] == "minptime=10;useinbandfec=1"
    assert audio.rtcp_fb[111] == ["transport-cc"]
    assert audio.ssrcs[3735928559]["cname"] == "qW3rTy7uIo9pAs1d"
    assert audio.ssrcs[3735928559]["msid"] == "5e1f7a2c-cam 0a9d6c41-mic"
    assert audio.rtcp_mux and not audio.rtcp_rsize

    assert video.port == 9 and video.proto == "UDP/TLS/RTP/SAVPF"
    assert video.payload_types[:4] == [96, 97, 98, 99]
    assert video.rtpmap[97] == Rtpmap("rtx", 90000)
    assert video.fmtp[97] == "apt=96"
    assert video.fmtp[100].endswith("packetization-mode=0;profile-level-id=42001f")
    assert video.rtpmap[45].name == "AV1" and video.rtpmap[116].name == "ulpfec"
    assert video.rtcp_fb[96] == ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
    assert video.extmap[4] == "urn:ietf:params:rtp-hdrext:sdes:mid"
    assert video.extmap[14] == "urn:ietf:params:rtp-hdrext:toffset"
    assert video.ssrc_groups == [("FID", (2882400001, 2882400002))]
    assert video.msid == "5e1f7a2c-cam 7c2b9e80-cam"
    assert video.rtcp_mux and video.rtcp_rsize

    assert data.kind == "application" and data.proto == "UDP/DTLS/SCTP"
    assert data.fmt == ["webrtc-datachannel"] and data.payload_types == []


def test_firefox_offer_session_fingerprint_and_extmap_direction() -> None:
    offer = parse_offer(load("firefox_publish.sdp"))
    assert offer.fingerprints and offer.fingerprints[0][1].startswith("9F:12")
    audio, video = offer.media
    assert audio.fingerprints == []
    assert audio.ice_ufrag == "8f1e2d3c"
    assert audio.extmap[2] == "urn:ietf:params:rtp-hdrext:csrc-audio-level"
    assert audio.rtpmap[9] == Rtpmap("G722", 8000, 1)
    assert video.payload_types == [120, 124, 121, 125, 126, 127, 97, 98]
    assert video.fmtp[126].endswith("packetization-mode=1")
    assert video.extmap[6] == "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
    assert video.ssrc_groups == [("FID", (2233445566, 3344556677))]
    assert set(video.ssrcs) == {2233445566, 3344556677}


def test_obs_offer_session_level_transport() -> None:
    offer = parse_offer(load("obs_publish.sdp"))
    assert offer.ice_ufrag == "QWnM" and offer.ice_pwd == "uSRvHvC5a3dFD5cxkH8AtR"
    assert offer.setup == "actpass" and len(offer.fingerprints) == 1
    assert offer.bundle_groups == [["0", "1"]]  # a=group:LS is not a bundle
    audio, video = offer.media
    assert audio.port == 51423 and audio.ice_ufrag is None
    assert video.rtpmap[96] == Rtpmap("H264", 90000)
    assert video.ssrcs == {
        2853119874: {"cname": "yT5CvKoYkKiH0ZcQ", "msid": "obs-stream obs-video"}
    }


def test_wildcard_feedback_missing_mid_and_session_direction() -> None:
    offer = parse_offer(
        "v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\na=recvonly\na=ice-lite\n"
        "m=video 9 RTP/SAVPF 96 97\na=rtcp-fb:* nack\na=rtcp-fb:96 nack  pli\n"
        "a=rtcp-fb:96 nack\na=rid:h send\na=simulcast:send h;l\n"
        "m=audio 9 RTP/SAVPF 111\na=sendonly\n"
    )
    video, audio = offer.media
    assert offer.ice_lite
    assert video.mid is None and video.effective_mid == "0" and audio.effective_mid == "1"
    assert video.direction == "recvonly" and audio.direction == "sendonly"
    assert video.feedback_for(96) == ["nack pli", "nack"]
    assert video.feedback_for(97) == ["nack"]
    assert video.rids == ["h send"] and video.simulcast == "send h;l"


def test_unknown_attributes_are_tolerated() -> None:
    offer = parse_offer("v=0\na=x-foo\nm=audio 9 RTP/SAVPF 0\na=x-bar:1 2 3\nb=AS:30\n")
    assert offer.media[0].payload_types == [0]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "v=0"),
        ("hello world", "v=0"),
        ("o=- 1 1 IN IP4 0.0.0.0\nv=0\n", "v=0"),
        ("v=0\nv=0\n", "line 2: second v= line"),
        ("v=0\ngarbage\n", "line 2: not a <type>=<value> line"),
        ("v=0\nm=audio\n", "line 2: bad m= line"),
        ("v=0\nm=audio 9 RTP/SAVPF\n", "line 2: bad m= line"),
        ("v=0\nm=audio x RTP/SAVPF 0\n", "line 2: 'x' is not a number"),
        ("v=0\nm=audio 70000 RTP/SAVPF 0\n", "line 2: 70000 is out of range"),
        ("v=0\nm=audio 9 RTP/SAVPF 128\n", "line 2: 128 is out of range"),
        ("v=0\nm=audio 9 RTP/SAVPF opus\n", "not a number"),
        ("v=0\nm=audio 9 RTP/SAVPF 0\na=rtpmap:0 PCMU\n", "line 3: bad a=rtpmap"),
        ("v=0\nm=audio 9 RTP/SAVPF 0\na=rtpmap:200 PCMU/8000\n", "line 3: 200 is out"),
        ("v=0\nm=audio 9 RTP/SAVPF 0\na=fmtp:x a=b\n", "line 3: 'x' is not a number"),
        ("v=0\nm=audio 9 RTP/SAVPF 0\na=rtcp-fb:0\n", "line 3: bad a=rtcp-fb"),
        ("v=0\nm=audio 9 RTP/SAVPF 0\na=extmap:x urn:a\n", "line 3: bad a=extmap"),
        ("v=0\nm=audio 9 RTP/SAVPF 0\na=ssrc:99999999999 cname:a\n", "line 3"),
        ("v=0\nm=audio 9 RTP/SAVPF 0\na=ssrc-group:FID 1 x\n", "line 3"),
        ("v=0\na=fingerprint:sha-256\n", "line 2: bad a=fingerprint"),
        ("v=0\nm=audio 9 RTP/SAVPF 0\na=mid:\n", "line 3: empty a=mid"),
        ("v=0\nm=audio 9 RTP/SAVPF 0\na=mid:a\nm=video 9 RTP/SAVPF 0\na=mid:a\n", "two m-lines"),
    ],
)
def test_malformed_offers_fail_with_one_line_reason(text: str, reason: str) -> None:
    with pytest.raises(SdpError) as caught:
        parse_offer(text)
    message = str(caught.value)
    assert reason in message and "\n" not in message


def test_oversize_offer_rejected() -> None:
    text = "v=0\n" + "a=x-pad:" + "y" * (64 * 1024) + "\n"
    with pytest.raises(SdpError, match="larger than"):
        parse_offer(text)


def test_too_many_m_lines_rejected() -> None:
    body = "m=audio 9 RTP/SAVPF 0\n" * (MAX_MEDIA_SECTIONS + 1)
    with pytest.raises(SdpError, match="more than 64 m-lines"):
        parse_offer("v=0\n" + body)
    assert len(parse_offer("v=0\n" + body[: -len("m=audio 9 RTP/SAVPF 0\n")]).media) == 64


# Pieces of SDP, some hostile (NUL, non-ASCII digits), glued at random by hypothesis.
SDP_PIECES = [
    *["v=0\n", "m=", "a=", "audio ", "video ", "9 ", "RTP/SAVPF ", "96", "*", "/", ":", " "],
    *["rtpmap:", "fmtp:", "ssrc:", "extmap:", "ssrc-group:", "rtcp-fb:", "fingerprint:", "mid:"],
    *["\r\n", "\n", "x", "\u00e9", "\x00", "\u0663"],
]
SDP_ALPHABET = st.sampled_from(SDP_PIECES)
# Whole lines that make a negotiable offer, so the second test reaches negotiation too.
SDP_LINES = st.sampled_from(
    [
        *["a=ice-ufrag:u\n", "a=ice-pwd:p\n", "a=fingerprint:sha-256 AB:CD\n", "a=mid:1\n"],
        *["a=rtpmap:96 VP8/90000\n", "a=rtpmap:97 rtx/90000\n", "a=fmtp:97 apt=96\n"],
        *["a=sendonly\n", "a=recvonly\n", "a=setup:passive\n", "a=ssrc-group:FID 1 2\n"],
        *["m=video 9 UDP/TLS/RTP/SAVPF 96 97\n", "a=rtcp-fb:* nack\n", "a=ssrc:3 cname:c\n"],
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), st.lists(SDP_ALPHABET, max_size=60).map("".join)))
def test_random_text_raises_only_sdp_error(text: str) -> None:
    try:
        parse_offer(text)
    except SdpError as error:
        assert "\n" not in str(error)


@settings(max_examples=200, deadline=None)
@given(st.lists(SDP_ALPHABET, max_size=60).map("".join))
def test_random_lines_after_valid_header(body: str) -> None:
    try:
        offer = parse_offer("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + body)
    except SdpError:
        return
    assert offer.media[0].kind == "video"


@settings(max_examples=300, deadline=None)
@given(st.lists(SDP_LINES, max_size=30).map("".join))
def test_random_valid_lines_negotiate_or_fail_cleanly(body: str) -> None:
    """Whatever parses must negotiate to a result or a NegotiationError, nothing else."""
    try:
        offer = parse_offer("v=0\nm=video 9 UDP/TLS/RTP/SAVPF 96\n" + body)
    except SdpError as error:
        assert "two m-lines with a=mid '1'" in str(error)  # the only way these lines can fail
        return
    for negotiate in (negotiate_publish, negotiate_play):
        try:
            peer = negotiate(offer)
        except NegotiationError:
            continue
        assert peer.tracks and peer.ice_ufrag == "u"
