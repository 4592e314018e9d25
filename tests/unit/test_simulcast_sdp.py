"""Simulcast offers from Chromium, Firefox and OBS, negotiated and answered; bad ones refused."""

from __future__ import annotations

import pytest

from sfu.wire.rtp import RID_URI
from signaling.sdp.negotiate import NegotiationError, negotiate_play, negotiate_publish
from signaling.sdp.parse import parse_offer
from tests.unit.test_negotiate import answer_for, as_player, load


def _video_answer(text: str) -> str:
    answer = answer_for(text, negotiate_publish(parse_offer(text)), "recvonly")
    return answer[answer.index("m=video") :]


def test_chromium_rids_in_send_encodings_order() -> None:
    text = load("chrome_simulcast.sdp")
    video = negotiate_publish(parse_offer(text)).tracks[1]
    assert video.rids == ("q", "h", "f")
    assert (video.ssrc, video.rtx_ssrc) == (None, None)  # learnt from the RID extension
    assert video.extensions[10] == RID_URI
    answer = _video_answer(text)
    assert "a=rid:q recv\r\na=rid:h recv\r\na=rid:f recv\r\na=simulcast:recv q;h;f\r\n" in answer
    assert f"a=extmap:10 {RID_URI}" in answer
    assert "repaired-rtp-stream-id" not in answer  # no publisher RTX is accepted


def test_firefox_reversed_rids_are_kept_as_offered() -> None:
    text = load("firefox_simulcast.sdp")
    video = negotiate_publish(parse_offer(text)).tracks[1]
    assert video.rids == ("f", "h", "q")
    assert video.ssrc is None  # its a=ssrc lines do not say which layer each is
    assert "a=simulcast:recv f;h;q\r\n" in _video_answer(text)


def test_obs_four_layers_all_accepted() -> None:
    text = load("obs_simulcast.sdp")
    video = negotiate_publish(parse_offer(text)).tracks[1]
    assert video.rids == ("0", "1", "2", "3") and video.codecs[0].name == "H264"
    answer = _video_answer(text)
    assert answer.count("a=rid:") == 4 and "a=simulcast:recv 0;1;2;3\r\n" in answer


def test_single_layer_publish_answer_is_unchanged() -> None:
    text = load("chrome_publish.sdp")
    video = negotiate_publish(parse_offer(text)).tracks[1]
    assert video.rids == () and RID_URI not in video.extensions.values()
    assert "a=rid" not in _video_answer(text) and "simulcast" not in _video_answer(text)


def test_paused_and_alternative_streams_take_their_first_rid() -> None:
    text = load("chrome_simulcast.sdp").replace("send q;h;f", "send ~q;h,f;f2")
    text = text.replace("a=rid:f send", "a=rid:f send\na=rid:f2 send max-width=1280")
    assert negotiate_publish(parse_offer(text)).tracks[1].rids == ("q", "h", "f2")


def test_player_offer_has_no_layers() -> None:
    peer = negotiate_play(parse_offer(as_player(load("chrome_simulcast.sdp"))))
    assert all(t.rids == () for t in peer.tracks)


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("send q;h;f", "send q;h;f;a;b", "at most 4"),
        ("send q;h;f", "send q;h;x", "no a=rid"),
        ("send q;h;f", "send q;q;f", "twice"),
        ("send q;h;f", "recv q;h;f", "must start with 'send'"),
        ("send q;h;f", "send", "must start with 'send'"),
        ("a=rid:q send", "a=rid:q/x send", "is not 1-16"),
        ("a=rid:q send", "a=rid:" + "q" * 17 + " send", "is not 1-16"),
        ("a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\n", "", "rtp-stream-id"),
    ],
)
def test_bad_simulcast_offers_are_refused_with_a_reason(old: str, new: str, reason: str) -> None:
    text = load("chrome_simulcast.sdp")
    assert old in text
    with pytest.raises(NegotiationError, match=reason):
        negotiate_publish(parse_offer(text.replace(old, new)))
