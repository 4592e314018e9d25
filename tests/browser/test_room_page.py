"""room.html on the room API in headless Chromium: three participants, each one WHIP publish and
ONE subscribe connection, and the tiles' contract (data-participant, data-speaking, data-paused).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import shared_server

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(120)

FIRST_MEDIA_S = 30  # ICE + DTLS on two connections, a re-offer, the first keyframes
sfu_server = shared_server()

TILES = """() => [...document.querySelectorAll(".tile[data-participant]")].map((t) => ({
  participant: t.dataset.participant,
  speaking: t.dataset.speaking,
  paused: t.dataset.paused,
  label: t.querySelector(".name").textContent,
}))"""


def test_three_participants_on_one_subscribe_connection_each(
    browsing: Browsing, sfu_server: Any
) -> None:
    base = sfu_server.http_url
    names = ["ann", "bob", "cy"]
    pages = {n: browsing.open(f"{base}/room.html?room=api1&name={n}", n) for n in names}
    for name, page in pages.items():
        others = sorted(set(names) - {name})
        browsing.wait_for(
            f"{name} to decode {others}",
            lambda page=page: browsing.stats(page),
            lambda s, others=others: (
                sorted(t["name"] for t in s["tiles"]) == others
                and all(t["framesDecoded"] > 0 and t["videoWidth"] > 0 for t in s["tiles"])
                and all(t["audioPackets"] > 0 for t in s["tiles"])
            ),
            FIRST_MEDIA_S,
        )
        stats = browsing.stats(page)
        # One slot per kind was offered; the server asked for two of each, and got them.
        assert stats["subscriber"]["state"] == "connected"
        assert stats["subscriber"]["mlines"] == 4
        tiles = page.evaluate(TILES)
        assert sorted(t["participant"] for t in tiles) == others
        for tile in tiles:
            assert tile["label"] == tile["participant"]
            assert tile["speaking"] in ("true", "false") and tile["paused"] == "false"
    browsing.screenshot(pages["ann"], "room-api-three")

    pages["bob"].click("#leave")
    for name in ("ann", "cy"):
        browsing.wait_for(
            f"bob's tile to leave {name}'s page",
            lambda name=name: [t["participant"] for t in pages[name].evaluate(TILES)],
            lambda tiles, name=name: tiles == sorted({"ann", "cy"} - {name}),
            15,
        )
    log = sfu_server.log()
    assert "DELETE /rooms/v1/sessions/" in log and "DELETE /sessions/" in log
