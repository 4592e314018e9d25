"""RTP payloads into whole frames, per codec, with no decoding: VP8 (RFC 7741), H264
(RFC 6184: single NAL units, STAP-A, FU-A; out as Annex B with SPS/PPS ahead of keyframes)
and Opus (one packet, one frame)."""

from __future__ import annotations

from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"
H264_STAP_A = 24
H264_FU_A = 28
H264_IDR = 5
H264_SPS = 7
H264_PPS = 8


class PayloadError(ValueError):
    """A payload its codec's packetization rules cannot read."""


@dataclass(frozen=True)
class Piece:
    """One RTP packet of a track, as the assembler needs it."""

    seq: int  # extended: never wraps
    timestamp: int  # extended
    marker: bool
    payload: bytes


def vp8_payload(payload: bytes) -> tuple[bool, bytes]:
    """(starts a frame, the VP8 bytes after the payload descriptor)."""
    if not payload:
        raise PayloadError("empty VP8 payload")
    first = payload[0]
    at = 1
    if first & 0x80:  # X: an extension byte follows
        if len(payload) < 2:
            raise PayloadError("VP8 descriptor cut short")
        ext = payload[1]
        at = 2
        if ext & 0x80:  # I: picture id, one or two bytes
            if at >= len(payload):
                raise PayloadError("VP8 descriptor cut short")
            at += 2 if payload[at] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            at += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX
            at += 1
    if at >= len(payload):
        raise PayloadError("VP8 descriptor cut short")
    starts = bool(first & 0x10) and (first & 0x07) == 0
    return starts, payload[at:]


def vp8_frame(pieces: list[Piece]) -> tuple[bytes, bool]:
    """(frame, is a keyframe) of the pieces of one VP8 frame, first to last."""
    starts, data = vp8_payload(pieces[0].payload)
    if not starts:
        raise PayloadError("VP8 frame without its first partition's start")
    frame = data + b"".join(vp8_payload(p.payload)[1] for p in pieces[1:])
    return frame, not frame[0] & 0x01


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 keyframe (RFC 6386 §9.1); None if it is not one."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(frame[6:8], "little") & 0x3FFF
    return width, int.from_bytes(frame[8:10], "little") & 0x3FFF


def h264_nal_units(
    payload: bytes, partial: bytearray | None
) -> tuple[list[bytes], bytearray | None]:
    """The whole NAL units one H264 payload completes, and the FU-A unit still being built
    (`partial` is the one from the packets before)."""
    if not payload:
        raise PayloadError("empty H264 payload")
    kind = payload[0] & 0x1F
    if kind == H264_FU_A:
        if len(payload) < 3:
            raise PayloadError("FU-A cut short")
        header = payload[1]
        if header & 0x80:  # start: rebuild the NAL header from indicator and FU header
            partial = bytearray([(payload[0] & 0xE0) | (header & 0x1F)])
        elif partial is None:
            raise PayloadError("FU-A fragment without its start")
        partial += payload[2:]
        if header & 0x40:  # end
            return [bytes(partial)], None
        return [], partial
    if kind == H264_STAP_A:
        units, at = [], 1
        while at + 2 <= len(payload):
            size = int.from_bytes(payload[at : at + 2], "big")
            at += 2
            if size == 0 or at + size > len(payload):
                raise PayloadError("STAP-A unit runs past the packet")
            units.append(payload[at : at + size])
            at += size
        return units, None
    if 1 <= kind <= 23:
        return [payload], None
    raise PayloadError(f"H264 packetization type {kind} is not supported")


class H264Frames:
    """Annex B access units from H264 pieces; remembers the last SPS and PPS, so every
    keyframe carries them (a file or a segment may start on it)."""

    def __init__(self) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None

    def frame(self, pieces: list[Piece]) -> tuple[bytes, bool]:
        units: list[bytes] = []
        partial: bytearray | None = None
        for piece in pieces:
            done, partial = h264_nal_units(piece.payload, partial)
            units += done
        if partial is not None:
            raise PayloadError("FU-A unit without its end")
        kinds = [unit[0] & 0x1F for unit in units]
        for unit, kind in zip(units, kinds, strict=True):
            if kind == H264_SPS:
                self.sps = unit
            elif kind == H264_PPS:
                self.pps = unit
        keyframe = H264_IDR in kinds
        if keyframe and H264_SPS not in kinds and self.sps and self.pps:
            units = [self.sps, self.pps, *units]
        return b"".join(START_CODE + unit for unit in units), keyframe


def h264_size(sps: bytes) -> tuple[int, int]:
    """Width and height from a sequence parameter set (H.264 §7.3.2.1.1), cropping applied."""
    bits = _Bits(_unescape(sps[1:]))
    profile = bits.read(8)
    bits.read(16)  # constraint flags, level
    bits.golomb()  # seq_parameter_set_id
    chroma = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = bits.golomb()
        if chroma == 3:
            bits.read(1)
        bits.golomb()  # bit depths
        bits.golomb()
        bits.read(1)
        if bits.read(1):  # scaling matrices
            for index in range(8 if chroma != 3 else 12):
                if bits.read(1):
                    _skip_scaling_list(bits, 16 if index < 6 else 64)
    bits.golomb()  # log2_max_frame_num
    order = bits.golomb()
    if order == 0:
        bits.golomb()
    elif order == 1:
        bits.read(1)
        bits.signed()
        bits.signed()
        for _ in range(bits.golomb()):
            bits.signed()
    bits.golomb()  # max_num_ref_frames
    bits.read(1)
    width_mbs = bits.golomb() + 1
    height_units = bits.golomb() + 1
    frame_mbs_only = bits.read(1)
    if not frame_mbs_only:
        bits.read(1)
    bits.read(1)
    width, height = width_mbs * 16, height_units * 16 * (2 - frame_mbs_only)
    if bits.read(1):  # cropping, in chroma units
        left, right, top, bottom = (bits.golomb() for _ in range(4))
        crop_x = 2 if chroma in (1, 2) else 1
        crop_y = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
        width -= (left + right) * crop_x
        height -= (top + bottom) * crop_y
    return width, height


def _unescape(data: bytes) -> bytes:
    return data.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = following = 8
    for _ in range(size):
        if following:
            following = (last + bits.signed()) % 256
        last = following or last


class _Bits:
    """A big-endian bit reader for parameter sets; PayloadError past the end."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.left = len(data) * 8

    def read(self, count: int) -> int:
        if count > self.left:
            raise PayloadError("parameter set cut short")
        self.left -= count
        return (self.value >> self.left) & ((1 << count) - 1)

    def golomb(self) -> int:
        zeros = 0
        while not self.read(1):
            zeros += 1
            if zeros > 31:
                raise PayloadError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.read(zeros)

    def signed(self) -> int:
        code = self.golomb()
        return (code + 1) // 2 if code & 1 else -(code // 2)
