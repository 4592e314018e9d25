"""Who speaks in a room, from the RFC 6464 levels of its audio packets (sfu.wire.audio_level).

Each audio packet costs a dict lookup and a few additions into its participant's window
(`observe`). Every INTERVAL a timer (`handle_timer`) judges each window, updates a smoothed
speaking state with hysteresis, and returns the speakers only when they changed.

Thresholds, and why:

- INTERVAL = 0.4 s. LiveKit updates speakers every ~400 ms; mediasoup's level observer uses
  1 s, which feels late when the talk moves on. 0.4 s holds 20 packets at Opus's usual 20 ms.
- THRESHOLD_DBOV = -45: a packet at or above it is loud. Between LiveKit's -35 (it misses soft
  voices on quiet microphones) and mediasoup's -80 (room noise and breathing count): browser
  speech after AGC sits around -20 to -40 dBov, suppressed background well below -50.
- A window is loud when at least MIN_LOUD_SHARE (half) of its packets are loud and at least
  MIN_LOUD_PACKETS (3, 60 ms of 20 ms packets) are: a click is one packet, and during Opus DTX
  silence a few stray packets must not make a whole window loud. LiveKit asks for 40 %.
- Hysteresis, an activity counter in 0..HOLD_INTERVALS: +1 per loud window, -1 per quiet one.
  A participant starts speaking when it reaches START_INTERVALS (2 windows in a row), and stops
  at 0. So a sound shorter than 0.4 s never starts (it cannot fill half of two windows), and a
  speaker who talked for 1.6 s or more is held through pauses of up to 1.2 s (it takes four
  quiet windows, each more than half silent, to count down from 4).
- The V bit: a sender that has ever set it is trusted, and its packets without it are not
  loud (a typing sound is loud but no voice). A sender that never sets it (vad=off, or a
  client that does not run a VAD) is judged by level alone.
- Order: the speakers by smoothed level (an exponential average, SMOOTHING per window, of the
  window's mean amplitude, quiet packets counting zero), then by the latest loud window, then
  by who came first: deterministic, and the loudest current talker leads.
- Recent speakers: those who spoke and stopped, the latest first, at most MAX_RECENT, for
  the allocator's priority (they are likely to speak again).
- At most MAX_PARTICIPANTS are tracked; the audio of any more is not looked at (counted).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

INTERVAL = 0.4  # seconds between judgements
THRESHOLD_DBOV = -45
MIN_LOUD_SHARE = 0.5
MIN_LOUD_PACKETS = 3
START_INTERVALS = 2
HOLD_INTERVALS = 4
SMOOTHING = 0.5  # weight of the newest window in the smoothed level
MAX_RECENT = 8
MAX_PARTICIPANTS = 1000

# Linear amplitude of each RFC 6464 level (0..127 -dBov): a table, so a packet costs no pow().
_AMPLITUDE = tuple(10 ** (-level / 20) for level in range(128))


@dataclass(frozen=True)
class SpeakerUpdate:
    """The room's speakers, loudest first, and its recent speakers, latest first (disjoint)."""

    active: tuple[Hashable, ...] = ()
    recent: tuple[Hashable, ...] = ()


class _Talker:
    """One participant's open window and its smoothed state."""

    __slots__ = (
        "activity",
        "energy",
        "last_loud",
        "loud",
        "order",
        "packets",
        "smoothed",
        "speaking",
        "vad_seen",
    )

    def __init__(self, order: int) -> None:
        self.order = order  # when first heard: the last tie-break
        self.packets = 0
        self.loud = 0
        self.energy = 0.0  # sum of the loud packets' amplitudes
        self.activity = 0
        self.smoothed = 0.0
        self.last_loud = -1  # the last loud window's number
        self.speaking = False
        self.vad_seen = False


class SpeakerDetector:
    """Active speaker detection for one room: `observe` per audio packet, `handle_timer` when
    `next_timer` is due, `remove` when a participant leaves."""

    def __init__(
        self,
        *,
        interval: float = INTERVAL,
        threshold_dbov: int = THRESHOLD_DBOV,
        max_participants: int = MAX_PARTICIPANTS,
    ) -> None:
        self.interval = interval
        self.threshold = threshold_dbov
        self.max_participants = max_participants
        self.refused = 0  # packets of participants past the cap, not looked at
        self._talkers: dict[Hashable, _Talker] = {}
        self._recent: list[Hashable] = []
        self._due: float | None = None  # None while the room is silent and idle
        self._window = 0
        self._joined = 0
        self.current = SpeakerUpdate()

    def observe(self, participant: Hashable, dbov: int, voice: bool, now: float) -> None:
        """Count one audio packet of `participant` at `dbov` (0..-127, as parsed) with its V
        bit into the open window."""
        talker = self._talkers.get(participant)
        if talker is None:
            if len(self._talkers) >= self.max_participants:
                self.refused += 1
                return
            self._joined += 1
            talker = self._talkers[participant] = _Talker(self._joined)
        if self._due is None:
            self._due = now + self.interval
        talker.packets += 1
        if voice:
            talker.vad_seen = True
        elif talker.vad_seen:
            return
        if dbov >= self.threshold:
            talker.loud += 1
            talker.energy += _AMPLITUDE[max(0, -dbov)]

    def next_timer(self) -> float | None:
        return self._due

    def handle_timer(self, now: float) -> SpeakerUpdate | None:
        """Close the window when due: the new speakers if they changed, else None."""
        due = self._due
        if due is None or now < due:
            return None
        self._window += 1
        busy = False
        for participant, talker in self._talkers.items():
            busy = self._judge(participant, talker) or busy
        speaking = [(p, t) for p, t in self._talkers.items() if t.speaking]
        speaking.sort(key=lambda item: (-item[1].smoothed, -item[1].last_loud, item[1].order))
        update = SpeakerUpdate(tuple(p for p, _ in speaking), tuple(self._recent))
        following = due + self.interval
        self._due = (following if following > now else now + self.interval) if busy else None
        if update == self.current:
            return None
        self.current = update
        return update

    def _judge(self, participant: Hashable, talker: _Talker) -> bool:
        """Fold the closed window into `talker`'s state and open a new one; whether it still
        has anything going on (packets, or activity left to count down)."""
        packets, loud = talker.packets, talker.loud
        score = talker.energy / packets if packets else 0.0
        talker.smoothed += SMOOTHING * (score - talker.smoothed)
        if loud >= MIN_LOUD_PACKETS and loud >= MIN_LOUD_SHARE * packets:
            talker.activity = min(HOLD_INTERVALS, talker.activity + 1)
            talker.last_loud = self._window
        elif talker.activity:
            talker.activity -= 1
        if not talker.speaking and talker.activity >= START_INTERVALS:
            talker.speaking = True
            if participant in self._recent:
                self._recent.remove(participant)
        elif talker.speaking and not talker.activity:
            talker.speaking = False
            self._recent.insert(0, participant)
            del self._recent[MAX_RECENT:]
        talker.packets = talker.loud = 0
        talker.energy = 0.0
        return bool(packets or talker.activity)

    def remove(self, participant: Hashable) -> SpeakerUpdate | None:
        """Forget a participant who left; the new speakers at once if it was among them."""
        self._talkers.pop(participant, None)
        if participant in self._recent:
            self._recent.remove(participant)
        current = self.current
        if participant not in current.active and participant not in current.recent:
            return None
        active = tuple(p for p in current.active if p != participant)
        self.current = SpeakerUpdate(active, tuple(self._recent))
        return self.current
