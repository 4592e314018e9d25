"""Sharing one subscriber's downlink among the tracks it wants, by priority (DESIGN.md, Rooms).

A pure function of the link's estimate and the wanted tracks, run again whenever either
moves (about once a second): it keeps no state, so the caller paces switches (LayerPace) and
asks for keyframes. The rules, in order:

1. Off. A track the subscriber hides (or one with no layer to send) gets nothing, state OFF.
2. Audio first, never paused: each audio track gets its first (lowest) layer, counted against
   the budget before any video. It is cheap, and a room without sound is no room.
3. Video minimums, a strict prefix. In priority order (PINNED, SPEAKER, RECENT by rank, OTHER;
   ties by track id) each video gets its lowest layer while that fits in what is left; the
   first that does not fit is PAUSED, and so is every video after it, even a cheaper one.
   So the lowest priority pauses first, a bigger budget never pauses more tracks, and video
   that does not fit is paused rather than left to freeze. The caller may ask that at least
   the first `at_least` videos be shown whatever they cost: those the link was seen to carry
   when its estimate cannot tell (sfu.protocol.resume).
4. Upgrades, one ladder step at a time, never past the subscriber's size cap nor past what is
   available. A track's ladder is its layers sorted by (spatial, temporal), a temporal index
   of None (all temporal layers) above every number: a step raises the temporal layer within
   a spatial layer, and moves to the next spatial layer once its top temporal layer is
   reached. Its first rung is the lowest layer even when that is over the size cap (small is
   better than nothing); the others are the layers within the cap. A step is taken when its
   extra bitrate fits in what is left; a track whose next step does not fit stops climbing.
   a. PINNED and SPEAKER videos, in priority order, each climb as far as they fit: the video
      a subscriber looks at gets quality before the thumbnails do.
   b. Then the others take one step each per round, in priority order, until a round moves
      none: the rest of the budget is spread over the thumbnails, best priority first.
5. Unknown budget (None, no estimate yet): every track that is not off gets its lowest layer,
   none paused. Pausing without evidence would black out video; the lowest layers are the
   cheapest guess, and the estimate follows within a second or two of feedback.

The allocation is at most the budget, except that audio is never paused (when audio alone
exceeds it, every video is paused and the total is the audio's) and that the videos asked to
be shown are. It also names the paused video that would come back first and the budget that
would show it (`resume`), which the caller tests (sfu.protocol.resume). Work is O(tracks x
layers) (plus sorting the tracks by priority and each track's layers), every loop bounded by
them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from sfu.media import AUDIO
from sfu.protocol.simulcast import Layer, ranked

ON = "on"
PAUSED = "paused"  # wanted, but its lowest layer does not fit: sent nothing until it does
OFF = "off"  # not wanted (hidden), or nothing to send


class Priority(IntEnum):
    """Video priority classes, the most important first; audio is above them all by kind."""

    PINNED = 0  # pinned by the subscriber, or a screen share
    SPEAKER = 1  # an active speaker's video
    RECENT = 2  # a recent speaker's, ordered among themselves by Want.rank
    OTHER = 3


@dataclass(frozen=True)
class LayerOption:
    """One layer a track can be sent at: a simulcast or SVC spatial index, a temporal limit
    (None: all temporal layers), its bitrate in bit/s and picture size (0: not known yet)."""

    spatial: int
    temporal: int | None
    bitrate: int
    width: int = 0
    height: int = 0
    rid: str | None = None  # the simulcast layer it is, for the caller to switch to


@dataclass(frozen=True)
class Wish:
    """What the subscriber asked of one track: hidden (off), or a cap on its picture size."""

    off: bool = False
    max_width: int | None = None
    max_height: int | None = None

    def allows(self, option: LayerOption) -> bool:
        """An unknown size (0) passes, as simulcast.choose lets it."""
        return (self.max_width is None or not option.width or option.width <= self.max_width) and (
            self.max_height is None or not option.height or option.height <= self.max_height
        )


@dataclass(frozen=True)
class Want:
    """One track the subscriber receives, with its available layers (any order)."""

    id: str
    kind: str  # sfu.media.AUDIO or VIDEO
    layers: tuple[LayerOption, ...]
    priority: Priority = Priority.OTHER
    rank: int = 0  # among RECENT: 0 is the most recent speaker
    wish: Wish = Wish()


@dataclass(frozen=True)
class Grant:
    """What one track gets: ON with a layer, or PAUSED or OFF with none."""

    id: str
    state: str
    layer: LayerOption | None = None


@dataclass(frozen=True)
class Allocation:
    """The grants in the order of the wants, the bit/s they add up to, how many videos are
    paused, the first paused video by priority with the budget that would show it at its
    lowest layer (None when none is paused), and how many videos are shown."""

    grants: tuple[Grant, ...]
    allocated: int
    paused: int
    resume: tuple[str, int] | None = None
    shown: int = 0


def _ladder_key(option: LayerOption) -> tuple[int, float]:
    return option.spatial, math.inf if option.temporal is None else option.temporal


def ladder(want: Want) -> list[LayerOption]:
    """The rungs a track may be given, lowest first (rule 4); empty when it is off."""
    wish, layers = want.wish, want.layers
    if wish.off or not layers:
        return []
    ordered = sorted(layers, key=_ladder_key) if len(layers) > 1 else list(layers)
    if wish.max_width is None and wish.max_height is None:
        return ordered
    return [ordered[0], *(option for option in ordered[1:] if wish.allows(option))]


OFF_RUNG = -1
PAUSED_RUNG = -2


def allocate(budget: float | None, wants: Sequence[Want], at_least: int = 0) -> Allocation:
    """Share `budget` (bit/s, None when unknown) among `wants` by the rules above, showing
    at least the first `at_least` videos by priority."""
    ladders = [ladder(want) for want in wants]
    rung = [0 if rungs else OFF_RUNG for rungs in ladders]  # each track's index in its ladder
    video = sorted(
        (i for i, w in enumerate(wants) if w.kind != AUDIO and ladders[i]),
        key=lambda i: (wants[i].priority, wants[i].rank, wants[i].id),
    )
    shown = len(video)
    resume = None
    cap = _whole(budget)
    if cap is not None:
        audio = [i for i, w in enumerate(wants) if w.kind == AUDIO and ladders[i]]
        left = cap - sum(ladders[i][0].bitrate for i in audio)
        shown = 0
        for i in video:  # rule 3: the prefix that fits at its lowest layers
            cost = ladders[i][0].bitrate
            if cost > left and shown >= at_least:
                resume = (wants[i].id, cap - left + cost)
                break
            left -= cost
            shown += 1
        for i in video[shown:]:
            rung[i] = PAUSED_RUNG
        for i in video[:shown]:  # rule 4a: each climbs while its next step fits
            if wants[i].priority <= Priority.SPEAKER:
                while (extra := _next_extra(ladders[i], rung[i])) is not None and extra <= left:
                    left -= extra
                    rung[i] += 1
        thumbnails = [i for i in video[:shown] if wants[i].priority > Priority.SPEAKER]
        for _ in range(max((len(ladders[i]) for i in thumbnails), default=0)):  # rule 4b
            moved = False
            for i in thumbnails:
                extra = _next_extra(ladders[i], rung[i])
                if extra is not None and extra <= left:
                    left -= extra
                    rung[i] += 1
                    moved = True
            if not moved:
                break
    grants = tuple(_grant(w.id, ladders[i], rung[i]) for i, w in enumerate(wants))
    allocated = sum(g.layer.bitrate for g in grants if g.layer is not None)
    return Allocation(grants, allocated, len(video) - shown, resume, shown)


def _whole(budget: float | None) -> int | None:
    """The budget in whole bit/s, so sums are exact: negative counts as 0, infinity as
    more than any sum, and NaN (no number) as unknown."""
    if budget is None or math.isnan(budget):
        return None
    return max(0, math.floor(budget)) if math.isfinite(budget) else (1 << 62) * (budget > 0)


def _next_extra(rungs: list[LayerOption], at: int) -> int | None:
    """The bit/s one step up the ladder adds; None at its top."""
    return rungs[at + 1].bitrate - rungs[at].bitrate if at + 1 < len(rungs) else None


def _grant(track: str, rungs: list[LayerOption], at: int) -> Grant:
    if at == PAUSED_RUNG:
        return Grant(track, PAUSED)
    return Grant(track, OFF) if at == OFF_RUNG else Grant(track, ON, rungs[at])


def simulcast_options(
    layers: Sequence[Layer], base_temporal_share: float | None = None
) -> tuple[LayerOption, ...]:
    """A publisher's simulcast layers as options: those heard from, spatial index = position
    in simulcast.ranked, rid kept. With `base_temporal_share`, the lowest layer is offered
    first as its base temporal layer alone (TID 0, VP8), costing that share of its bitrate
    (libwebrtc's VP8 rate split gives TID 0 60 % of two temporal layers, 40 % of three)."""
    heard = [layer for layer in ranked(layers) if layer.packets]
    options = [
        LayerOption(index, None, math.ceil(layer.bitrate), layer.width, layer.height, layer.rid)
        for index, layer in enumerate(heard)
    ]
    if base_temporal_share is not None and heard:
        lowest = heard[0]
        cost = math.ceil(base_temporal_share * lowest.bitrate)
        options.insert(0, LayerOption(0, 0, cost, lowest.width, lowest.height, lowest.rid))
    return tuple(options)
