"""RFC 6464 audio levels and active speaker detection, on synthetic levels and a fake clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from sfu.protocol import speakers
from sfu.protocol.speakers import SpeakerDetector, SpeakerUpdate
from sfu.wire import rtp
from sfu.wire.audio_level import (
    AUDIO_LEVEL_URI,
    AudioLevel,
    audio_level,
    audio_level_element,
    parse_audio_level,
)

PTIME = 0.02  # Opus's usual packet duration
SILENT = -127
TALK = -25

# When a participant sends a packet, and at what level: None for no packet at that time.
Source = Callable[[float], "tuple[int, bool] | None"]


def rtp_packet(elements: list[tuple[int, bytes]]) -> bytes:
    plain = bytes((0x80, 111)) + bytes(10) + b"opus"
    return bytes(rtp.add_extensions(plain, elements)[0])


def talks(*spans: tuple[float, float], level: int = TALK, voice: bool = True) -> Source:
    """Loud within the spans, silent (but still sending, as Opus without DTX) elsewhere."""

    def source(t: float) -> tuple[int, bool]:
        loud = any(begin <= t < end for begin, end in spans)
        return (level, voice) if loud else (SILENT, False)

    return source


def run(
    detector: SpeakerDetector, sources: dict[str, Source], until: float
) -> list[tuple[float, SpeakerUpdate]]:
    """Feed a packet per participant every PTIME and fire the timer when due: the updates."""
    updates = []
    for step in range(round(until / PTIME)):
        now = step * PTIME
        for participant, source in sources.items():
            packet = source(now)
            if packet is not None:
                detector.observe(participant, packet[0], packet[1], now)
        due = detector.next_timer()
        if due is not None and due <= now:
            update = detector.handle_timer(now)
            if update is not None:
                updates.append((now, update))
    return updates


# The wire: RFC 6464's byte.


def test_the_uri_is_rfc_6464s() -> None:
    assert AUDIO_LEVEL_URI == "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


def test_the_byte_is_a_v_bit_and_a_level_in_minus_dbov() -> None:
    assert parse_audio_level(b"\x80") == AudioLevel(0, True)
    assert parse_audio_level(b"\x7f") == AudioLevel(-127, False)
    assert parse_audio_level(b"\x9e") == AudioLevel(-30, True)
    assert audio_level_element(-30, True) == b"\x9e"
    assert audio_level_element(-200, False) == b"\x7f"  # clamped to silence
    assert audio_level_element(6, False) == b"\x00"  # and to the loudest


def test_a_packet_s_level_in_the_one_byte_and_two_byte_forms() -> None:
    packet = rtp_packet([(3, b"\x01\x02"), (1, audio_level_element(-42, True))])
    assert audio_level(packet, 1) == AudioLevel(-42, True)
    assert audio_level(packet, 2) is None
    two_byte = bytearray(bytes((0x90, 111)) + bytes(10))
    two_byte += b"\x10\x00\x00\x01" + bytes((7, 1, 0x05, 0))  # profile 0x1000, one word
    assert audio_level(bytes(two_byte), 7) == AudioLevel(-5, False)


def test_malformed_input_gives_none() -> None:
    good = rtp_packet([(1, b"\x9e")])
    assert audio_level(b"", 1) is None
    assert audio_level(b"\x00" * 20, 1) is None  # not RTP
    assert audio_level(good[:14], 1) is None  # the extension block cut short
    assert audio_level(rtp_packet([(1, b"\x9e\x00")]), 1) is None  # two bytes: not RFC 6464
    assert audio_level(rtp_packet([]), 1) is None
    assert audio_level(good, 0) is None
    overrun = bytearray(good)
    overrun[16] = 0x13  # element ID 1 claims 4 bytes, past its one-word block
    assert audio_level(bytes(overrun), 1) is None
    assert parse_audio_level(None) is None
    assert parse_audio_level(b"") is None


@given(st.binary(max_size=64), st.integers(min_value=-1, max_value=300))
def test_any_bytes_parse_to_none_or_a_level_in_range(data: bytes, ext_id: int) -> None:
    for found in (audio_level(data, ext_id), parse_audio_level(data)):
        assert found is None or (-127 <= found.dbov <= 0 and isinstance(found.voice, bool))
    parsed = parse_audio_level(data)
    assert (parsed is None) == (len(data) != 1)
    if parsed is not None:
        assert audio_level_element(parsed.dbov, parsed.voice) == data


@given(
    st.sampled_from([b"\xbe\xde", b"\x10\x00", b"\x10\x0f", b"\x00\x00"]),
    st.integers(0, 12) | st.integers(0, 0xFFFF),
    st.binary(max_size=40),
    st.integers(0, 20),
)
def test_any_extension_block_gives_none_or_a_level(
    profile: bytes, words: int, block: bytes, ext_id: int
) -> None:
    """RTP headers that do announce an extension, with any block and any claimed length."""
    packet = bytes((0x90, 111)) + bytes(10) + profile + words.to_bytes(2, "big") + block
    found = audio_level(packet, ext_id)
    assert found is None or -127 <= found.dbov <= 0


@given(st.integers(min_value=-127, max_value=0), st.booleans(), st.integers(1, 14))
def test_every_level_round_trips_through_a_packet(dbov: int, voice: bool, ext_id: int) -> None:
    packet = rtp_packet([(ext_id, audio_level_element(dbov, voice))])
    assert audio_level(packet, ext_id) == AudioLevel(dbov, voice)


# The detector.


def test_one_talker_starts_and_stops_once_each() -> None:
    updates = run(SpeakerDetector(), {"a": talks((1.0, 4.0)), "b": talks()}, until=8.0)
    assert [u for _, u in updates] == [SpeakerUpdate(("a",)), SpeakerUpdate((), ("a",))]
    started, stopped = (at for at, _ in updates)
    assert 1.0 + 0.4 <= started <= 1.0 + 3 * speakers.INTERVAL  # two loud windows
    assert 4.0 < stopped <= 4.0 + (speakers.HOLD_INTERVALS + 1) * speakers.INTERVAL


def test_two_alternating_talkers_lead_in_turn() -> None:
    sources = {"a": talks((0.0, 3.0), (6.0, 9.0)), "b": talks((3.0, 6.0))}
    updates = [u for _, u in run(SpeakerDetector(), sources, until=12.0)]
    leaders = [u.active[0] for u in updates if u.active]
    assert [p for i, p in enumerate(leaders) if i == 0 or leaders[i - 1] != p] == ["a", "b", "a"]
    assert all(a != b for a, b in pairwise(updates))  # changes only
    assert updates[-1] == SpeakerUpdate((), ("a", "b"))


def test_the_louder_of_two_talking_at_once_comes_first() -> None:
    sources = {"soft": talks((0.0, 5.0), level=-40), "loud": talks((0.0, 5.0), level=-15)}
    updates = [u for _, u in run(SpeakerDetector(), sources, until=3.0)]
    assert updates == [SpeakerUpdate(("loud", "soft"))]


def test_silence_changes_nothing() -> None:
    assert run(SpeakerDetector(), {"a": talks(), "b": talks()}, until=10.0) == []


def test_noise_bursts_shorter_than_the_hysteresis_do_not_start_a_speaker() -> None:
    bursts = talks(*((t + 0.05, t + 0.05 + 0.35) for t in range(10)), level=-10)
    assert run(SpeakerDetector(), {"door": bursts}, until=10.0) == []


def test_pauses_within_the_hold_do_not_flap() -> None:
    speech = talks((0.0, 2.0), (3.1, 5.0), (6.1, 8.0))  # 1.1 s pauses
    updates = [u for _, u in run(SpeakerDetector(), {"a": speech}, until=12.0)]
    assert updates == [SpeakerUpdate(("a",)), SpeakerUpdate((), ("a",))]


def test_a_long_enough_pause_ends_the_turn() -> None:
    speech = talks((0.0, 2.0), (5.0, 7.0))
    updates = [u for _, u in run(SpeakerDetector(), {"a": speech}, until=10.0)]
    assert updates == [SpeakerUpdate(("a",)), SpeakerUpdate((), ("a",))] * 2


def test_a_sender_that_sets_the_v_bit_is_not_loud_without_it() -> None:
    def typing_after_talking(t: float) -> tuple[int, bool]:
        if t < 2.0:
            return TALK, True
        return (TALK, False) if t < 8.0 else (SILENT, False)

    no_vad = talks((0.0, 5.0), voice=False)  # never sets V: judged by level
    sources = {"typist": typing_after_talking, "no_vad": no_vad}
    updates = [u for _, u in run(SpeakerDetector(), sources, until=8.0)]
    assert set(updates[0].active) == {"no_vad", "typist"}
    assert SpeakerUpdate(("no_vad",), ("typist",)) in updates  # typing did not hold it


def test_handle_timer_before_it_is_due_does_nothing() -> None:
    detector = SpeakerDetector()
    assert detector.next_timer() is None
    assert detector.handle_timer(5.0) is None
    detector.observe("a", TALK, True, 10.0)
    assert detector.next_timer() == 10.0 + speakers.INTERVAL
    assert detector.handle_timer(10.1) is None
    assert detector.next_timer() == 10.0 + speakers.INTERVAL


def test_the_timer_stops_when_nothing_goes_on_and_a_late_one_does_not_catch_up() -> None:
    detector = SpeakerDetector()
    detector.observe("a", SILENT, False, 0.0)
    detector.handle_timer(0.4)
    assert detector.next_timer() == 0.8
    detector.observe("a", SILENT, False, 0.5)
    detector.handle_timer(30.0)  # very late: the next is an interval on, not 0.8
    assert detector.next_timer() == 30.0 + speakers.INTERVAL
    detector.handle_timer(30.4)  # a window without packets or activity
    assert detector.next_timer() is None


def test_leaving_is_forgotten_and_reported_at_once() -> None:
    detector = SpeakerDetector()
    sources = {"a": talks((0.0, 1.5)), "b": talks((2.0, 9.0)), "c": talks()}
    run(detector, sources, until=6.0)
    assert detector.current == SpeakerUpdate(("b",), ("a",))
    assert detector.remove("c") is None  # neither speaker nor recent
    assert detector.remove("b") == SpeakerUpdate((), ("a",))
    assert detector.remove("a") == SpeakerUpdate()
    assert detector.remove("a") is None
    assert detector.current == SpeakerUpdate()
    assert run(detector, {"c": talks()}, until=2.0) == []


def test_recent_speakers_are_bounded_latest_first() -> None:
    sources = {f"p{i}": talks((3.0 * i, 3.0 * i + 1.5)) for i in range(12)}
    detector = SpeakerDetector()
    run(detector, sources, until=40.0)
    assert detector.current.active == ()
    assert detector.current.recent == tuple(f"p{i}" for i in range(11, 3, -1))
    assert len(detector.current.recent) == speakers.MAX_RECENT


def test_participants_past_the_cap_are_not_tracked() -> None:
    detector = SpeakerDetector(max_participants=2)
    sources = {"a": talks(), "b": talks(), "c": talks((0.0, 5.0))}
    assert run(detector, sources, until=3.0) == []
    assert detector.refused == round(3.0 / PTIME)
    detector.remove("a")  # the room let "a" go: "c" takes its place
    sources = {"b": talks(), "c": talks((0.0, 10.0))}
    assert [u for _, u in run(detector, sources, until=6.0)] == [SpeakerUpdate(("c",))]


def test_observing_is_cheap() -> None:
    """Prints packets per second of the hot-path call, for 100 participants; asserts none."""
    detector = SpeakerDetector()
    names = [f"p{i}" for i in range(100)]
    count = 200_000
    began = time.perf_counter()
    for i in range(count):
        detector.observe(names[i % 100], -(i % 128), bool(i & 1), i * 0.0002)
    observe = count / (time.perf_counter() - began)
    began = time.perf_counter()
    for i in range(1000):
        for name in names:
            detector.observe(name, TALK if i % 7 else SILENT, True, 40.0 + i * 0.4)
        detector.handle_timer(40.0 + i * 0.4)
    ticks = 1000 / (time.perf_counter() - began)
    print(f"\nspeakers: {observe:,.0f} observe/s; {ticks:,.0f} windows/s of 100 participants")
