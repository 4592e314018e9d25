"""Every route a browser may call cross-origin answers the CORS preflight: the test walks the
route table of a single server's app and of the --workers front."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sfu.config import MediaConfig
from sfu.io.server import MediaServer
from signaling.http.app import create_app
from signaling.observe.wiring import add_observability
from signaling.workers.balancer import Balancer
from signaling.workers.front import create_front
from signaling.workers.pool import WorkerPool


def concrete(resource: web.AbstractResource) -> str | None:
    """A path that the resource matches, its {variables} filled in; None for static files."""
    info = resource.get_info()
    if "formatter" in info:
        path = info["formatter"]
        for name in ("stream", "id", "room", "participant", "key", "path"):
            path = path.replace(f"{{{name}}}", "live")
        return path.replace("{name}", "1-init-1.mp4")  # an HLS resource: its pattern is strict
    return info.get("path")


def cross_origin_routes(app: web.Application) -> list[tuple[str, str]]:
    """(path, method) of every route but OPTIONS and HEAD (no preflight) and static files."""
    routes = []
    for resource in app.router.resources():
        if isinstance(resource, web.StaticResource):
            continue
        path = concrete(resource)
        assert path is not None, resource
        for route in resource:
            if route.method not in ("OPTIONS", "HEAD", "*"):
                routes.append((path, route.method))
    return routes


async def preflights(app: web.Application) -> dict[tuple[str, str], int]:
    """The status each route's preflight got, asked as a page on another origin would."""
    answers = {}
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
        for path, method in cross_origin_routes(app):
            headers = {
                "Origin": "https://player.example",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization, content-type",
            }
            async with http.options(server.make_url(path), headers=headers) as answer:
                assert answer.headers.get("Access-Control-Allow-Origin") == "*", path
                assert method in answer.headers["Access-Control-Allow-Methods"], path
                answers[(path, method)] = answer.status
    return answers


def single_server() -> web.Application:
    media = MediaServer(MediaConfig())
    app = create_app(media, ["127.0.0.1"], None)
    add_observability(app, media, 0, 10)
    return app


async def test_every_route_of_a_server_answers_the_preflight() -> None:
    answers = await preflights(single_server())
    assert ("/events/streams/live", "GET") in answers  # the WHEP event subscription
    assert ("/events/whep/live", "POST") in answers
    assert len(answers) >= 20
    assert {path: s for path, s in answers.items() if not 200 <= s < 300} == {}


async def test_every_route_of_the_front_answers_the_preflight() -> None:
    pool = WorkerPool(2, 0, [])
    app = create_front(pool, Balancer(pool, 1), None)
    answers = await preflights(app)
    assert len(answers) > 15
    assert {path: s for path, s in answers.items() if not 200 <= s < 300} == {}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_a_route_that_does_not_exist_is_still_a_404(method: str) -> None:
    server = TestServer(single_server(), host="127.0.0.1")
    async with server, aiohttp.ClientSession() as http:
        async with http.options(server.make_url("/no/such/route")) as answer:
            assert answer.status == 404
        async with http.request(method, server.make_url("/whip/live/x/y/z")) as answer:
            assert answer.status in (404, 405)
