"""bench.room's pieces: a room participant's subscribe session as a load client, and one
allocation timed alone."""

from __future__ import annotations

import time

from bench.client import Player, Target
from bench.sdp import build_offer
from sfu.media import AUDIO, VIDEO
from sfu.protocol.allocation import LayerOption, Priority, Want, allocate
from sfu.protocol.certificate import Certificate

KINDS = (AUDIO, VIDEO)
# The synthetic simulcast layers (bench.client.SIMULCAST_LAYERS: 1, 2 and 4 packets a frame)
# as the allocation sees them, and an Opus track.
LAYERS = (
    LayerOption(0, None, 300_000, 320, 180, "q"),
    LayerOption(1, None, 600_000, 640, 360, "h"),
    LayerOption(2, None, 1_200_000, 1280, 720, "f"),
)
OPUS = (LayerOption(0, None, 45_000),)
ALLOCATION_TIMING = 0.3  # seconds spent timing allocations


class RoomSubscriber(Player):
    """A participant's subscribe session: a recvonly slot per other participant's audio and
    video, all offered at once (no renegotiation), counting packets as a WHEP player does and
    noting when each slot's first packet came."""

    role = "subscribe"

    def __init__(
        self, index: int, target: Target, certificate: Certificate, others: int, samples: list
    ) -> None:
        super().__init__(
            index, target, certificate, publisher_index=0, sample_every=1_000_000, samples=samples
        )
        self.others = others
        self.connected_at = 0.0
        self.first_packet: dict[bytes, float] = {}  # SSRC -> when its first packet came

    def offer(self) -> str:
        return build_offer(
            self.ufrag,
            self.pwd,
            self.certificate.fingerprint,
            send=False,
            kinds=KINDS * self.others,
        )

    def on_connected(self) -> None:
        self.connected_at = time.monotonic()

    def _track(self, ssrc: bytes):  # type: ignore[no-untyped-def]
        """A slot's first packet: the server starts a video slot on a keyframe."""
        self.first_packet[ssrc] = time.monotonic()
        return super()._track(ssrc)

    def first_video(self) -> list[float]:
        """Seconds from connecting to each video slot's first packet, for those that had one."""
        return [
            self.first_packet[ssrc] - self.connected_at
            for ssrc, track in self.tracks.items()
            if track.kind == VIDEO and ssrc in self.first_packet
        ]


def room_wants(others: int) -> list[Want]:
    """A subscriber's wants in a room of `others` other participants: a speaker, a recent
    speaker, the rest."""
    wants = [Want(f"a{i}", AUDIO, OPUS) for i in range(others)]
    for i in range(others):
        priority = Priority.SPEAKER if i == 0 else Priority.RECENT if i == 1 else Priority.OTHER
        wants.append(Want(f"v{i}", VIDEO, LAYERS, priority, rank=0))
    return wants


def allocations_per_second(others: int) -> float:
    """How many allocations one core runs per second for a subscriber of `others`, on a
    budget that shows half of them, the time of sfu.protocol.allocation.allocate alone."""
    wants = room_wants(others)
    budget = others * OPUS[0].bitrate + others * LAYERS[0].bitrate // 2 + LAYERS[1].bitrate
    runs = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < ALLOCATION_TIMING:
        for _ in range(50):
            allocate(budget, wants)
        runs += 50
    return runs / elapsed
