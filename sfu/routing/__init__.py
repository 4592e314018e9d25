"""Streams, publishers, players, their tracks, relays between processes, and typed stats.

May import sfu.session, sfu.protocol and sfu.wire; never a socket, aiohttp or signaling.
"""
