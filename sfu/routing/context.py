"""What a publisher or player handler may use of the router that made it.

Handed over as plain values and one callable, so the handlers depend neither on the Router
nor on the module that defines it: the router imports them, never the other way round.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from sfu.session.table import SessionTable
from sfu.session.transport import SendFunction, Transport


@dataclass(frozen=True)
class HandlerContext:
    """The router's shared state a media handler reads or counts into."""

    # Where drops and forwarded datagrams are counted (drops, media_datagrams_out).
    sessions: SessionTable
    # SSRCs and sequence starts of player tracks: seeded in tests.
    rng: random.Random
    # At most one keyframe request per publisher track per this many seconds.
    keyframe_interval: float
    # What forwards to a session at its current address (UDP of either family, or TCP).
    sendto_for: Callable[[Transport], SendFunction]
