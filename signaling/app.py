"""Deprecated alias, kept for one release: create_app lives in signaling.http.app now."""

from signaling.http.app import create_app

__all__ = ["create_app"]
