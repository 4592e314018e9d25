"""`GET /metrics` for rooms: how many, how each subscriber's downlink is shared, refusals.

Per-subscriber figures would be one label set per participant, so they are gauge histograms
over all subscribers (as the players' RTT and loss are); room and participant names are never
labels. Refused room requests are counted by action (join, reoffer, prefs, leave) and status.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sfu.io.server import MediaServer
from signaling.observe.metrics import histogram

RATE_BUCKETS = (100e3, 300e3, 600e3, 1e6, 2.5e6, 5e6, 10e6)  # bits per second
PAUSED_BUCKETS = (0, 1, 2, 4, 8, 16, 32)  # paused video slots of one subscriber


class RoomCollector(Collector):
    """Reads one media server's rooms each time Prometheus scrapes."""

    def __init__(self, media: MediaServer, refused: collections.Counter[str]) -> None:
        self.media = media
        self.refused = refused

    def collect(self) -> Iterator[Metric]:
        rooms = self.media.router.room_stats()
        subscribers = [s for room in rooms for s in room.subscribers]
        yield GaugeMetricFamily("litesfu_rooms", "Rooms with a subscriber here", len(rooms))
        yield GaugeMetricFamily(
            "litesfu_room_subscribers", "Room participants' subscribe sessions", len(subscribers)
        )
        yield GaugeMetricFamily(
            "litesfu_room_paused_videos",
            "Video slots the downlink allocation pauses, over all subscribers",
            sum(s.paused for s in subscribers),
        )
        estimates = [s.estimate for s in subscribers if s.estimate is not None]
        yield histogram(
            "litesfu_room_subscriber_estimate_bps",
            "Subscribers' downlink estimates",
            estimates,
            RATE_BUCKETS,
        )
        yield histogram(
            "litesfu_room_subscriber_allocated_bps",
            "What the allocation gives each subscriber's slots",
            [s.allocated for s in subscribers],
            RATE_BUCKETS,
        )
        yield histogram(
            "litesfu_room_subscriber_paused_videos",
            "Paused video slots per subscriber",
            [float(s.paused) for s in subscribers],
            PAUSED_BUCKETS,
        )
        refused = CounterMetricFamily(
            "litesfu_room_requests_refused",
            "Room requests refused, by action and HTTP status",
            labels=["action", "status"],
        )
        for key, count in sorted(self.refused.items()):
            action, _, status = key.partition(" ")
            refused.add_metric([action, status], count)
        yield refused
