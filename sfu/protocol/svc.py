"""VP9 SVC for one player: which layers of each picture it gets, and where it may change them.

A VP9 SVC publisher sends every spatial and temporal layer in one RTP stream. A player has a
target (the highest spatial and temporal layer it should get) and a current pair, which
follows the target only where the stream allows it, decided at the first packet of each
picture (a B bit with a timestamp not seen before: the lowest layer sent need not be SID 0,
as Chromium stops its lowest layers when it scales its capture down):

- spatial down, and temporal down: at once, the lower layers never depend on higher ones;
- spatial up: at a keyframe (P=0 on the picture's first layer), where every layer
  restarts; that is the only place K-SVC (L3T3_KEY) allows, and where full SVC (L3T3)
  surely allows;
- temporal up: at a picture with the U bit (RFC 9628 §4.2), one whose layer and those above
  it depend on no earlier picture of a higher layer; or at a keyframe.

Packets above the current pair are left out (their sequence numbers closed up, as for a VP8
temporal limit), and the last packet of the current spatial layer's frame gets the marker
bit, which tells the receiver the picture is complete. The compiled fan-out
(_fanout_svc.c, litesfu_svc_admit) runs the same rules, byte for byte; SubscriberTrack has
this as a base, with the fields flat in the compiled PlayerState.
"""

from __future__ import annotations

from collections.abc import Sequence

from sfu.protocol.simulcast import Choice
from sfu.wire.vp9 import Vp9Descriptor

ALL_LAYERS = 7  # a target of every layer: SID and TID are three bits
NOT_YET = -1  # the current layer before the first keyframe


class SvcFilter:
    """The fields (target_spatial, target_temporal, current_spatial, current_temporal) and
    the per-packet decision of one player track fed by a VP9 stream."""

    __slots__ = ()
    target_spatial: int
    target_temporal: int
    current_spatial: int
    current_temporal: int
    svc_picture: int  # the RTP timestamp of the last picture begun, -1 before any

    def svc_admit(self, descriptor: Vp9Descriptor, timestamp: int) -> bool:
        """Whether this player gets the packet (of RTP `timestamp`); at a picture's first
        packet, the current layers move towards the targets as the stream allows first."""
        if descriptor.begins and timestamp != self.svc_picture:
            self.svc_picture = timestamp
            keyframe = not descriptor.inter_picture
            if self.target_spatial < self.current_spatial or keyframe:
                self.current_spatial = self.target_spatial
            if self.target_temporal < self.current_temporal or keyframe:
                self.current_temporal = self.target_temporal
            elif (
                descriptor.switching_up
                and self.current_temporal < descriptor.tid <= self.target_temporal
            ):
                self.current_temporal = descriptor.tid
        return descriptor.sid <= self.current_spatial and descriptor.tid <= self.current_temporal

    def svc_marker(self, descriptor: Vp9Descriptor) -> bool:
        """True for the last packet of the current spatial layer's frame: the end of the
        picture as this player gets it."""
        return descriptor.ends and descriptor.sid == self.current_spatial


def choose_svc(
    choice: Choice,
    rates: Sequence[float],
    sizes: Sequence[tuple[int, int]],
    estimate: float | None,
) -> tuple[int, int]:
    """The (spatial, temporal) target of a player: what it pinned; else the highest spatial
    layer within its caps (layer ids, size) whose bitrate with those below (`rates`, one per
    layer heard, lowest first) fits its estimate (None: no limit known), the base layer when
    none does, at every temporal layer up to its cap, or only the base one when even the
    base spatial layer does not fit (a lower frame rate rather than a stall)."""
    top_temporal = choice.temporal
    if top_temporal is None:
        top_temporal = ALL_LAYERS if choice.max_temporal is None else choice.max_temporal
    # The lowest layer sent: Chromium stops the smallest ones when it scales its capture
    # down, and a player asking for one of those gets the smallest there is.
    lowest = next((sid for sid, rate in enumerate(rates) if rate > 0), 0)
    if choice.spatial is not None:
        return max(choice.spatial, lowest), top_temporal
    if not rates:
        return ALL_LAYERS if choice.max_spatial is None else choice.max_spatial, top_temporal
    spatial = lowest
    for sid, rate in enumerate(rates[lowest:], start=lowest):
        if choice.max_spatial is not None and sid > choice.max_spatial:
            break
        width, height = sizes[sid] if sid < len(sizes) else (0, 0)
        if (choice.max_width is not None and width > choice.max_width) or (
            choice.max_height is not None and height > choice.max_height
        ):
            break
        if sid > lowest and estimate is not None and rate > estimate:
            break
        spatial = sid
    if estimate is not None and rates[lowest] > estimate and choice.temporal is None:
        top_temporal = 0
    return spatial, top_temporal
