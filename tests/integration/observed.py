"""A server app with metrics and events, in this process on 127.0.0.1, for policy tests.

The subprocess server of tests/conftest.py waits for an open stats API, which a server with
`--auth-stats` does not have; these tests run the same app in-process instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp.test_utils import TestServer

from sfu.config import MediaConfig
from sfu.server import MediaServer
from signaling.app import create_app
from signaling.auth import Authenticator
from signaling.observe import add_observability


@asynccontextmanager
async def observed(
    auth: Authenticator | None = None, max_event_streams: int = 10
) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0))
    await media.start()
    app = create_app(media, ["127.0.0.1"], None, auth=auth)
    add_observability(app, media, 0, max_event_streams)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield http, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await media.stop()
