"""What the router tells the control plane of a room, as frozen values, and what it is told.

A view names other participants by name only, never by session id or address: signaling turns
the change between two views into one participant's events, which must tell it nothing it
could use against another participant.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrackPrefs:
    """One subscriber's wishes for one other participant's media: pinned first when the
    downlink is shared, off (no slot at all), and a size cap on its video."""

    pinned: bool = False
    off: bool = False
    max_width: int | None = None
    max_height: int | None = None


@dataclass(frozen=True)
class OwnMedia:
    """What a participant says of its own publication, which its stream cannot show: which
    kinds it muted ("video" muted: the room carries none of its camera), and whether its
    second video m-line carries a screen share (unsaid, that m-line is a silent spare)."""

    muted: frozenset[str] = frozenset()
    screen: bool = False


@dataclass(frozen=True)
class ParticipantView:
    """Another participant of the room: whether it publishes (its stream is live) and what
    tracks the room carries of it ("audio", "video", "screen"), whether it subscribes (has a
    subscribe session), and the kinds it says it muted."""

    name: str
    publishing: bool
    kinds: tuple[str, ...]
    subscribed: bool
    muted: tuple[str, ...] = ()


@dataclass(frozen=True)
class SlotView:
    """One m-line of the subscriber's offer: whose media it carries now (None: free), the
    simulcast layer it plays (None: a single-layer source or no source), and whether that
    media is the participant's screen share rather than its camera."""

    mid: str
    kind: str
    participant: str | None
    paused: bool
    rid: str | None
    screen: bool = False


@dataclass(frozen=True)
class RoomView:
    """One subscriber's room: the others, its slots, the slot counts it should offer in all
    (at least what it offers), the speakers, its estimate and what is allocated of it, and how
    paused video was tested (sfu.protocol.resume): probes and trials, and those that failed."""

    room: str
    participant: str
    participants: tuple[ParticipantView, ...]
    slots: tuple[SlotView, ...]
    wanted: dict[str, int]
    speakers: tuple[str, ...]
    estimate: float | None
    allocated: float
    paused: int
    probes: int = 0
    failed_probes: int = 0
    trials: int = 0
    failed_trials: int = 0


@dataclass(frozen=True)
class SubscriberStats:
    """One participant's subscribe session as the stats API shows it: no session id (it is
    the capability) and no address. `estimate` and `allocated` are bits per second."""

    serial: int
    participant: str
    state: str
    slots: int  # m-lines offered
    fed: int  # slots that carry someone
    paused: int  # fed video slots the allocation sends nothing
    estimate: float | None
    allocated: float
    packets: int  # sent on its slots, all sources
    bytes: int
    probes: int
    failed_probes: int
    trials: int
    failed_trials: int

    def to_json(self) -> dict:
        return {
            "participant": self.participant,
            "state": self.state,
            "slots": self.slots,
            "fed": self.fed,
            "paused": self.paused,
            "estimate": round(self.estimate) if self.estimate is not None else None,
            "allocated": round(self.allocated),
            "packets": self.packets,
            "bytes": self.bytes,
            "probes": self.probes,
            "failed_probes": self.failed_probes,
            "trials": self.trials,
            "failed_trials": self.failed_trials,
        }


@dataclass(frozen=True)
class RoomStats:
    """A room of this process: its participants (subscribers and publishers), who publishes,
    who speaks, and each subscriber's share of its downlink."""

    name: str
    participants: int
    publishing: int
    speakers: tuple[str, ...]
    subscribers: tuple[SubscriberStats, ...]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "participants": self.participants,
            "publishing": self.publishing,
            "speakers": list(self.speakers),
            "subscribers": [s.to_json() for s in self.subscribers],
        }
