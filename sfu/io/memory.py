"""Hand the heap that ended sessions freed back to the system.

A session's OpenSSL and libsrtp state, and its packet caches, live in glibc's heap. Freed, those
pages stay with the process: glibc returns only the top of the heap by itself, and one live
block above the freed ones pins them. So after a burst of sessions the process stays at its
peak size. malloc_trim(0) releases the free pages anywhere in the heap: measured after four
churn runs of 200 sessions, it took RSS from 119 MB back to 75 MB.
"""

from __future__ import annotations

import ctypes
import logging
import math
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

TRIM_AFTER_ENDED = 64  # sessions ended since the last trim before the next is worth its cost
TRIM_MIN_INTERVAL = 10.0  # seconds between trims, however fast sessions end


def glibc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Trims the heap once enough sessions have ended since the last trim, at most once per
    interval; told the running total of ended sessions on each timer tick."""

    def __init__(
        self,
        trim: Callable[[int], int] | None,
        after_ended: int = TRIM_AFTER_ENDED,
        min_interval: float = TRIM_MIN_INTERVAL,
    ) -> None:
        self._trim = trim
        self.after_ended = after_ended
        self.min_interval = min_interval
        self.trims = 0  # how many times the heap was trimmed
        self.seconds = 0.0  # the time those trims took
        self._ended_at_last = 0
        self._next_allowed = -math.inf

    def note(self, ended_total: int, now: float) -> bool:
        """Trim if it is due; True when it trimmed."""
        if ended_total - self._ended_at_last < self.after_ended or now < self._next_allowed:
            return False
        self._ended_at_last = ended_total
        self._next_allowed = now + self.min_interval
        if self._trim is None:
            return False
        started = time.perf_counter()
        self._trim(0)
        took = time.perf_counter() - started
        self.trims += 1
        self.seconds += took
        log.debug("heap trimmed after %d ended sessions in %.1f ms", ended_total, took * 1e3)
        return True
