"""What rooms show of themselves: the router's room stats (each subscriber's estimate,
allocation and paused videos, from a room in memory whose low REMB paused every video), the
/metrics families read from them, GET /api/v1/rooms (paged, behind the stats token, rate
limited, refusals by action) and the front's check of a worker's answer."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import pytest

from sfu.config import MediaConfig
from sfu.io.server import MediaServer
from sfu.routing.room_stats import RoomStats, SubscriberStats
from signaling.observe.room_metrics import RoomCollector
from signaling.security.auth import Authenticator
from signaling.workers.messages import MessageError
from signaling.workers.stats_answers import rooms_answer
from tests.harness import Harness
from tests.integration.observed import serving
from tests.unit.test_room_resume import LOW_REMB, remb_only_room, run_with_remb

SDP = {"Content-Type": "application/sdp"}


def test_room_stats_show_each_subscribers_estimate_allocation_and_paused_videos() -> None:
    h = Harness()
    a, _ = remb_only_room(h)
    run_with_remb(h, a.subscriber, 4.0, LOW_REMB)  # both audios fit, no video does
    [room] = h.router.room_stats()
    assert (room.name, room.participants, room.publishing) == ("r", 3, 2)  # a only subscribes
    by_name = {s.participant: s for s in room.subscribers}
    assert sorted(by_name) == ["a", "b", "c"]
    mine = by_name["a"]
    view = a.view(h)
    assert (mine.estimate, mine.paused, mine.allocated) == (LOW_REMB, 2, view.allocated)
    assert mine.state == "connected" and mine.slots == 4 and mine.fed == 4
    assert 0 < mine.allocated <= LOW_REMB and mine.packets > 0
    assert by_name["b"].paused == 0 and by_name["b"].fed == 2  # c's audio and video
    text = json.dumps(room.to_json())
    for peer in h.peers:
        assert peer.session.id not in text and peer.address[0] not in text
    assert h.router.room_stats(offset=1) == []

    collected = {
        m.name: m for m in RoomCollector(SimpleNamespace(router=h.router), Counter()).collect()
    }
    assert collected["litesfu_rooms"].samples[0].value == 1
    assert collected["litesfu_room_subscribers"].samples[0].value == 3
    assert collected["litesfu_room_paused_videos"].samples[0].value == 2
    paused = {
        s.labels.get("le"): s.value
        for s in collected["litesfu_room_subscriber_paused_videos"].samples
    }
    assert paused["0"] == 2 and paused["2"] == 3  # two subscribers with none, one with two
    estimates = {
        s.labels.get("le"): s.value
        for s in collected["litesfu_room_subscriber_estimate_bps"].samples
        if s.name.endswith("_bucket")
    }
    assert estimates["300000.0"] >= 1  # a's 200 kbit/s REMB


def stats(name: str, subscribers: int = 1) -> RoomStats:
    subscriber = SubscriberStats(1, "ann", "connected", 2, 2, 1, 5e5, 3e5, 10, 1000, 0, 0, 1, 0)
    return RoomStats(name, subscribers, subscribers, (), (subscriber,) * subscribers)


@pytest.fixture
async def served() -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """The app on 127.0.0.1 with a router whose rooms are r0..r2, and stats behind a token."""
    media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0))
    rooms = [stats(f"r{i}") for i in range(3)]
    media.router.room_stats = lambda offset=0, limit=None: rooms[offset : offset + (limit or 9)]  # type: ignore[method-assign]
    media.router.room_names = lambda: frozenset(r.name for r in rooms)  # type: ignore[method-assign]
    auth = Authenticator(["static"], protect_stats=True)
    async with serving(10, media, auth=auth) as client:
        yield client


async def test_the_rooms_route_pages_counts_refusals_and_is_guarded(served) -> None:
    http, base = served
    token = {"Authorization": "Bearer static"}
    async with http.get(base + "/api/v1/rooms") as response:
        assert response.status == 401
    join = base + "/rooms/v1/r0/participants/ann"
    async with http.post(join, data="v=0", headers={**SDP, **token}) as response:
        assert response.status == 422  # an offer of no media
    async with http.post(join, data="v=0", headers=SDP) as response:
        assert response.status == 401  # no token
    async with http.get(base + "/api/v1/rooms?limit=2", headers=token) as response:
        assert response.status == 200
        body = await response.json()
    assert [r["name"] for r in body["rooms"]] == ["r0", "r1"]
    assert body["total"] == 3 and body["next"] == "/api/v1/rooms?offset=2&limit=2"
    assert body["rooms"][0]["subscribers"][0] == {
        "participant": "ann",
        "state": "connected",
        "slots": 2,
        "fed": 2,
        "paused": 1,
        "estimate": 500000,
        "allocated": 300000,
        "packets": 10,
        "bytes": 1000,
        "probes": 0,
        "failed_probes": 0,
        "trials": 1,
        "failed_trials": 0,
    }
    assert body["refused"] == {"join 422": 1, "join 401": 1}
    async with http.get(base + "/api/v1/rooms?limit=0", headers=token) as response:
        assert response.status == 400
    async with http.get(base + "/metrics", headers=token) as response:
        text = await response.text()
    assert 'litesfu_room_requests_refused_total{action="join",status="422"} 1.0' in text
    assert "litesfu_rooms 3.0" in text
    statuses = []
    for _ in range(12):  # past the burst of 10 stats answers (a few were asked above)
        async with http.get(base + "/api/v1/rooms", headers=token) as response:
            statuses.append(response.status)
    assert statuses[-1] == 429


@pytest.mark.parametrize(
    "answer",
    [
        {"rooms": [{"name": 7}], "refused": {}},
        {"rooms": [{}], "refused": {}},
        {"rooms": "r", "refused": {}},
        {"rooms": [], "refused": {"join 400": -1}},
        {"rooms": [], "refused": []},
        {"rooms": []},
    ],
)
def test_the_front_refuses_a_malformed_rooms_answer(answer: dict) -> None:
    with pytest.raises(MessageError):
        rooms_answer(json.dumps(answer).encode())


def test_the_front_passes_a_rooms_answer_on() -> None:
    answer = {"rooms": [stats("r").to_json()], "refused": {"join 403": 2}}
    rooms, refused = rooms_answer(json.dumps(answer).encode())
    assert rooms == answer["rooms"] and refused == {"join 403": 2}
