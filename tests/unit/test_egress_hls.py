"""LL-HLS packaging through a real router on a fake clock: a playlist the m3u8 parser reads,
segments that start on keyframes and decode, parts within their target, a bounded window,
a discontinuity at a republish, and VP8 refused."""

from __future__ import annotations

import io

import av
import m3u8
import pytest

from bench.egress_scene import Scene
from sfu.egress.cmaf import PART_TARGET
from sfu.egress.hls import WINDOW
from sfu.egress.hls_streams import HlsRefused


def viewed(codec: str, seconds: float, stream: str = "live/h") -> Scene:
    scene = Scene(None, patterns=())
    scene.hls_viewed.add(stream)
    scene.publish(stream, codec, seconds)
    return scene


def test_segments_start_on_keyframes_decode_and_list_their_parts():
    scene = viewed("h264", 7.0)
    hls = scene.hls.active["live/h"]
    playlist = m3u8.loads(hls.playlist())
    complete = [s for s in playlist.segments if s.duration]
    assert len(complete) >= 2
    assert all(1.4 <= s.duration <= 2.6 for s in complete)
    assert playlist.target_duration >= max(s.duration for s in complete)
    for segment in playlist.segments:
        if segment.parts:
            assert segment.parts[0].independent == "YES"
        assert all(p.duration <= PART_TARGET + 0.001 for p in segment.parts)
    init = hls.resource(complete[0].init_section.uri)
    data = hls.resource(complete[0].uri)
    assert init and data
    with av.logging.Capture() as logs, av.open(io.BytesIO(init + data)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
        assert packets[0].is_keyframe
        frames = sum(len(p.decode()) for p in packets)
    assert abs(frames - 30 * complete[0].duration) <= 1
    assert [line for line in logs if line[0] <= av.logging.ERROR] == []
    part = playlist.segments[-1].parts[0]
    assert hls.resource(part.uri) is not None


def test_blocking_reloads_know_what_is_there_and_what_is_next():
    scene = viewed("h264", 5.0)
    hls = scene.hls.active["live/h"]
    done = next(s for s in hls.segments if s.complete)
    assert hls.has(done.number, None) and hls.has(done.number, len(done.parts) - 1)
    # The part after a complete segment's last is the next segment's first.
    assert hls.has(done.number, len(done.parts)) == hls.has(done.number + 1, 0)
    later = hls.next_number()
    assert not hls.has(later, None) and not hls.has(later, 0)
    assert hls.has(-1, None)  # long gone from the window: nothing to wait for


def test_the_window_keeps_the_last_segments_only():
    scene = viewed("h264", 16.0)
    hls = scene.hls.active["live/h"]
    assert len(hls.segments) == WINDOW
    playlist = m3u8.loads(hls.playlist())
    assert playlist.media_sequence == hls.segments[0].number > 0
    assert hls.resource(f"{hls.serial}-seg-0.m4s") is None  # gone from memory too


def test_a_republish_starts_a_period_after_a_discontinuity():
    scene = Scene(None, patterns=())
    scene.hls_viewed.add("again")
    first = scene.publish("again", "h264", 4.0)
    first.session.close("gone")
    scene.advance(0.5)
    scene.publish("again", "h264", 4.0)
    text = scene.hls.active["again"].playlist()
    assert "#EXT-X-DISCONTINUITY\n" in text
    playlist = m3u8.loads(text)
    inits = {s.init_section.uri for s in playlist.segments if s.init_section is not None}
    assert len(inits) == 2 and text.count("#EXT-X-MAP:") == 2
    assert all(scene.hls.active["again"].resource(uri) for uri in inits)


@pytest.mark.parametrize(
    "name",
    ["1-seg-0.m4s.x", "2-seg-0.m4s", "1-part-0-99.m4s", "1-init-7.mp4", "1-seg-a.m4s", "x"],
)
def test_names_it_never_made_are_not_there(name):
    scene = viewed("h264", 3.0)
    assert scene.hls.active["live/h"].resource(name) is None


def test_a_vp8_stream_is_refused_and_an_absent_one_too():
    scene = viewed("vp8", 1.0, "live/v")
    with pytest.raises(HlsRefused, match="HLS has no VP8: publish H264 for HLS") as refused:
        scene.hls.get("live/v", scene.now)
    assert refused.value.status == 404
    with pytest.raises(HlsRefused, match="stream nothing is not live"):
        scene.hls.get("nothing", scene.now)
    assert scene.hls.refused["codec"] > 0 and scene.hls.refused["not_live"] == 1
