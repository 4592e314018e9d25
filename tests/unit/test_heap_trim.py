"""The heap is trimmed once many sessions have ended (counted, spaced in time), and the trimmer
is harmless where the C library has no malloc_trim."""

from __future__ import annotations

import asyncio
import platform

import pytest

from bench.sdp import build_offer
from sfu.config import MediaConfig
from sfu.io.memory import TRIM_AFTER_ENDED, HeapTrimmer, glibc_malloc_trim
from sfu.io.server import MediaServer
from sfu.protocol import ice
from signaling.sdp.negotiate import negotiate_play
from signaling.sdp.parse import parse_offer
from tests.harness import CLIENT_CERTIFICATE


class CountingTrim:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, pad: int) -> int:
        self.calls.append(pad)
        return 1


def test_trims_after_enough_sessions_ended_and_not_again_too_soon() -> None:
    trim = CountingTrim()
    trimmer = HeapTrimmer(trim, after_ended=10, min_interval=5.0)
    assert not trimmer.note(9, now=0.0)
    assert trimmer.note(10, now=0.0)
    assert trim.calls == [0] and trimmer.trims == 1
    assert not trimmer.note(30, now=4.9)  # enough ended, but too soon
    assert trimmer.note(30, now=5.0)
    assert not trimmer.note(39, now=20.0)  # only 9 more since the last trim
    assert trimmer.trims == 2 and trimmer.seconds >= 0.0


def test_without_malloc_trim_it_only_counts_nothing() -> None:
    trimmer = HeapTrimmer(None, after_ended=1, min_interval=0.0)
    assert not trimmer.note(100, now=0.0)
    assert trimmer.trims == 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_malloc_trim_is_found_and_runs() -> None:
    trim = glibc_malloc_trim()
    assert trim is not None
    assert trim(0) in (0, 1)


def test_the_media_server_trims_after_a_mass_teardown() -> None:
    async def scenario() -> tuple[int, int]:
        media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0, tcp_port=0))
        trim = CountingTrim()
        media.trimmer = HeapTrimmer(trim)
        await media.start()
        try:
            router, now = media.router, asyncio.get_running_loop().time()
            offer = build_offer(ice.new_ufrag(), ice.new_pwd(), CLIENT_CERTIFICATE.fingerprint,
                                send=False)  # fmt: skip
            params = negotiate_play(parse_offer(offer), {})
            ids = [router.play("s", params, now).id for _ in range(TRIM_AFTER_ENDED)]
            await asyncio.sleep(0.2)
            before = len(trim.calls)  # none yet: nothing has ended
            for session_id in ids:
                router.close(session_id, "DELETE")
            await asyncio.sleep(0.2)  # a few ticks
            return before, len(trim.calls)
        finally:
            await media.stop()

    assert asyncio.run(scenario()) == (0, 1)
