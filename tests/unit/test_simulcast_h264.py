"""H264 simulcast in memory: a player moves between layers only where a layer's IDR access
unit begins (its SPS, then PPS and the IDR slice, packetized as single NAL units, a STAP-A, or
a STAP-A then FU-A fragments), with sequence numbers and timestamps continuous."""

from __future__ import annotations

import itertools

import pytest

from bench.client import RTP_HEADER, VIDEO_TS_STEP, SimulcastMedia
from bench.sdp import VIDEO_PT, build_offer
from sfu.protocol.simulcast import Choice
from sfu.wire import rtp
from tests import harness
from tests.harness import Harness, Peer, record_rtp
from tests.unit.test_simulcast_switching import handler, layer_of

H264_FMTP = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
SPS, PPS, IDR, SLICE, STAP_A, FU_A = 0x67, 0x68, 0x65, 0x41, 0x78, 0x7C
SLICE_SIZE = 1150  # bytes per slice or fragment: about 0.3, 0.6, 1.2 Mbit/s as the VP8 layers
KEY_DELAY = 6  # frames a publisher takes to answer a keyframe request


def h264_offer(*args: object, **kwargs: object) -> str:
    """bench.sdp's offer with H264 (packetization mode 1) in place of VP8."""
    text = build_offer(*args, **kwargs)  # type: ignore[arg-type]
    rtpmap = f"a=rtpmap:{VIDEO_PT} VP8/90000"
    return text.replace(rtpmap, f"a=rtpmap:{VIDEO_PT} H264/90000\r\na=fmtp:{VIDEO_PT} {H264_FMTP}")


class H264SimulcastMedia(SimulcastMedia):
    """Three H264 layers. Each NAL unit carries (layer index, frame number) after its header,
    so a player's packets tell which layer and frame they came from; keyframes come
    KEY_DELAY frames after they are asked for, so a switch has P frames to wait through."""

    def __init__(self, index: int, mode: str) -> None:
        super().__init__(index)
        self.mode = mode
        self._key_in: int | None = None

    def _nal(self, header: int, layer: int, size: int = SLICE_SIZE) -> bytes:
        return bytes([header, layer, self.frames & 0xFF]) + bytes(size)

    def _payloads(self, keyframe: bool, layer: int, count: int) -> list[bytes]:
        if not keyframe:
            return [self._nal(SLICE, layer) for _ in range(count)]
        sps, pps, idr = self._nal(SPS, layer, 8), self._nal(PPS, layer, 4), self._nal(IDR, layer)
        stap = bytes([STAP_A]) + b"".join(len(n).to_bytes(2, "big") + n for n in (sps, pps))
        if self.mode == "single":
            return [sps, pps] + [idr] * count
        if self.mode == "stap-a":
            return [stap] + [idr] * count
        piece = bytes([FU_A, 0x05, layer, self.frames & 0xFF]) + bytes(SLICE_SIZE)
        fragments = [piece] * (count + 2)
        fragments[0] = bytes([FU_A, 0x85]) + fragments[0][2:]  # S bit: the IDR's first piece
        fragments[-1] = bytes([FU_A, 0x45]) + fragments[-1][2:]  # E bit: its last
        return [stap, *fragments]

    def simulcast_frame(self, keyframe: bool, stamp_ns: int) -> list[tuple[bytes, bytes]]:
        if keyframe and self._key_in is None:
            self._key_in = 0 if self.frames == 0 else KEY_DELAY
        keyframe = self._key_in == 0
        self._key_in = None if self._key_in in (0, None) else self._key_in - 1
        out = []
        for index, layer in enumerate(self.layers):
            ts = (layer.ts0 + self.frames * VIDEO_TS_STEP) & 0xFFFFFFFF
            payloads = self._payloads(keyframe, index, layer.packets_per_frame)
            for i, payload in enumerate(payloads):
                marker = 0x80 if i == len(payloads) - 1 else 0
                header = RTP_HEADER.pack(0x80, marker | VIDEO_PT, layer.seq, ts, layer.ssrc)
                out.append((layer.rid.encode(), header + payload))
                layer.seq = (layer.seq + 1) & 0xFFFF
        self.frames += 1
        return out


@pytest.fixture
def h264(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(harness, "build_offer", h264_offer)


def h264_pair(h: Harness, mode: str) -> tuple[Peer, Peer, list[tuple[float, bytes]]]:
    publisher = h.publisher("s", simulcast=True)
    media = H264SimulcastMedia(0, mode)
    media.audio_ssrc = publisher.media.audio_ssrc  # type: ignore[union-attr]  # as offered
    publisher.media = media
    player = h.player("s")
    packets = record_rtp(player)
    h.connect(publisher, player)
    return publisher, player, packets


def payload(plain: bytes) -> bytes:
    start, end = rtp.payload_bounds(plain)
    return plain[start:end]


def layer_index(payload: bytes) -> int:
    """The layer a payload came from: the byte after its NAL header (in a STAP-A, after the
    first unit's size and header; in an FU-A, after the FU header)."""
    return payload[{STAP_A: 4, FU_A: 2}.get(payload[0], 1)]


def starts_access_unit(payload: bytes) -> bool:
    """The first packet of an IDR access unit as this publisher sends it: SPS or STAP-A."""
    return payload[0] in (SPS, STAP_A)


@pytest.mark.usefixtures("h264")
@pytest.mark.parametrize("mode", ["single", "stap-a", "fu-a"])
def test_h264_layers_switch_only_where_an_idr_access_unit_begins(mode: str) -> None:
    h = Harness()
    _, player, packets = h264_pair(h, mode)
    h.run(2.0)
    assert handler(player).stats().codec_mismatch == {}
    asked = []
    for rid in ("q", "f", "h", "q"):
        asked.append(h.now)
        handler(player).set_choice(Choice(rid=rid), None, h.now)
        h.run(1.5)
        assert layer_of(player) == rid
    arrivals = [at for at, plain in packets if plain[1] & 0x7F == VIDEO_PT]
    video = [plain for _, plain in packets if plain[1] & 0x7F == VIDEO_PT]
    payloads = [payload(plain) for plain in video]
    layers = [layer_index(p) for p in payloads]
    assert starts_access_unit(payloads[0])  # the first picture is whole
    switches = [i for i in range(1, len(layers)) if layers[i] != layers[i - 1]]
    assert len(switches) >= 3, layers
    for i in switches:
        assert starts_access_unit(payloads[i]), (mode, i, payloads[i][:4].hex())
        assert video[i - 1][1] & 0x80  # the old layer's last frame was complete
        # The keyframe came KEY_DELAY frames after the ask: the old layer played on meanwhile.
        ask = max((a for a in asked if a <= arrivals[i]), default=None)
        if ask is not None:  # not the first climb on auto, before any ask
            assert arrivals[i] - ask > 0.1 and arrivals[i - 1] > ask
    for before, after in itertools.pairwise(video):
        assert (after[2] << 8 | after[3]) - (before[2] << 8 | before[3]) & 0xFFFF == 1
        ts_step = int.from_bytes(after[4:8], "big") - int.from_bytes(before[4:8], "big")
        assert 0 <= ts_step & 0xFFFFFFFF <= 2 * 90000
    assert len({plain[8:12] for plain in video}) == 1  # one SSRC throughout


@pytest.mark.usefixtures("h264")
def test_a_bottleneck_moves_an_h264_player_down_on_an_idr() -> None:
    h = Harness()
    _, player, packets = h264_pair(h, "fu-a")
    for _ in range(30):
        h.run(0.5)
        if layer_of(player) == "f":
            break
    player.down.rate = 400_000
    for _ in range(30):
        h.run(0.5)
        if layer_of(player) == "q":
            break
    assert layer_of(player) == "q"
    assert handler(player).tracks[1].max_temporal is None  # no VP8 temporal layers to drop
    video = [payload(plain) for _, plain in packets if plain[1] & 0x7F == VIDEO_PT]
    entered_q = next(i for i in reversed(range(len(video))) if layer_index(video[i]) != 0)
    assert starts_access_unit(video[entered_q + 1])
