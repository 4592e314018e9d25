"""Refusals a flood can repeat at will, logged as one line per interval with their count.

A client refused a thousand times a second must not write a thousand log lines: the first
refusal is logged at once, later ones are added up and logged with the next refusal that comes
after the interval. The exact figures are in the counters (/api/v1/server, /metrics).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

LOG_INTERVAL = 10.0  # seconds between two lines of one RefusalLog


class RefusalLog:
    """Counts the refusals of one kind (`what`) and logs them at most once per interval."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.interval = interval
        self._clock = clock
        self._count = 0
        self._since = -math.inf  # when the last line was written

    def note(self, reason: str) -> None:
        """One more refusal, for `reason` (the latest reason goes in the line)."""
        self._count += 1
        now = self._clock()
        if now - self._since < self.interval:
            return
        if math.isinf(self._since):
            self.logger.info("%s refused: %s", self.what, reason)
        else:
            self.logger.info(
                "%d %s refused in the last %.0f s; the latest: %s",
                self._count,
                self.what,
                now - self._since,
                reason,
            )
        self._count = 0
        self._since = now
