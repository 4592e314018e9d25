"""What egress costs: CPU per recorded stream and per HLS stream at 1 Mbit/s, so an operator
can size a machine.

    python -m bench.egress [--seconds 10] [--runs 3] [--viewers 50]

A synthetic publisher (bench/egress_scene.py) sends real VP8 or H264 frames (640x360, 30 fps,
about 1 Mbit/s) and Opus through the real router on a fake clock: the same packets, the same
player, the same depacketizing and muxing as the server runs, without the clock's waiting. The
publish runs once without egress, once recorded and once packaged as LL-HLS (H264 only, with
a viewer asking for its playlist every tick); the difference in process CPU time, over the
seconds of media, is one stream's share of a core. HLS viewers cost the origin only HTTP: the
segments and parts are bytes in memory, the same for every viewer and every CDN edge.
Encoding happens before any clock starts. Writes go to a temporary folder (the page cache: the
disk's own cost is not in it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Sequence

from bench.egress_media import opus_frames, video_frames
from bench.egress_scene import Scene
from bench.egress_viewers import measure_viewers

SIZE = (640, 360)
BITRATE = 1_000_000


def cpu_of_publish(
    codec: str, seconds: float, directory: str | None, hls: bool = False
) -> tuple[float, int]:
    """(process CPU seconds, bytes recorded) of one publish of `seconds`."""
    scene = Scene(directory, patterns=("*",) if directory else ())
    scene.size, scene.bitrate = SIZE, BITRATE
    if hls:
        scene.hls_viewed.add("bench/stream")
    started = time.process_time()
    scene.publish("bench/stream", codec, seconds)
    scene.recordings.close_all("bench over")
    cpu = time.process_time() - started
    recorded = sum(done.bytes for done in scene.recordings.poll_done())
    return cpu, recorded


def measure(codec: str, seconds: float, runs: int) -> tuple[float, float, float, float | None]:
    """(CPU share of one core without egress, recorded, megabits per second recorded, CPU
    share packaged as HLS or None for a codec HLS cannot carry)."""
    encoder = "libvpx" if codec == "vp8" else "libx264"
    video_frames(encoder, round(seconds * 30), size=SIZE, bitrate=BITRATE)  # encode up front
    opus_frames(round(seconds * 50))
    plain, recorded, packaged, size = [], [], [], 0
    for _ in range(runs):
        plain.append(cpu_of_publish(codec, seconds, None)[0])
        with tempfile.TemporaryDirectory() as folder:
            cpu, size = cpu_of_publish(codec, seconds, folder)
            recorded.append(cpu)
        if codec == "h264":
            packaged.append(cpu_of_publish(codec, seconds, None, hls=True)[0])
    hls = min(packaged) / seconds if packaged else None
    return min(plain) / seconds, min(recorded) / seconds, size * 8 / seconds / 1e6, hls


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.egress", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="media per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per case; the least CPU counts")
    parser.add_argument(
        "--viewers",
        type=int,
        default=0,
        help="also: what this many LL-HLS viewers cost the "
        "origin, on a real server with an aiortc H264 publisher (bench.egress_viewers)",
    )
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    print(f"{os.cpu_count()} cores; {args.seconds:g} s of media per run, best of {args.runs}")
    print(f"{'case':<28}{'no egress':>12}{'with it':>12}{'per stream':>12}{'file Mbit/s':>13}")
    for codec, container in (("vp8", "WebM"), ("h264", "fMP4")):
        plain, recorded, rate, hls = measure(codec, args.seconds, args.runs)
        case = f"record {codec.upper()}+Opus ({container})"
        cost = recorded - plain
        print(f"{case:<28}{plain:>11.2%}{recorded:>12.2%}{cost:>12.2%}{rate:>13.2f}")
        if hls is not None:
            case = f"LL-HLS {codec.upper()}+Opus (CMAF)"
            print(f"{case:<28}{plain:>11.2%}{hls:>12.2%}{hls - plain:>12.2%}{'-':>13}")
    print("per stream: one stream's share of one core; streams a core takes: about 1 / that")
    print("share, less what forwarding the stream itself costs; HLS viewers add only HTTP")
    if args.viewers > 0:
        base, loaded, requests, served = asyncio.run(measure_viewers(args.viewers, args.seconds))
        extra = (loaded - base) / args.viewers
        print(f"LL-HLS viewers at the origin: server CPU {base:.1%} with one viewer, "
              f"{loaded:.1%} with {args.viewers}: {extra:.2%} of a core per viewer "
              f"({requests / args.seconds:.0f} requests/s, "
              f"{served * 8 / args.seconds / 1e6:.1f} Mbit/s served)")  # fmt: skip


if __name__ == "__main__":
    main()
