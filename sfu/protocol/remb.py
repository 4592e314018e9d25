"""A receiver's REMB total over the streams it names.

A REMB (draft-alvestrand-rmcat-remb) is the bitrate a receiver estimates for the SSRCs it
lists. Chromium and Firefox list every stream of the connection in one; aiortc sends one per
video stream, naming only that stream's SSRC. Taking the latest alone then reads one stream's
share as the whole link, and a room subscriber with several videos looked too slow for any
of them. The total is the sum of the latest REMB for each set of this player's SSRCs; a new
set that overlaps an older one replaces it, so a receiver that regroups is not counted twice.
A REMB that names none of our SSRCs speaks for the whole link and replaces every other.
"""

from __future__ import annotations

from collections.abc import Container, Iterable


class RembTotal:
    """The latest REMB of each disjoint set of our SSRCs; at most one set per SSRC we send."""

    def __init__(self) -> None:
        self._by_set: dict[frozenset[int], int] = {}

    def update(self, bitrate: int, ssrcs: Iterable[int], own: Container[int]) -> int:
        """Take one REMB; return the link's total as the receiver now sees it."""
        named = frozenset(ssrc for ssrc in ssrcs if ssrc in own)
        stale = [
            key for key in self._by_set if key != named and (not key or not named or key & named)
        ]
        for key in stale:
            del self._by_set[key]
        self._by_set[named] = bitrate
        return sum(self._by_set.values())
