"""The shapes of the names in public URLs: stream names and session ids.

Both the front and a media server match routes with them; a name of another shape never
reaches a handler.
"""

NAME_SEGMENT = r"[A-Za-z0-9_.~-]{1,64}"  # one part of a stream name
STREAM_PATTERN = rf"{NAME_SEGMENT}(?:/{NAME_SEGMENT})?"
# Session ids are lowercase hex (sfu/session/peer.py); the front forwards nothing else.
SESSION_ID_PATTERN = r"[0-9a-f]{32}"
