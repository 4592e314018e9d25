"""Admission limits: how many sessions the server holds in all and how many players per stream.

A server that takes every offer can be exhausted by one client in a loop; refusing early, with a
503 and Retry-After, keeps the sessions already running healthy.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu.routing.router import PLAY, Router


@dataclass(frozen=True)
class Limits:
    """Caps on live sessions; 0 means no cap."""

    max_sessions: int = 0
    max_players_per_stream: int = 0

    def refusal(self, router: Router, role: str, stream: str) -> str | None:
        """Why one more `role` session on `stream` would exceed a cap, or None if it fits."""
        if self.max_sessions and router.session_count() >= self.max_sessions:
            return f"server is full: {self.max_sessions} sessions is the limit"
        cap = self.max_players_per_stream
        if role == PLAY and cap and router.player_count(stream) >= cap:
            return f"stream {stream} is full: {cap} players is the limit"
        return None
