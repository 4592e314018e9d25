"""Deprecated alias, kept for one release: MediaServer lives in sfu.io.server now."""

from sfu.io.server import MediaServer

__all__ = ["MediaServer"]
