"""Real encoded media for the egress tests and bench: frames from PyAV's encoders (these may
encode; the server never does), cut into RTP packets the way browsers packetize them."""

from __future__ import annotations

import fractions
import functools
import re
import struct

import av
import numpy as np

MTU_PAYLOAD = 1100


@functools.cache
def video_frames(
    codec: str,
    count: int,
    fps: int = 30,
    gop: int = 30,
    size: tuple[int, int] = (320, 240),
    bitrate: int | None = None,
) -> list[tuple[bytes, bool]]:
    """`count` frames of a moving picture as (bytes, keyframe); "libvpx" or "libx264"."""
    width, height = size
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, fps)
    ctx.framerate = fps
    ctx.gop_size = gop
    if bitrate is not None:
        ctx.bit_rate = bitrate
    if codec == "libvpx":
        ctx.options = {"deadline": "realtime", "cpu-used": "8"}
    if codec == "libx264":
        ctx.options = {"profile": "baseline", "tune": "zerolatency"}
    out: list[tuple[bytes, bool]] = []
    for index in range(count):
        picture = np.zeros((height, width, 3), np.uint8)
        if bitrate is not None:  # texture, so the encoder has a bitrate to spend
            picture += np.random.default_rng(index).integers(0, 40, picture.shape, np.uint8)
        picture[:, (index * 5) % width] = 255
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(None)]
    return out


@functools.cache
def opus_frames(count: int) -> list[bytes]:
    """`count` 20 ms Opus frames."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = 48000, "stereo", "s16"
    out: list[bytes] = []
    for index in range(count):  # a tone that rises frame by frame: no two frames alike
        wave = np.sin(np.arange(960) * 2 * np.pi * (200 + 7 * index) / 48000)
        tone = (wave * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.repeat(tone, 2)[None, :], format="s16", layout="stereo"
        )
        frame.sample_rate, frame.pts = 48000, index * 960
        out += [bytes(p) for p in ctx.encode(frame)]
    return out


def vp8_payloads(frame: bytes, picture_id: int) -> list[bytes]:
    """RFC 7741 payloads: a descriptor with a 15-bit picture id, S on the first."""
    chunks = [frame[i : i + MTU_PAYLOAD] for i in range(0, len(frame), MTU_PAYLOAD)]
    pid = struct.pack("!H", 0x8000 | (picture_id & 0x7FFF))
    return [bytes([0x90 if i == 0 else 0x80, 0x80]) + pid + c for i, c in enumerate(chunks)]


def h264_payloads(access_unit: bytes) -> list[bytes]:
    """RFC 6184 payloads: small NAL units (SPS, PPS) in one STAP-A, large ones as FU-A."""
    units = [u for u in re.split(b"\x00\x00\x00?\x01", access_unit) if u]
    out: list[bytes] = []
    small = [u for u in units if len(u) < 200 and u[0] & 0x1F in (7, 8)]
    if small:
        out.append(b"\x18" + b"".join(struct.pack("!H", len(u)) + u for u in small))
    for unit in units:
        if unit in small or unit[0] & 0x1F in (6, 9):
            continue
        if len(unit) <= MTU_PAYLOAD:
            out.append(unit)
            continue
        head, body = unit[0], unit[1:]
        pieces = [body[i : i + MTU_PAYLOAD] for i in range(0, len(body), MTU_PAYLOAD)]
        for index, piece in enumerate(pieces):
            flags = (0x80 if index == 0 else 0) | (0x40 if index == len(pieces) - 1 else 0)
            out.append(bytes([(head & 0xE0) | 28, flags | (head & 0x1F)]) + piece)
    return out


def rtp_packet(pt: int, seq: int, ts: int, ssrc: int, marker: bool, payload: bytes) -> bytes:
    header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                         ts & 0xFFFFFFFF, ssrc)  # fmt: skip
    return header + payload
