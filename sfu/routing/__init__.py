"""Streams, publishers, players, their tracks, rooms, relays between processes, typed stats.

May import sfu.session, sfu.protocol and sfu.wire; never a socket, aiohttp or signaling.
"""
