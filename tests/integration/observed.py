"""The server app in this process on 127.0.0.1, with a client: for policy, metrics and events tests.

The subprocess server of tests/conftest.py costs a process start per test; these tests need
only the app and a media server, so they run them in-process instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp
from aiohttp.test_utils import TestServer

from sfu.config import MediaConfig
from sfu.io.server import MediaServer
from signaling.http.app import create_app
from signaling.observe.wiring import add_observability
from signaling.security.auth import Authenticator


@asynccontextmanager
async def serving(
    event_streams: int | None = None, media: MediaServer | None = None, **policy: object
) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """The app with `policy` (auth=, limits=, hooks=, admission=, ...) and a client for it;
    with `event_streams`, also /metrics and the events, at most that many streams open. The
    media server is a new one unless given."""
    media = media or MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0))
    await media.start()
    app = create_app(media, ["127.0.0.1"], None, **policy)  # type: ignore[arg-type]
    if event_streams is not None:
        add_observability(app, media, 0, event_streams)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield http, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await media.stop()


def observed(
    auth: Authenticator | None = None, max_event_streams: int = 10
) -> AbstractAsyncContextManager[tuple[aiohttp.ClientSession, str]]:
    """`serving` with metrics and events."""
    return serving(max_event_streams, auth=auth)
