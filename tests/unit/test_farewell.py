"""A server that stops or drains tells its event streams where to reconnect, then ends them.

The hub's listeners here are the real WHEP and room-session ones, fed by a fixed sample; the
`reconnect` frame goes only to a WHEP client that asked for it, every room session gets one,
and each stream is marked to end once its frames are written. A node's pages may connect to
the other nodes, and only clean origins from the registry reach that header.
"""

from __future__ import annotations

import json
import time

from signaling.observe.event_hub import EventHub
from signaling.observe.events import StreamState, Subscription, parse_wanted, whep_listener
from signaling.observe.room_events import room_listener
from signaling.serving.page_headers import CONTENT_SECURITY_POLICY, origin, with_connect_origins


def sample() -> dict[str, StreamState]:
    return {"live/cam": StreamState(live=True, players=1)}


def queued(listener) -> list[bytes]:
    items = []
    while not listener.queue.empty():
        items.append(listener.queue.get_nowait())
    return items


def whep(events: list[str]):
    wanted = parse_wanted(json.dumps(events).encode())
    subscription = Subscription("live/cam", wanted, "127.0.0.1", time.monotonic() + 60)
    listener, _first = whep_listener(sample, subscription)
    return listener


async def test_players_that_asked_hear_where_to_reconnect() -> None:
    hub = EventHub(sample, 10, lambda _stream: True)
    asked, not_asked = whep(["reconnect", "active"]), whep(["active"])
    room, _ = room_listener(lambda: None)
    hub.listeners.update({asked, not_asked, room})
    told = await hub.say_goodbye("http://node-b:8080/", within=0)
    assert told == 2 and hub.told_to_reconnect == 2
    assert queued(asked) == [
        b'event: reconnect\ndata: {"url": "http://node-b:8080/whep/live/cam"}\n\n'
    ]
    assert queued(not_asked) == []
    assert queued(room) == [b'event: reconnect\ndata: {"url": "http://node-b:8080/"}\n\n']
    assert all(listener.ending for listener in (asked, not_asked, room))


async def test_a_lone_server_sends_its_players_back_to_itself() -> None:
    hub = EventHub(sample, 10, lambda _stream: True)
    listener = whep(["reconnect"])
    hub.listeners.add(listener)
    assert await hub.say_goodbye(None, within=0) == 1
    assert queued(listener) == [b'event: reconnect\ndata: {"url": "/whep/live/cam"}\n\n']


def test_pages_may_connect_to_the_other_nodes_origins_only() -> None:
    assert origin("http://10.0.0.2:8081/x?y") == "http://10.0.0.2:8081"
    assert origin("https://[2001:db8::1]:443/") == "https://[2001:db8::1]:443"
    for bad in ("javascript:alert(1)", "http://a b", "http://x;y", "http://e.com; script-src *"):
        assert origin(bad) is None, bad
    policy = with_connect_origins(["http://b:8081/", "http://x; script-src *", "http://b:8081"])
    assert policy == f"{CONTENT_SECURITY_POLICY}; connect-src 'self' http://b:8081"
    assert with_connect_origins([]) == CONTENT_SECURITY_POLICY
