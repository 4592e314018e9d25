"""Recording through a real router on a fake clock: files that decode cleanly, audio and
video aligned by Sender Reports, repair of lost packets, rotation, republish and disk trouble."""

from __future__ import annotations

import os
import subprocess

import av
import pytest

from bench.egress_media import opus_frames, video_frames
from bench.egress_scene import Scene
from sfu.egress.recorder import egress_tracks
from sfu.egress.recordings import RecordingsOff, safe_name
from sfu.routing.relay import PlainSession
from sfu.routing.router import PLAY


def read_back(path: str) -> dict:
    """Streams, packets and decode errors of a file, read with libavformat/libavcodec."""
    with av.logging.Capture() as logs, av.open(path) as container:
        kinds = sorted(s.type for s in container.streams)
        counts = {"video": 0, "audio": 0}
        first_video_key = None
        decoded = 0
        for packet in container.demux():
            if packet.size == 0:
                continue
            counts[packet.stream.type] += 1
            if packet.stream.type == "video":
                if first_video_key is None:
                    first_video_key = packet.is_keyframe
                decoded += len(packet.decode())
        duration = container.duration / 1e6 if container.duration else 0.0
    errors = [line for line in logs if line[0] <= av.logging.ERROR]
    return {"kinds": kinds, "counts": counts, "key_first": first_video_key,
            "decoded": decoded, "duration": duration, "errors": errors}  # fmt: skip


def files(directory: str, stream: str) -> list[str]:
    folder = os.path.join(directory, safe_name(stream))
    return sorted(os.path.join(folder, name) for name in os.listdir(folder))


@pytest.mark.parametrize(("codec", "extension"), [("vp8", ".webm"), ("h264", ".mp4")])
def test_a_publish_is_recorded_to_one_file_that_decodes(tmp_path, codec, extension):
    scene = Scene(str(tmp_path))
    scene.publish("live/show", codec, 4.0)
    scene.recordings.stop("live/show")
    [path] = files(str(tmp_path), "live/show")
    assert path.endswith(extension)
    info = read_back(path)
    assert info["kinds"] == ["audio", "video"]
    assert info["key_first"] is True
    assert info["errors"] == []
    assert info["counts"]["video"] >= 115  # of 120 frames: all but none at the start
    assert info["counts"]["audio"] >= 190
    assert info["decoded"] == info["counts"]["video"]
    assert 3.5 <= info["duration"] <= 4.5
    [done] = scene.recordings.poll_done()
    assert done.path == path and done.stream == "live/show" and done.bytes == os.path.getsize(path)
    assert 3.5 <= done.duration <= 4.5


def test_audio_and_video_are_aligned_by_sender_reports_not_arrival(tmp_path):
    """Video arrives 150 ms after its capture and audio at once: in the file each frame still
    sits where it was captured relative to the other track, as the Sender Reports tell."""
    scene = Scene(str(tmp_path))
    scene.publish("sync", "vp8", 3.0, video_delay=0.15)
    scene.recordings.stop("sync")
    [path] = files(str(tmp_path), "sync")
    captured = {
        data: index / 30
        for index, (data, _) in enumerate(video_frames("libvpx", 90, size=(320, 240), bitrate=None))
    }
    audio = opus_frames(150)
    captured.update(
        {data: index / 50 for index, data in enumerate(audio) if audio.count(data) == 1}
    )
    offsets: dict[str, list[float]] = {"video": [], "audio": []}
    with av.open(path) as container:
        for packet in container.demux():
            at = captured.get(bytes(packet)) if packet.pts is not None else None
            if at is not None:  # where the file puts it, less when it was captured
                offsets[packet.stream.type].append(float(packet.pts * packet.time_base) - at)
    assert len(offsets["video"]) > 80 and len(offsets["audio"]) > 100
    video = sum(offsets["video"]) / len(offsets["video"])
    audio_offset = sum(offsets["audio"]) / len(offsets["audio"])
    assert abs(video - audio_offset) < 0.02  # arrival times alone would make it 0.15


def test_five_percent_loss_is_repaired_by_nack(tmp_path):
    scene = Scene(str(tmp_path))
    publisher = scene.publish("lossy", "vp8", 4.0, loss=0.05, seed=7)
    assert publisher.nacked > 0  # the server asked the publisher again
    scene.recordings.stop("lossy")
    [path] = files(str(tmp_path), "lossy")
    info = read_back(path)
    assert info["errors"] == []
    assert info["counts"]["video"] >= 115


def test_loss_without_repair_skips_cleanly_to_the_next_keyframe(tmp_path):
    scene = Scene(str(tmp_path))
    scene.publish("broken", "vp8", 4.0, loss=0.05, seed=3, repair=False)
    receiver = scene.recordings.active["broken"].recorder.receivers["video"]
    scene.recordings.stop("broken")
    assert receiver.lost > 0 and receiver.skipped_frames > 0  # holes given up, frames left out
    info = read_back(files(str(tmp_path), "broken")[0])
    assert info["errors"] == []
    assert info["key_first"] is True
    assert info["decoded"] == info["counts"]["video"]
    assert 0 < info["counts"]["video"] < 120


def test_segments_rotate_on_keyframes(tmp_path):
    scene = Scene(str(tmp_path), segment=1.0)
    scene.publish("rot", "vp8", 4.0)
    scene.recordings.stop("rot")
    paths = files(str(tmp_path), "rot")
    assert len(paths) >= 3  # keyframes every second: about one file per second
    for path in paths:
        info = read_back(path)
        assert info["key_first"] is True and info["errors"] == []
    assert sum(read_back(p)["counts"]["video"] for p in paths) >= 115


def test_a_republish_starts_a_new_file(tmp_path):
    scene = Scene(str(tmp_path), patterns=())
    scene.recordings.start("again", scene.now)  # by the API: records whenever it is live
    first = scene.publish("again", "vp8", 2.0)
    first.session.close("gone")
    scene.advance(0.5)
    scene.publish("again", "h264", 2.0)  # a new publisher, and another codec
    scene.recordings.stop("again")
    paths = files(str(tmp_path), "again")
    assert [os.path.splitext(p)[1] for p in paths] == [".webm", ".mp4"]
    assert all(read_back(p)["errors"] == [] for p in paths)


def test_a_write_failure_stops_the_recording_not_the_stream(tmp_path):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the stream's folder must go")
    scene = Scene(str(tmp_path))
    scene.recordings.directory = str(blocker)  # every path below it fails
    publisher = scene.publish("live", "vp8", 1.0)
    [listed] = scene.recordings.list()
    assert listed["error"] is not None
    assert sum(scene.recordings.failures.values()) == 1
    assert publisher.session.handler.tracks  # the publisher is untouched


def test_recording_needs_a_directory():
    scene = Scene(None)
    with pytest.raises(RecordingsOff):
        scene.recordings.start("x", scene.now)


def test_stream_names_become_one_safe_folder_each():
    assert safe_name("live/show") == "live%2Fshow"
    assert safe_name("..") == "%2E%2E"
    assert safe_name(".hidden") == "%2Ehidden"
    assert safe_name("caf\u00e9 1") == "caf%C3%A9%201"
    assert safe_name("a%2Fb") != safe_name("a/b")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 KiB tmpfs: a recording fills it within a second (root only, as in CI)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)],
                          capture_output=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield str(mount)
    subprocess.run(["umount", "-l", str(mount)], check=False)  # lazily, if a file stayed open


def test_a_full_disk_costs_the_recording_never_the_players(tiny_disk):
    scene = Scene(tiny_disk)
    delivered = []
    viewer = PlainSession(
        PLAY, "full", egress_tracks(), ("viewer", 1), lambda d, a: None, scene.now
    )
    viewer.local_send = lambda data, addr: delivered.append(len(data))  # type: ignore[attr-defined]
    scene.router.add_player("full", viewer).on_connected(scene.now)
    scene.publish("full", "vp8", 4.0)
    assert scene.recordings.failures == {"disk_full": 1}  # while the stream went on
    [listed] = scene.recordings.list()
    assert "disk_full" in listed["error"]
    scene.recordings.close_all("test over")
    # The viewer got the whole stream: audio and video packets to the last second.
    assert len(delivered) > 300
    assert (
        viewer.handler.tracks[1].packets == scene.router.streams["full"].publisher.tracks[1].packets
    )
