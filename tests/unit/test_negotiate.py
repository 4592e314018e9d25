"""Negotiation and answer rendering: codec choice, transport checks, answers aiortc accepts."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

from sfu.media import Codec, DataParams, PeerParams, best_receivable
from sfu.wire.h264_profile import parse_profile_level_id
from signaling.sdp.answer import candidate_priority, render_answer
from signaling.sdp.negotiate import (
    PLAY_EXTENSIONS,
    BundleRequired,
    CodecMismatch,
    NegotiationError,
    UnsupportedMedia,
    negotiate_play,
    negotiate_publish,
    negotiate_subscribe,
)
from signaling.sdp.parse import MAX_MEDIA_SECTIONS, SdpError, parse_offer

OFFERS = Path(__file__).parent / "offers"
FINGERPRINT = ":".join(["AB"] * 32)
MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
TWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"


def load(name: str) -> str:
    return (OFFERS / name).read_text()


def as_player(text: str) -> str:
    """A WHEP-style offer: the same m-lines, recvonly, without the sender's SSRCs."""
    lines = [line for line in text.split("\n") if not line.startswith(("a=ssrc", "a=msid:"))]
    return "\n".join(lines).replace("a=sendonly", "a=recvonly")


def answer_for(text: str, peer: PeerParams, direction: str, **kwargs: object) -> str:
    return render_answer(
        parse_offer(text),
        peer,
        direction=direction,
        ice_ufrag="srvu",
        ice_pwd="serverpasswordserverpass",
        fingerprint=FINGERPRINT,
        candidates=[("127.0.0.1", 8000)],
        **kwargs,  # type: ignore[arg-type]
    )


# --- publish ---------------------------------------------------------------------------------


def test_publish_chrome_picks_first_supported_codec_per_m_line() -> None:
    peer = negotiate_publish(parse_offer(load("chrome_publish.sdp")))
    assert peer.ice_ufrag == "Xk2p" and peer.ice_pwd == "bNq3Yt0sZ8hW5mKc1LrE9vPa"
    assert peer.fingerprints[0][0] == "sha-256"
    assert [t.mid for t in peer.tracks] == ["0", "1"]  # the datachannel is not a track
    audio, video = peer.tracks
    assert [c.payload_type for c in audio.codecs] == [111]
    assert audio.codecs[0].fmtp == "minptime=10;useinbandfec=1"
    assert audio.codecs[0].rtcp_fb == ("transport-cc",)
    assert audio.codecs[0].channels == 2
    assert audio.ssrc == 3735928559 and audio.rtx_ssrc is None
    # The audio level is read too, for a room's speaker detection (audio m-lines carry it).
    assert audio.extensions == {1: AUDIO_LEVEL_URI, 2: ABS_SEND_TIME, 3: TWCC, 4: MID_URI}
    (vp8,) = video.codecs
    assert (vp8.name, vp8.payload_type, vp8.rtx_payload_type) == ("VP8", 96, None)
    assert vp8.rtcp_fb == ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli")
    assert (video.ssrc, video.rtx_ssrc) == (2882400001, 2882400002)
    assert video.extensions == {2: ABS_SEND_TIME, 3: TWCC, 4: MID_URI}


def test_publish_h264_first_skips_packetization_mode_0() -> None:
    text = load("chrome_publish.sdp").replace(
        "96 97 98 99 100 101 102 103 104 105", "100 101 104 105 102 103 96 97 98 99"
    )
    (_, video) = negotiate_publish(parse_offer(text)).tracks
    (h264,) = video.codecs
    assert h264.name == "H264" and h264.payload_type == 104
    assert h264.fmtp_params["profile-level-id"] == "42e01f"


def test_publish_firefox_session_fingerprint_and_media_ufrag() -> None:
    peer = negotiate_publish(parse_offer(load("firefox_publish.sdp")))
    assert peer.ice_ufrag == "8f1e2d3c"
    assert peer.fingerprints[0][1].startswith("9F:12")
    audio, video = peer.tracks
    assert audio.codecs[0].payload_type == 109 and audio.codecs[0].rtcp_fb == ()
    assert audio.extensions == {1: AUDIO_LEVEL_URI, 3: MID_URI}
    assert video.codecs[0].payload_type == 120
    assert video.extensions == {3: MID_URI, 4: ABS_SEND_TIME, 7: TWCC}
    assert (video.ssrc, video.rtx_ssrc) == (2233445566, 3344556677)


def test_publish_obs_h264_only_with_session_level_transport() -> None:
    peer = negotiate_publish(parse_offer(load("obs_publish.sdp")))
    assert peer.ice_ufrag == "QWnM" and len(peer.fingerprints) == 1
    audio, video = peer.tracks
    assert audio.ssrc == 2853119873
    assert video.codecs[0].payload_type == 96 and video.codecs[0].name == "H264"
    assert video.codecs[0].rtcp_fb == ("nack", "nack pli", "goog-remb")
    assert (video.ssrc, video.rtx_ssrc) == (2853119874, None)


def test_publish_simulcast_takes_first_layer_and_its_rtx() -> None:
    text = load("obs_publish.sdp").replace(
        "a=ssrc:2853119874 cname:yT5CvKoYkKiH0ZcQ",
        "a=ssrc-group:FID 11 12\na=ssrc-group:FID 21 22\na=ssrc-group:SIM 21 11\n"
        "a=ssrc:2853119874 cname:yT5CvKoYkKiH0ZcQ",
    )
    video = negotiate_publish(parse_offer(text)).tracks[1]
    assert (video.ssrc, video.rtx_ssrc) == (21, 22)


def test_publish_rejects_recvonly_and_disabled_m_lines() -> None:
    text = load("obs_publish.sdp").replace("a=mid:0\na=sendonly", "a=mid:0\na=recvonly")
    text = text.replace("m=video 51423", "m=video 0")
    with pytest.raises(UnsupportedMedia):
        negotiate_publish(parse_offer(text))
    bundle_only = text.replace("a=mid:1\n", "a=mid:1\na=bundle-only\n")
    assert [t.mid for t in negotiate_publish(parse_offer(bundle_only)).tracks] == ["1"]


def test_unsupported_codecs_only_is_unsupported_media() -> None:
    text = load("obs_publish.sdp").replace("opus/48000/2", "PCMU/8000")
    text = text.replace("H264/90000", "H263/90000")
    with pytest.raises(UnsupportedMedia, match="no audio or video m-line"):
        negotiate_play(parse_offer(as_player(text)))
    with pytest.raises(
        UnsupportedMedia, match=r"audio m-line .* offers PCMU; this server takes opus"
    ):
        negotiate_publish(parse_offer(text))


def only_video_format(text: str, pt: int) -> str:
    """The offer with its video m-line cut down to payload type `pt`."""
    return re.sub(r"m=video (\d+) (\S+) [\d ]+", rf"m=video \1 \2 {pt}", text)


def test_publisher_whose_video_cannot_be_carried_gets_a_422_naming_both() -> None:
    """Chromium sending AV1 only got a 201 with the video m-line rejected and went "live"
    with audio alone; now the offer is refused with what it offered and what is taken."""
    av1_only = only_video_format(load("chrome_publish.sdp"), 45)
    with pytest.raises(UnsupportedMedia) as caught:
        negotiate_publish(parse_offer(av1_only))
    message = str(caught.value)
    assert message.startswith("the video m-line (mid 1) offers AV1; this server takes VP8, VP9")
    assert "H264" in message and "\n" not in message


def test_publisher_audio_only_on_purpose_is_fine() -> None:
    """Video not sent (inactive, recvonly, or port 0) is a choice, not a codec failure."""
    audio, video = load("chrome_publish.sdp").split("m=video")
    av1 = only_video_format(load("chrome_publish.sdp"), 45)
    for off in (
        audio + "m=video" + video.replace("a=sendonly", "a=inactive"),
        audio + "m=video" + video.replace("a=sendonly", "a=recvonly"),
        av1.replace("m=video 9 ", "m=video 0 "),
        audio.replace("BUNDLE 0 1 2", "BUNDLE 0"),
    ):
        peer = negotiate_publish(parse_offer(only_video_format(off, 45)))
        assert [t.kind for t in peer.tracks] == ["audio"]


def test_publisher_h264_packetization_mode_0_only_is_taken() -> None:
    text = load("obs_publish.sdp").replace("packetization-mode=1", "packetization-mode=0")
    (_, video) = negotiate_publish(parse_offer(text)).tracks
    assert video.codecs[0].fmtp_params["packetization-mode"] == "0"


def test_publisher_vp9_profiles_0_and_2_are_taken_others_are_not() -> None:
    text = only_video_format(load("chrome_publish.sdp"), 98)
    (_, video) = negotiate_publish(parse_offer(text)).tracks
    assert (video.codecs[0].name, video.codecs[0].fmtp) == ("VP9", "profile-id=0")
    two = text.replace("a=fmtp:98 profile-id=0", "a=fmtp:98 profile-id=2")
    assert negotiate_publish(parse_offer(two)).tracks[1].codecs[0].fmtp == "profile-id=2"
    with pytest.raises(UnsupportedMedia, match="offers VP9"):
        negotiate_publish(parse_offer(two.replace("profile-id=2", "profile-id=1")))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda t: re.sub(r"a=ice-ufrag:.*\n", "", t), "offer has no ice-ufrag"),
        (lambda t: re.sub(r"a=ice-pwd:.*\n", "", t), "offer has no ice-pwd"),
        (lambda t: re.sub(r"a=fingerprint:.*\n", "", t), "offer has no fingerprint"),
        (
            lambda t: t.replace("a=setup:actpass", "a=setup:passive"),
            "we are DTLS server (setup:passive); offer setup:passive cannot work",
        ),
        (lambda t: t.replace("a=setup:actpass", "a=setup:holdconn"), "setup 'holdconn' is not"),
    ],
)
def test_transport_errors(edit: Callable[[str], str], reason: str) -> None:
    for name in ("chrome_publish.sdp", "obs_publish.sdp"):
        offer = parse_offer(edit(load(name)))
        with pytest.raises(NegotiationError) as caught:
            negotiate_publish(offer)
        assert not isinstance(caught.value, UnsupportedMedia)
        assert reason in str(caught.value)


def test_setup_active_is_accepted() -> None:
    text = load("obs_publish.sdp").replace("a=setup:actpass", "a=setup:active")
    assert len(negotiate_publish(parse_offer(text)).tracks) == 2


# --- play ------------------------------------------------------------------------------------


def test_play_offers_every_supported_codec_with_rtx_in_offer_order() -> None:
    peer = negotiate_play(parse_offer(as_player(load("chrome_publish.sdp"))))
    audio, video = peer.tracks
    assert [(c.payload_type, c.rtx_payload_type) for c in audio.codecs] == [
        (111, None),
        (63, None),  # red/48000/2 over 111
    ]
    assert [(c.payload_type, c.rtx_payload_type) for c in video.codecs] == [
        (96, 97),
        (98, 99),  # VP9 profile 0
        (100, 101),  # H264 packetization-mode 0: can play a stream sent so
        (102, 103),
        (104, 105),
    ]
    # The server writes mid, abs-send-time and transport-wide CC for players, with their IDs.
    assert sorted(video.extensions.values()) == sorted(PLAY_EXTENSIONS)
    assert video.ssrc is None


H264_CB = Codec("H264", 102, 90000, fmtp="packetization-mode=1;profile-level-id=42e01f")
H264_HIGH = Codec("H264", 102, 90000, fmtp="packetization-mode=1;profile-level-id=64001f")
OPUS = Codec("opus", 111, 48000, 2)


def test_play_preferred_codec_goes_first() -> None:
    offer = parse_offer(as_player(load("chrome_publish.sdp")))
    video = negotiate_play(offer, {"video": H264_CB, "audio": OPUS}).tracks[1]
    assert [c.payload_type for c in video.codecs] == [104, 96, 98, 100, 102]
    firefox = parse_offer(as_player(load("firefox_publish.sdp")))
    video = negotiate_play(firefox, {"video": H264_CB}).tracks[1]
    assert [(c.payload_type, c.rtx_payload_type) for c in video.codecs] == [
        (126, 127),
        (120, 124),
        (121, 125),  # VP9
        (97, 98),  # H264 packetization-mode 0
    ]


def test_data_channel_m_line_bounds_and_refusals() -> None:
    text = load("chrome_publish.sdp")
    assert negotiate_play(parse_offer(as_player(text))).data is not None
    assert negotiate_subscribe(parse_offer(as_player(text))).data == DataParams("2", 5000, 262144)
    unlimited = parse_offer(text.replace("a=max-message-size:262144", "a=max-message-size:0"))
    assert negotiate_publish(unlimited).data == DataParams("2", 5000, 0xFFFFFFFF)
    other = parse_offer(text.replace("webrtc-datachannel", "webrtc-foo"))
    assert negotiate_publish(other).data is None
    with pytest.raises(SdpError):
        parse_offer(text.replace("a=sctp-port:5000", "a=sctp-port:70000"))
    apart = parse_offer(text.replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 1"))
    assert negotiate_publish(apart).data is None  # not on the media's transport: refused


def test_play_rejects_sendonly_m_lines() -> None:
    with pytest.raises(UnsupportedMedia):
        negotiate_play(parse_offer(load("chrome_publish.sdp")))


# --- answer ----------------------------------------------------------------------------------


def test_publish_answer_accepts_datachannel_and_reparses() -> None:
    text = load("chrome_publish.sdp")
    peer = negotiate_publish(parse_offer(text))
    assert peer.data == DataParams("2", 5000, 262144)
    answer = answer_for(text, peer, "recvonly")
    assert answer.endswith("\r\n") and "\n" not in answer.replace("\r\n", "")
    assert "a=ice-lite\r\n" in answer and "a=group:BUNDLE 0 1 2\r\n" in answer
    assert "m=application 8000 UDP/DTLS/SCTP webrtc-datachannel\r\n" in answer
    assert "msid-semantic" not in answer
    parsed = parse_offer(answer)
    assert parsed.ice_lite and parsed.bundle_groups == [["0", "1", "2"]]
    audio, video, data = parsed.media
    assert [m.mid for m in parsed.media] == ["0", "1", "2"]
    assert (data.sctp_port, data.max_message_size, data.setup) == (5000, 262144, "passive")
    assert data.ice_ufrag == "srvu" and data.fingerprints == [("sha-256", FINGERPRINT)]
    for section in (audio, video):
        assert section.port == 8000 and section.direction == "recvonly"
        assert section.setup == "passive" and section.ice_ufrag == "srvu"
        assert section.fingerprints == [("sha-256", FINGERPRINT)]
        assert section.rtcp_mux
    assert audio.extmap == {1: AUDIO_LEVEL_URI, 2: ABS_SEND_TIME, 3: TWCC, 4: MID_URI}
    assert video.extmap == {2: ABS_SEND_TIME, 3: TWCC, 4: MID_URI}
    assert video.payload_types == [96] and video.rtcp_rsize and not audio.rtcp_rsize
    assert video.feedback_for(96) == ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]
    assert audio.fmtp[111] == "minptime=10;useinbandfec=1"
    assert answer.count("a=candidate:1 1 udp 2130706431 127.0.0.1 8000 typ host\r\n") == 3
    assert answer.count("a=end-of-candidates\r\n") == 3


def test_rejected_media_answer_keeps_first_payload_type() -> None:
    text = load("chrome_publish.sdp").replace("a=sendonly", "a=recvonly", 1)
    answer = answer_for(text, negotiate_publish(parse_offer(text)), "recvonly")
    assert "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n" in answer
    assert "a=group:BUNDLE 1 2\r\n" in answer
    assert parse_offer(answer).media[0].direction == "inactive"


def test_play_answer_carries_rtx_msid_and_ssrcs() -> None:
    text = as_player(load("chrome_publish.sdp"))
    peer = negotiate_play(parse_offer(text), {"video": H264_CB})
    ssrcs = {"0": (1111, None), "1": (2222, 3333)}
    answer = answer_for(text, peer, "sendonly", ssrcs=ssrcs, cname="cn", stream_id="live")
    assert "a=msid-semantic: WMS *\r\n" in answer
    assert "a=msid:live live-video-1\r\n" in answer
    assert "a=ssrc-group:FID 2222 3333\r\n" in answer
    assert "a=fmtp:103 apt=102\r\n" in answer and "a=rtpmap:103 rtx/90000\r\n" in answer
    audio, video, _ = parse_offer(answer).media
    assert video.direction == "sendonly"
    assert video.payload_types == [104, 105, 96, 97, 98, 99, 100, 101, 102, 103]
    assert sorted(video.extmap.values()) == sorted(PLAY_EXTENSIONS)
    assert video.ssrcs == {
        2222: {"cname": "cn", "msid": "live live-video-1"},
        3333: {"cname": "cn", "msid": "live live-video-1"},
    }
    assert video.ssrc_groups == [("FID", (2222, 3333))]
    assert audio.ssrcs == {1111: {"cname": "cn", "msid": "live live-audio-0"}}
    assert audio.rtpmap[111].channels == 2


def obs_answer(candidates: list[tuple[str, int]], **options: object) -> str:
    """The answer to OBS's offer with these candidates."""
    text = load("obs_publish.sdp")
    return render_answer(
        parse_offer(text),
        negotiate_publish(parse_offer(text)),
        direction="recvonly",
        ice_ufrag="u",
        ice_pwd="p" * 22,
        fingerprint=FINGERPRINT,
        candidates=candidates,
        **options,  # type: ignore[arg-type]
    )


def test_answer_candidates_priority_foundation_and_ipv6() -> None:
    answer = obs_answer([("2001:db8::1", 9000), ("192.0.2.7", 9000), ("2001:db8::1", 9001)])
    assert "m=audio 9000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP6 2001:db8::1\r\n" in answer
    lines = [line for line in answer.split("\r\n") if line.startswith("a=candidate:")]
    assert len(lines) == 6
    fields = [line.split() for line in lines[:3]]
    priorities = [int(f[3]) for f in fields]
    assert priorities == [candidate_priority(i) for i in range(3)]
    assert priorities[0] > priorities[1] > priorities[2]
    assert candidate_priority(0) == (126 << 24) + (65535 << 8) + 255
    foundations = [f[0].removeprefix("a=candidate:") for f in fields]
    assert foundations[0] == foundations[2] != foundations[1]


def test_answer_tcp_candidates_rank_below_udp() -> None:
    answer = obs_answer([("192.0.2.7", 9000), ("2001:db8::1", 9000)], tcp_ports=(9443,))
    section = answer.split("m=")[1]
    fields = [line.split() for line in section.split("\r\n") if line.startswith("a=candidate:")]
    assert [(f[2], f[4], f[5]) for f in fields] == [
        ("udp", "192.0.2.7", "9000"),
        ("udp", "2001:db8::1", "9000"),
        ("tcp", "192.0.2.7", "9443"),
        ("tcp", "2001:db8::1", "9443"),
    ]
    assert all(f[-2:] == ["tcptype", "passive"] for f in fields[2:])
    assert min(int(f[3]) for f in fields[:2]) > max(int(f[3]) for f in fields[2:])
    assert len({f[0] for f in fields}) == 4  # a transport of its own is a foundation of its own


def test_answer_rejects_bad_arguments() -> None:
    text = load("obs_publish.sdp")
    peer = negotiate_publish(parse_offer(text))
    with pytest.raises(ValueError, match="direction"):
        answer_for(text, peer, "sendrecv")
    with pytest.raises(ValueError, match="candidate"):
        render_answer(
            parse_offer(text),
            peer,
            direction="recvonly",
            ice_ufrag="u",
            ice_pwd="p",
            fingerprint=FINGERPRINT,
            candidates=[],
        )


# --- aiortc ----------------------------------------------------------------------------------


@pytest.fixture
def local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *args, **kwargs: ["127.0.0.1"])


async def aiortc_round_trip(publish: bool) -> RTCPeerConnection:
    """Let aiortc offer, answer it ourselves, and hand the answer back to aiortc."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if publish:
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    else:
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = parse_offer(pc.localDescription.sdp)
    if publish:
        peer = negotiate_publish(offer)
        answer = answer_for(pc.localDescription.sdp, peer, "recvonly")
    else:
        peer = negotiate_play(offer, {"video": H264_CB})
        ssrcs = {track.mid: (4000 + i, 5000 + i) for i, track in enumerate(peer.tracks)}
        answer = answer_for(pc.localDescription.sdp, peer, "sendonly", ssrcs=ssrcs)
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pc


async def test_aiortc_accepts_publish_answer(local_only: None) -> None:
    pc = await aiortc_round_trip(publish=True)
    try:
        assert pc.signalingState == "stable"
        assert [t.currentDirection for t in pc.getTransceivers()] == ["sendonly", "sendonly"]
        video = pc.getTransceivers()[0]
        assert [c.mimeType for c in video._codecs] == ["video/VP8"]
    finally:
        await pc.close()


async def test_aiortc_accepts_play_answer(local_only: None) -> None:
    pc = await aiortc_round_trip(publish=False)
    try:
        assert pc.signalingState == "stable"
        assert [t.currentDirection for t in pc.getTransceivers()] == ["recvonly", "recvonly"]
        assert pc.getTransceivers()[0].receiver.track.id == "litesfu-video-0"
    finally:
        await pc.close()


async def test_aiortc_offers_parse_and_negotiate(local_only: None) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = parse_offer(pc.localDescription.sdp)
    finally:
        await pc.close()
    video, audio = offer.media
    assert audio.rtpmap[audio.payload_types[0]].name == "opus"
    assert video.rtpmap[video.payload_types[0]].name == "VP8"
    assert video.ssrc_groups and video.ssrc_groups[0][0] == "FID"
    assert len(video.fingerprints) == 3 and video.setup == "actpass"
    peer = negotiate_publish(offer)
    assert [t.kind for t in peer.tracks] == ["video", "audio"]
    assert peer.tracks[0].rtx_ssrc == video.ssrc_groups[0][1][1]
    assert peer.tracks[1].codecs[0].name == "opus"
    assert peer.tracks[0].extensions == {1: MID_URI, 3: ABS_SEND_TIME}


# --- BUNDLE ----------------------------------------------------------------------------------


def unbundled(text: str) -> str:
    """The offer as a client with bundle-policy none writes it (GStreamer webrtcbin's
    default): no BUNDLE group, and each m-line with ICE credentials of its own."""
    lines = [line for line in text.split("\n") if not line.startswith("a=group:BUNDLE")]
    out, section = [], 0
    for line in lines:
        if line.startswith("m="):
            section += 1
        if line.startswith("a=ice-ufrag:"):
            line = f"a=ice-ufrag:sec{section}"
        if line.startswith("a=ice-pwd:"):
            line = f"a=ice-pwd:{'p' * 21}{section}"
        out.append(line)
    return "\n".join(out)


def test_unbundled_offer_of_two_m_lines_is_refused_with_the_reason() -> None:
    with pytest.raises(BundleRequired, match="BUNDLE") as caught:
        negotiate_publish(parse_offer(unbundled(load("chrome_publish.sdp"))))
    assert isinstance(caught.value, UnsupportedMedia)  # a 422, never a half-working 201


def test_bundle_group_must_hold_every_accepted_m_line() -> None:
    text = load("chrome_publish.sdp").replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 1 2")
    with pytest.raises(BundleRequired):
        negotiate_publish(parse_offer(text))


def test_single_unbundled_m_line_is_answered_without_a_group() -> None:
    """One m-line needs no bundling, and the answer never adds a group the offer lacked."""
    text = unbundled(load("chrome_publish.sdp")).replace("a=sendonly", "a=inactive", 1)
    peer = negotiate_publish(parse_offer(text))
    assert [t.kind for t in peer.tracks] == ["video"]
    answer = answer_for(text, peer, "recvonly")
    assert "a=group:BUNDLE" not in answer
    assert parse_offer(answer).bundle_groups == []


# --- codec mismatch --------------------------------------------------------------------------


def test_player_that_cannot_take_the_streams_codec_is_refused_naming_both() -> None:
    """Firefox without H264 playing an H264 stream got a 201 and a black video; now a 422
    that says what the stream sends and what the offer can take."""
    vp8_only = re.sub(
        r"m=video (\d+) (\S+) [\d ]+",
        r"m=video \1 \2 120",
        as_player(load("firefox_publish.sdp")),
    )
    offer = parse_offer(vp8_only)
    assert [offer.media[1].rtpmap[pt].name for pt in offer.media[1].payload_types] == ["VP8"]
    with pytest.raises(
        CodecMismatch, match=r"sends H264 .* video; this offer can receive only VP8$"
    ):
        negotiate_play(offer, {"video": H264_CB})
    peer = negotiate_play(offer, {"video": Codec("VP8", 96, 90000)})  # it plays a VP8 stream
    assert peer.tracks[1].codecs[0].name == "VP8"
    peer = negotiate_play(offer)  # and a stream not yet published: it gets what it can take
    assert peer.tracks[1].codecs[0].name == "VP8"


def test_a_room_subscriber_may_offer_a_slot_per_kind_per_participant() -> None:
    """A WHEP player stays at 16 m-lines; a room subscriber of a 10-person room needs 18, and
    may have up to the parser's cap (beyond that the parser refuses the offer)."""
    from bench.sdp import build_offer

    kinds = ("audio", "video") * 9
    offer = parse_offer(build_offer("uf", "pw" * 11, FINGERPRINT, send=False, kinds=kinds))
    with pytest.raises(UnsupportedMedia, match="18 audio/video m-lines; the limit is 16"):
        negotiate_play(offer)
    assert [t.mid for t in negotiate_subscribe(offer).tracks] == [str(i) for i in range(18)]
    crowded = ("audio", "video") * (MAX_MEDIA_SECTIONS // 2 + 1)
    with pytest.raises(Exception, match="m-lines"):
        negotiate_subscribe(
            parse_offer(build_offer("uf", "pw" * 11, FINGERPRINT, send=False, kinds=crowded))
        )


def test_constrained_baseline_player_and_a_high_stream_get_a_422_naming_both() -> None:
    """RFC 6184 §8.1: a player whose H264 formats are all Constrained Baseline (Firefox with
    OpenH264) cannot decode High; before, it got the stream under a Baseline payload type."""
    firefox = parse_offer(as_player(load("firefox_publish.sdp")))
    with pytest.raises(CodecMismatch) as caught:
        negotiate_play(firefox, {"video": H264_HIGH})
    message = str(caught.value)
    assert "the stream sends H264 High (64001f, packetization-mode 1) video" in message
    assert "H264 Constrained Baseline (42e01f, packetization-mode 1)" in message
    # Chromium offers High as well: it gets the stream under its High payload type.
    chrome = parse_offer(as_player(load("chrome_publish.sdp").replace("42001f", "64001f")))
    video = negotiate_play(chrome, {"video": H264_HIGH}).tracks[1]
    assert video.codecs[0].fmtp_params["profile-level-id"] == "64001f"


def test_h264_stream_goes_to_the_format_that_decodes_it() -> None:
    baseline_only = Codec("H264", 100, 90000, fmtp="packetization-mode=1;profile-level-id=42001f")
    high = Codec("H264", 101, 90000, fmtp="packetization-mode=1;profile-level-id=64001f")
    mode0 = Codec("H264", 102, 90000, fmtp="packetization-mode=0;profile-level-id=42e01f")
    main = Codec("H264", 103, 90000, fmtp="packetization-mode=1;profile-level-id=4d001f")
    # Constrained Baseline conforms to Baseline and High; Main goes to High only.
    assert best_receivable(H264_CB, [baseline_only, high]) is baseline_only
    assert best_receivable(main, [baseline_only, high]) is high
    assert best_receivable(main, [baseline_only]) is None
    # Mode 1 players take a mode 0 stream; a mode 0 player cannot take mode 1.
    stream0 = Codec("H264", 96, 90000, fmtp="packetization-mode=0;profile-level-id=42e01f")
    assert best_receivable(stream0, [baseline_only, mode0]) is mode0
    assert best_receivable(stream0, [H264_CB]) is H264_CB
    assert best_receivable(H264_CB, [mode0]) is None
    # Without level-asymmetry-allowed a player's level caps what it can take.
    low = Codec("H264", 104, 90000, fmtp="packetization-mode=1;profile-level-id=42e00a")
    assert best_receivable(H264_CB, [low]) is None
    asym = Codec("H264", 104, 90000, fmtp=low.fmtp + ";level-asymmetry-allowed=1")
    assert best_receivable(H264_CB, [asym]) is asym
    # VP9 profiles must be the same.
    vp9_0, vp9_2 = (Codec("VP9", 98, 90000, fmtp=f"profile-id={p}") for p in (0, 2))
    assert best_receivable(vp9_2, [vp9_0, vp9_2]) is vp9_2
    assert best_receivable(Codec("VP9", 98, 90000), [vp9_2]) is None


@pytest.mark.parametrize(
    ("value", "profile", "level"),
    [
        ("42e01f", "Constrained Baseline", 3.1),
        ("42001f", "Baseline", 3.1),
        ("4d001f", "Main", 3.1),
        ("4d801f", "Constrained Baseline", 3.1),
        ("58001f", "Extended", 3.1),
        ("640c34", "Constrained High", 5.2),
        ("640032", "High", 5.0),
        ("42f00b", "Constrained Baseline", 1.05),  # level 1b: level_idc 11 with constraint_set3
        ("f4001f", "profile_idc 0xf4", 3.1),
        (None, "Baseline", 1.0),  # RFC 6184: none given means Baseline level 1
    ],
)
def test_profile_level_id_table(value: str | None, profile: str, level: float) -> None:
    read = parse_profile_level_id(value)
    assert read is not None and (read.profile, read.level) == (profile, level)


@pytest.mark.parametrize("value", ["", "42e01", "42e01f0", "zz001f", "42 01f"])
def test_profile_level_id_that_is_not_six_hex_digits_is_refused(value: str) -> None:
    assert parse_profile_level_id(value) is None


def test_h265_is_taken_and_matched_by_profile_tier_and_level() -> None:
    text = (
        load("chrome_publish.sdp")
        .replace("a=rtpmap:45 AV1/90000", "a=rtpmap:45 H265/90000")
        .replace("a=fmtp:45 level-idx=5;profile=0;tier=0", "a=fmtp:45 level-id=93;profile-id=1")
    )
    (_, video) = negotiate_publish(parse_offer(only_video_format(text, 45))).tracks
    stream = video.codecs[0]
    assert (stream.name, stream.fmtp) == ("H265", "level-id=93;profile-id=1")
    main = Codec("H265", 50, 90000, fmtp="level-id=180;profile-id=1;tier-flag=0")
    main10 = Codec("H265", 51, 90000, fmtp="level-id=180;profile-id=2")
    low = Codec("H265", 52, 90000, fmtp="level-id=60;profile-id=1")
    high_tier = Codec("H265", 53, 90000, fmtp="level-id=180;profile-id=1;tier-flag=1")
    assert best_receivable(stream, [main10, low, high_tier, main]) is main
    assert best_receivable(stream, [main10, low, high_tier]) is None
    with pytest.raises(UnsupportedMedia, match="offers H265"):
        negotiate_publish(
            parse_offer(only_video_format(text.replace("profile-id=1", "profile-id=4"), 45))
        )


RED = Codec("red", 63, 48000, 2, fmtp="111/111")


def test_red_publisher_brings_its_opus_and_each_player_gets_what_it_takes() -> None:
    """Chromium sends RED when it is preferred (setCodecPreferences puts it first): the
    publisher's audio is RED over Opus; a RED player gets RED, any other plain Opus."""
    text = load("chrome_publish.sdp").replace(
        "m=audio 9 UDP/TLS/RTP/SAVPF 111 63", "m=audio 9 UDP/TLS/RTP/SAVPF 63 111"
    )
    audio = negotiate_publish(parse_offer(text)).tracks[0]
    assert [(c.name, c.payload_type, c.fmtp) for c in audio.codecs] == [
        ("red", 63, "111/111"),
        ("opus", 111, "minptime=10;useinbandfec=1"),
    ]
    red_player = negotiate_play(parse_offer(as_player(load("chrome_publish.sdp"))), {"audio": RED})
    assert [c.name for c in red_player.tracks[0].codecs] == ["red", "opus"]
    firefox = negotiate_play(parse_offer(as_player(load("firefox_publish.sdp"))), {"audio": RED})
    assert [c.name for c in firefox.tracks[0].codecs] == ["opus"]
    # RED over anything but this m-line's Opus is not taken.
    for fmtp in ("111/0", "9/9", "abc"):
        bad = text.replace("a=fmtp:63 111/111", f"a=fmtp:63 {fmtp}")
        assert negotiate_publish(parse_offer(bad)).tracks[0].codecs[0].name == "opus"
    # A RED player whose Opus has another number cannot take the stream's RED as it is.
    other = Codec("red", 100, 48000, 2, fmtp="109/109")
    opus = Codec("opus", 109, 48000, 2)
    assert best_receivable(RED, [other, opus]) is opus
