"""The pages with `--auth-secret`: minted tokens given as ?token= publish, play and join rooms.

Tokens are minted by the real command line (python -m signaling.security.auth mint), are taken
out of the visible URL, and never reach the server's log; a page without one shows the 401.
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from bench.launcher import ROOT
from tests.browser.test_pages import FIRST_MEDIA_S
from tests.conftest import shared_server

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(150)
SECRET = "browser-test-secret"


def mint(stream: str, *roles: str) -> str:
    """A stream token, or for "ROOM/NAME" with several roles a room token of NAME in ROOM."""
    command = [sys.executable, "-m", "signaling.security.auth", "mint", "--secret", SECRET]
    if len(roles) > 1:
        room, participant = stream.split("/")
        command += ["--room", room, "--participant", participant]
    else:
        command += ["--stream", stream]
    command += [arg for role in roles for arg in ("--role", role)] + ["--ttl", "600"]
    return subprocess.run(
        command, cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


# The server of this module requires signed tokens for publishing and playing; its tests
# share it (a stream and a room of their own).
sfu_server = shared_server("--auth-secret", SECRET)


def test_publish_and_play_with_minted_tokens(browsing: Browsing, sfu_server: Any) -> None:
    base = sfu_server.http_url
    browsing.expected_console_errors.append(r"401")
    refused = browsing.open(f"{base}/publish.html?stream=live/t", "no-token")
    refused.click("#start")
    browsing.wait_for(
        "the 401 to show",
        lambda: refused.text_content("#error") or "",
        lambda text: "401" in text and "token" in text,
        15,
    )
    publish_token = mint("live/t", "publish")
    publisher = browsing.open(f"{base}/publish.html?stream=live/t&token={publish_token}", "pub")
    assert "token" not in publisher.url
    publisher.click("#start")
    browsing.wait_for(
        "the publisher to connect",
        lambda: browsing.stats(publisher),
        lambda s: s["state"] == "connected" and s["framesEncoded"] > 0,
        FIRST_MEDIA_S,
    )
    wrong = browsing.open(f"{base}/play.html?stream=live/t&token={publish_token}", "wrong-role")
    browsing.wait_for(
        "a publish token to be refused for playing",
        lambda: wrong.text_content("#status") or "",
        lambda text: "refused" in text and "401" in text,
        15,
    )
    play_token = mint("live/t", "play")
    player = browsing.open(f"{base}/play.html?stream=live/t&token={play_token}", "player")
    assert "token" not in player.url
    browsing.wait_for(
        "the player to decode",
        lambda: browsing.stats(player),
        lambda s: s["framesDecoded"] > 0 and s["publisher"] == "live",
        FIRST_MEDIA_S,
    )
    browsing.screenshot(player, "play-with-token")
    publisher.click("#stop")  # its DELETE carries the token too, or the session would stay
    browsing.wait_for(
        "the player to hear the publisher left",
        lambda: browsing.stats(player)["publisher"],
        lambda state: state == "waiting for the publisher",
        15,
    )
    log = sfu_server.log()
    assert re.search(r"DELETE /sessions/\S+ 200 ", log)
    assert not re.search(r"DELETE /sessions/\S+ 401 ", log)
    for token in (publish_token, play_token):
        assert token not in log


def test_room_with_minted_tokens(browsing: Browsing, sfu_server: Any) -> None:
    base = sfu_server.http_url
    names = ("alice", "bob")
    pages = {}
    for name in names:
        # One room token publishes the participant's stream and joins its subscribe session.
        tokens = f"token={mint(f'r1/{name}', 'publish', 'subscribe')}"
        pages[name] = browsing.open(f"{base}/room.html?room=r1&name={name}&{tokens}", name)
        assert "token" not in pages[name].url
    for name, page in pages.items():
        browsing.wait_for(
            f"{name} to decode the other",
            lambda page=page: browsing.stats(page)["tiles"],
            lambda tiles: len(tiles) == 1 and tiles[0]["framesDecoded"] > 0,
            FIRST_MEDIA_S,
        )
        assert page.text_content("#error") == ""
    browsing.screenshot(pages["alice"], "room-with-tokens")
