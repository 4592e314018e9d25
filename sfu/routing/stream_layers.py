"""Layers within one RTP stream for one player track: a VP8 temporal limit on the lowest
simulcast layer, and the spatial and temporal targets of a VP9 SVC stream.

Player.adapt calls these once a second with its estimate, beside its choice among simulcast
layers (separate RTP streams), which it makes itself.
"""

from __future__ import annotations

from sfu.protocol import fastpath
from sfu.protocol.simulcast import TEMPORAL_BACK, LayerPace
from sfu.protocol.svc import choose_svc
from sfu.routing.publisher_track import PublisherTrack
from sfu.routing.subscriber_track import SubscriberTrack


def limit_vp8_temporal(
    track: SubscriberTrack, lowest: PublisherTrack, estimate: float | None
) -> None:
    """On the lowest layer with an estimate below even its bitrate, keep only its base
    temporal layer (a lower frame rate); all frames again once there is clear room."""
    on_lowest = track.source is lowest and track.pending is None and track.choice.auto
    on_lowest = on_lowest and lowest.codec.name.lower() == "vp8"  # TIDs are read from VP8
    if on_lowest and estimate is not None and lowest.bitrate > estimate:
        track.limit_temporal(0)
    elif not on_lowest or estimate is None or estimate > TEMPORAL_BACK * lowest.bitrate:
        track.limit_temporal(None)


def is_svc(track: SubscriberTrack) -> bool:
    """True when the track plays a VP9 stream, whose layers its targets choose."""
    source = track.source
    return source is not None and source.payload_rule == fastpath.PAYLOAD_VP9_SVC


def adapt_svc(track: SubscriberTrack, estimate: float | None, pace: LayerPace, now: float) -> None:
    """Set the track's targets from its choice and the estimate (svc.choose_svc): down at
    once; up, for an automatic choice, as `pace` allows. A spatial move up asks the
    publisher for a keyframe, the only place K-SVC lets a player up."""
    source = track.source
    assert isinstance(source, PublisherTrack)
    spatial, temporal = choose_svc(
        track.choice, source.spatial_rates, source.spatial_sizes, estimate
    )
    old = (track.target_spatial, track.target_temporal)
    if (spatial, temporal) == old:
        return
    up = spatial > old[0] or (spatial == old[0] and temporal > old[1])
    if up and track.choice.auto and track.started and not pace.allows_upgrade(now):
        return
    track.target_spatial, track.target_temporal = spatial, temporal
    if track.started:
        pace.changed(up, now)
    if spatial > track.current_spatial and track.started:
        source.request_keyframe(now)
