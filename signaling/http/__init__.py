"""The HTTP face: the aiohttp app, WHIP/WHEP and SRS routes, connection guard, access checks.

May import routing's public API (sfu.routing, sfu.io.server) and signaling packages below startup.
"""
