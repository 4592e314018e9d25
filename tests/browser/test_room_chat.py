"""room.html's chat panel in Chromium: one "chat" data channel on each participant's
subscribe connection, relayed by the server as room data; each side's message reaches the
other with the server-written sender name, and markup in a message shows as text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import shared_server

from .test_room_page import FIRST_MEDIA_S, NETWORK_CHANGED, PATIENT_SERVER

if TYPE_CHECKING:
    from .conftest import Browsing

pytestmark = pytest.mark.timeout(120)
sfu_server = shared_server(*PATIENT_SERVER)

LINES = """() => [...document.querySelectorAll("#chat-log li")].map((li) => ({
  from: li.dataset.from,
  text: li.textContent,
  elements: li.querySelectorAll("*").length,
}))"""


def chat_lines(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(LINES)


def send(page: Any, text: str) -> None:
    page.fill("#chat-input", text)
    page.click('#chat-form button[type="submit"]')


def test_two_participants_chat_each_way(browsing: Browsing, sfu_server: Any) -> None:
    browsing.expected_console_errors.append(NETWORK_CHANGED)
    base = sfu_server.http_url
    ann = browsing.open(f"{base}/room.html?room=talk&name=ann", "ann")
    bob = browsing.open(f"{base}/room.html?room=talk&name=bob", "bob")
    # Both channels open (the input is enabled then): a message now has someone to go to.
    # The room keeps no history, so one sent before the other's channel is up reaches no one.
    for name, page in (("ann", ann), ("bob", bob)):
        browsing.wait_for(
            f"{name}'s chat channel to open",
            lambda page=page: (page.is_enabled("#chat-input"), len(browsing.stats(page)["tiles"])),
            lambda seen: seen == (True, 1),
            FIRST_MEDIA_S,
        )
    pages = {"ann": ann, "bob": bob}
    for sender, receiver, text in (("ann", "bob", "hello <b>bob</b>"), ("bob", "ann", "hi ann")):
        send(pages[sender], text)
        line = {"from": sender, "text": f"{sender}: {text}", "elements": 1}  # <b> of the name
        browsing.wait_for(
            f"{sender}'s message on {receiver}'s page",
            lambda receiver=receiver: chat_lines(pages[receiver]),
            lambda lines, line=line: line in lines,
            15,
        )
    # Each sees its own line once, and nobody got the other's message back as their own.
    assert [line["text"] for line in chat_lines(ann)].count("you: hello <b>bob</b>") == 1
    assert not any(line["from"] == "bob" for line in chat_lines(bob))
    for page in (ann, bob):
        assert browsing.stats(page)["chatDropped"] == 0
    browsing.screenshot(ann, "room-chat")
