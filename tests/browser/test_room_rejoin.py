"""room.html after its server is killed and started again on the same ports, in Chromium:
the event stream's 404 (the room session is gone) makes each page join again by itself,
saying "reconnecting…" on the page and on the tiles meanwhile; both come back with everyone,
without reloading.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

# The server this test kills and starts again: test_reconnect's fixture, on pinned ports.
from .test_reconnect import (
    DOWN_ERRORS,
    RECONNECTING,
    RECOVERY_S,
    Restartable,
    sfu_server,  # noqa: F401  (a fixture)
    status_of,
)
from .test_room_page import FIRST_MEDIA_S, TILES, wait_until_everyone_receives

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(180)


def test_the_room_page_rejoins_after_the_server_restarts(
    browsing: Browsing,
    sfu_server: Restartable,  # noqa: F811
) -> None:
    browsing.expected_console_errors = DOWN_ERRORS
    base = sfu_server.http_url
    names = ["ann", "bob"]
    pages = {n: browsing.open(f"{base}/room.html?room=phoenix&name={n}", n) for n in names}
    wait_until_everyone_receives(browsing, pages, FIRST_MEDIA_S)
    for page in pages.values():
        page.evaluate("() => { window.sameDocument = true; }")
    pages["ann"].click("#mute")  # the new server must hear of it again from the rejoin

    sfu_server.kill()
    for name, page in pages.items():
        browsing.wait_for(
            f"{name}'s page and tiles to say they are reconnecting",
            lambda page=page: (status_of(browsing, page), page.evaluate(TILES)),
            lambda seen: (
                seen[0].endswith(RECONNECTING)
                and bool(seen[1])
                and all(t["state"] == "reconnecting" for t in seen[1])
            ),
            20,
        )
    sfu_server.start_again()
    up = time.monotonic()
    for name, page in pages.items():
        browsing.wait_for(
            f"{name}'s page to join again",
            lambda page=page: browsing.stats(page),
            lambda s: s["joined"] and s["rejoins"] >= 1,
            RECOVERY_S,
        )
    # The new subscribe connections' stats start at zero: this is media from the new server.
    wait_until_everyone_receives(browsing, pages, RECOVERY_S)
    took = time.monotonic() - up
    print(f"both pages receive each other again {took:.1f} s after the restart")
    assert took < 2 * RECOVERY_S
    for name, page in pages.items():
        assert page.evaluate("() => window.sameDocument") is True  # never reloaded
        assert page.text_content("#status") == f"In room phoenix as {name}."
    browsing.wait_for(
        "ann's tile on bob's page to show her muted on the new server",
        lambda: pages["bob"].evaluate(TILES),
        lambda tiles: "mic off" in tiles[0]["badges"],
        10,
    )
    browsing.screenshot(pages["ann"], "room-after-restart")
