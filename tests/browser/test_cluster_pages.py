"""The cluster recipe of docs/scaling.md as a person would try it: Redis, two nodes, Chromium.

A fake camera published on node a is decoded by players on node a and on node b, the second
over a relay between the nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.launcher import stop_server
from tests.browser.conftest import Browsing, checked_browsing
from tests.browser.test_pages import FIRST_MEDIA_S, assert_grows, start_publishing
from tests.integration.test_cluster import start_node
from tests.redisd import RedisProcess, redis_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def two_nodes(tmp_path: Path, redis_server: RedisProcess) -> Iterator[list[Any]]:  # noqa: F811
    nodes = [start_node(tmp_path, redis_server, name) for name in "ab"]
    yield nodes
    for node in nodes:
        stop_server(node)
    for node in nodes:
        assert "Traceback" not in node.log(), node.log()


def test_publish_on_one_node_and_play_on_both(
    browser: Any, two_nodes: list[Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    a, b = two_nodes
    with checked_browsing(Browsing(browser, tmp_path, request.node.name, server=b)) as browsing:
        start_publishing(browsing, a.http_url, "live/cam1", "publisher on a")
        for node, name in ((a, "player on a"), (b, "player on b")):
            page = browsing.open(f"{node.http_url}/play.html?stream=live/cam1", name)
            browsing.wait_for(
                f"{name} to decode video",
                lambda page=page: browsing.stats(page),
                lambda s: s["framesDecoded"] > 0 and s["videoWidth"] > 0,
                FIRST_MEDIA_S,
            )
            assert_grows(
                browsing,
                f"{name} framesDecoded",
                lambda page=page: browsing.stats(page)["framesDecoded"],
            )
            assert "playing" in page.text_content("#status")
        browsing.screenshot(page, "play-on-b")


def test_a_draining_node_sends_its_players_to_the_other(
    browser: Any, two_nodes: list[Any], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SIGTERM on node b: its player hears `reconnect` with node a's URL and plays from a,
    without a reload; b's session ends by the player's DELETE, so b drains at once."""
    a, b = two_nodes
    session = Browsing(browser, tmp_path, request.node.name, server=a)
    session.expected_console_errors = [r"Failed to load resource", r"net::ERR_"]  # b is gone
    with checked_browsing(session) as browsing:
        start_publishing(browsing, a.http_url, "live/move", "publisher on a")
        page = browsing.open(f"{b.http_url}/play.html?stream=live/move", "player on b")
        first, _ = browsing.wait_for(
            "the player on b to decode video",
            lambda: browsing.stats(page),
            lambda s: s["framesDecoded"] > 0,
            FIRST_MEDIA_S,
        )
        assert first["sessionUrl"].startswith(b.http_url)
        b.process.terminate()
        moved, took = browsing.wait_for(
            "the player to play from node a",
            lambda: browsing.stats(page),
            lambda s: (
                (s["sessionUrl"] or "").startswith(a.http_url)
                and s["framesDecoded"] >= first["framesDecoded"] + 10
            ),
            FIRST_MEDIA_S + 15,
        )
        print(f"player moved to node a and decoding {took:.1f} s after SIGTERM to b")
        assert b.process.wait(timeout=30) == 0  # its one player left: drained at once
        assert "told 1 event stream(s) to reconnect to http://127.0.0.1" in b.log()
        assert moved["sessions"] == 2  # one on b, one on a: never two at once
