"""Server-sent events: WHEP's active/inactive/viewercount/layers and the room's stream list."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest

from bench.client import Publisher, Target
from bench.launcher import start_server, stop_server
from bench.worker import connect, keep_alive
from sfu.protocol.certificate import Certificate
from signaling.observe.event_hub import PER_CLIENT_STREAMS, PER_CLIENT_SUBSCRIPTIONS
from signaling.observe.events import LINK_REL
from signaling.security.auth import Authenticator
from tests.integration.observed import observed
from tests.integration.peers import close_all, new_peer_connection, play, publish
from tests.integration.test_metrics import scrape, value

SDP = {"Content-Type": "application/sdp"}


async def next_event(response: aiohttp.ClientResponse, timeout: float = 10) -> tuple[str, dict]:
    """The next `event:`/`data:` pair of an event stream, skipping heartbeat comments."""
    name = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = await asyncio.wait_for(response.content.readline(), deadline - time.monotonic())
        text = line.decode().rstrip("\n")
        if text.startswith("event: "):
            name = text[len("event: ") :]
        elif text.startswith("data: ") and name is not None:
            return name, json.loads(text[len("data: ") :])
        elif not line:
            raise AssertionError("the event stream ended")
    raise AssertionError("no event in time")


async def whep_link(http: aiohttp.ClientSession, base: str, stream: str) -> str:
    """POST a player's offer (the session need not connect) and return the 201's Link."""
    pc = new_peer_connection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    await pc.close()
    async with http.post(f"{base}/whep/{stream}", data=offer, headers=SDP) as response:
        assert response.status == 201, await response.text()
        return response.headers["Link"]


async def events_url(http: aiohttp.ClientSession, base: str, link: str, wanted: list) -> str:
    target = link.split(">")[0].lstrip("<")
    async with http.post(base + target, json=wanted) as response:
        assert response.status == 201, await response.text()
        return base + response.headers["Location"]


async def test_whep_events_follow_the_publisher() -> None:
    async with observed() as (http, base):
        link = await whep_link(http, base, "live/e")
        assert f'rel="{LINK_REL}"' in link
        assert 'events="active,inactive,viewercount,layers,reconnect"' in link
        url = await events_url(http, base, link, ["active", "inactive", "viewercount"])
        async with http.get(url) as events:
            assert events.content_type == "text/event-stream"
            assert events.headers["Access-Control-Allow-Origin"] == "*"  # sent before the body
            assert await next_event(events) == ("inactive", {})
            assert await next_event(events) == ("viewercount", {"viewercount": 1})
            publisher = await publish(http, base, "live/e")
            player = await play(http, base, "live/e")
            try:
                seen = [await next_event(events, 20) for _ in range(2)]
                assert sorted(seen) == [("active", {}), ("viewercount", {"viewercount": 2})]
                async with http.delete(publisher.location) as response:
                    assert response.status == 200
                assert await next_event(events) == ("inactive", {})
            finally:
                await close_all(player, publisher)
        # The capability URL is only for what was asked: viewercount alone gives no active.
        url = await events_url(http, base, link, ["viewercount"])
        async with http.get(url) as events:
            name, _ = await next_event(events)
            assert name == "viewercount"


@pytest.mark.timeout(60)
async def test_whep_layers_event_names_the_simulcast_layers(sfu_server) -> None:
    base, stream = sfu_server.http_url, "live/layers"
    async with aiohttp.ClientSession() as http:
        link = await whep_link(http, base, stream)
        url = await events_url(http, base, link, ["layers"])
        async with http.get(url) as events:
            target = Target(base, "whip", stream)
            publisher = Publisher(0, target, Certificate.generate(), simulcast=True)
            keeper = asyncio.get_running_loop().create_task(keep_alive([publisher]))
            try:
                await connect(http, publisher, asyncio.Semaphore(1), 10)
                assert publisher.error is None, publisher.error
                # Layers are news when they appear and when they start sending: the last
                # of those events has all three active, each with its bitrate.
                deadline = time.monotonic() + 20
                layers: list[dict] = []
                while not (layers and all(layer["active"] for layer in layers)):
                    name, data = await next_event(events, deadline - time.monotonic())
                    assert name == "layers", name  # nothing that was not asked for
                    (layers,) = data.values()  # one simulcast m-line
                    assert sorted(layer["rid"] for layer in layers) == ["f", "h", "q"]
                assert all(layer["bitrate"] > 0 for layer in layers)
            finally:
                keeper.cancel()
                async with http.delete(publisher.resource) as response:
                    assert response.status == 200
                publisher.close()


async def test_bad_event_subscriptions() -> None:
    async with observed() as (http, base):
        for body, status in (
            (b'["active", "bogus"]', 400),
            (b"not json", 400),
            (b'{"active": true}', 400),
            (b"[1, 2]", 400),
            (b'["active"' + b', "active"' * 400 + b"]", 413),
        ):
            async with http.post(f"{base}/events/whep/live/x", data=body) as response:
                assert response.status == status, body
                reason = await response.text()
                assert reason.count("\n") == 1 and "Traceback" not in reason
        async with http.get(f"{base}/events/streams/nothing-here") as response:
            assert response.status == 404
        async with http.get(f"{base}/api/v1/events") as response:
            assert response.status == 400
        async with http.get(f"{base}/api/v1/events?room=a/b") as response:
            assert response.status == 400
        scraped = await scrape(http, base)
        assert value(scraped, "litesfu_event_requests_refused_total", reason="bad_request") == 7


async def events_until(
    response: aiohttp.ClientResponse, last: tuple[str, dict], timeout: float = 20
) -> list[tuple[str, dict]]:
    """Events up to and including `last`, which must come within `timeout` seconds."""
    seen: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout
    while last not in seen:
        seen.append(await next_event(response, deadline - time.monotonic()))
    return seen


async def test_a_server_with_an_open_event_stream_stops_at_once(tmp_path) -> None:
    """SIGTERM ends the open streams instead of waiting out their 15 s heartbeat."""
    server = start_server(tmp_path, "--udp-port", "0")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.http_url}/api/v1/events?room=r1") as events:
                assert events.status == 200
                await asyncio.sleep(0.2)  # the stream is being served
                began = time.monotonic()
                server.process.terminate()
                assert await asyncio.wait_for(events.content.read(), 8) == b""  # it ended
            exit_code = await asyncio.to_thread(server.process.wait, 8)
            stopped_in = time.monotonic() - began
    finally:
        stop_server(server)
    assert exit_code == 0 and stopped_in < 8, (exit_code, stopped_in)


async def test_room_events_name_streams_of_that_room_only() -> None:
    async with observed() as (http, base), http.get(f"{base}/api/v1/events?room=r1") as events:
        assert events.status == 200
        other = await publish(http, base, "r2/x")
        publisher = await publish(http, base, "r1/alice")
        player = await play(http, base, "r1/alice")
        try:
            seen = await events_until(events, ("players", {"stream": "r1/alice", "players": 1}))
            assert ("published", {"stream": "r1/alice"}) in seen
        finally:
            await close_all(player, publisher, other)
        seen += await events_until(events, ("unpublished", {"stream": "r1/alice"}))
        assert all(data["stream"] == "r1/alice" for _, data in seen), seen


async def test_event_streams_are_capped_and_freed() -> None:
    async with observed(max_event_streams=1) as (http, base):
        first = await http.get(f"{base}/api/v1/events?room=r1")
        assert first.status == 200
        async with http.get(f"{base}/api/v1/events?room=r1") as response:
            assert response.status == 503
            assert int(response.headers["Retry-After"]) > 0
        first.close()  # the client goes away; the server must notice and free its place
        deadline = time.monotonic() + 10
        status = 503
        while status == 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            async with http.get(f"{base}/api/v1/events?room=r1") as response:
                status = response.status
        assert status == 200
        scraped = await scrape(http, base)
        assert value(scraped, "litesfu_event_requests_refused_total", reason="cap") >= 1


async def test_room_events_need_the_stats_token() -> None:
    auth = Authenticator(["op-secret"], protect_stats=True)
    async with observed(auth) as (http, base):
        async with http.get(f"{base}/api/v1/events?room=r1") as response:
            assert response.status == 401
        headers = {"Authorization": "Bearer op-secret"}
        async with http.get(f"{base}/api/v1/events?room=r1", headers=headers) as response:
            assert response.status == 200
        async with http.post(f"{base}/events/whep/r1/a", json=["active"]) as response:
            assert response.status == 401
        async with http.post(
            f"{base}/events/whep/r1/a", json=["active"], headers=headers
        ) as response:
            # The token passed; the stream does not exist, so there is nothing to follow.
            assert response.status == 404
            assert "no stream r1/a" in await response.text()


async def test_idle_streams_get_heartbeats(monkeypatch) -> None:
    monkeypatch.setattr("signaling.observe.event_hub.HEARTBEAT", 0.2)
    async with observed() as (http, base), http.get(f"{base}/api/v1/events?room=quiet") as events:
        assert events.status == 200
        lines = [await asyncio.wait_for(events.content.readline(), 5) for _ in range(4)]
    assert lines.count(b": heartbeat\n") == 2, lines


async def test_events_through_the_workers_front(tmp_path) -> None:
    """The front derives events from its workers' load reports: same URLs, same events."""
    server = start_server(tmp_path, "--workers", "2", "--udp-port", "0")
    base = server.http_url
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/api/v1/events?room=r1") as room,
        ):
            assert room.status == 200
            publisher = await publish(http, base, "r1/a")
            player = await play(http, base, "r1/a")
            try:
                await events_until(room, ("published", {"stream": "r1/a"}))
                await events_until(room, ("players", {"stream": "r1/a", "players": 1}))
                link = await whep_link(http, base, "r1/a")
                url = await events_url(http, base, link, ["active", "viewercount"])
                async with http.get(url) as events:
                    assert await next_event(events) == ("active", {})
            finally:
                await close_all(player, publisher)
            await events_until(room, ("unpublished", {"stream": "r1/a"}))
    finally:
        stop_server(server)
    assert "Traceback" not in server.log()


def from_second_address() -> aiohttp.ClientSession:
    """A client whose requests come from 127.0.0.2."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))


async def test_one_address_cannot_take_the_event_streams_of_another(caplog) -> None:
    """127.0.0.1 takes all it may (room streams, subscriptions, a flood for streams that do
    not exist); 127.0.0.2 still gets its stream and its subscription, and the refusals are a
    few log lines, not one per request."""
    caplog.set_level(logging.INFO)
    async with observed(max_event_streams=40) as (http, base), from_second_address() as other:
        held, statuses = [], []
        for _ in range(PER_CLIENT_STREAMS + 4):
            response = await http.get(f"{base}/api/v1/events?room=r{len(statuses)}")
            statuses.append(response.status)
            if response.status == 200:
                held.append(response)
            else:
                assert int(response.headers["Retry-After"]) >= 1
                assert "the limit" in await response.text()
                response.close()
        assert statuses.count(200) == PER_CLIENT_STREAMS and statuses.count(429) == 4, statuses
        link = await whep_link(http, base, "live/target")  # a player: the stream exists
        target = link.split(">")[0].lstrip("<")
        subscribed = []
        for _ in range(PER_CLIENT_SUBSCRIPTIONS + 3):
            async with http.post(base + target, json=["active"]) as response:
                subscribed.append(response.status)
        assert subscribed.count(201) == PER_CLIENT_SUBSCRIPTIONS, subscribed
        assert subscribed.count(429) == 3, subscribed
        for i in range(50):  # names that exist nowhere: refused before anything is held
            async with http.post(f"{base}/events/whep/live/none{i}", json=["active"]) as r:
                assert r.status == 404
        async with other.get(f"{base}/api/v1/events?room=r1") as events:
            assert events.status == 200
        async with other.post(base + target, json=["active", "inactive"]) as response:
            assert response.status == 201
            url = base + response.headers["Location"]
        async with other.get(url) as events:
            assert await next_event(events) == ("inactive", {})  # no publisher yet
        scraped = await scrape(http, base)
        for response in held:
            response.close()
    assert value(scraped, "litesfu_event_requests_refused_total", reason="client_cap") == 7
    assert value(scraped, "litesfu_event_requests_refused_total", reason="not_found") == 50
    refusal_lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert 1 <= len(refusal_lines) <= 2, [r.getMessage() for r in refusal_lines]
    access = [r.getMessage() for r in caplog.records if r.name == "litesfu.access"]
    assert not [line for line in access if " 404 " in line or " 429 " in line], access
    assert not [line for line in access if url.rsplit("/", 1)[1] in line]  # keys: hashes only


async def test_a_closed_event_stream_frees_its_place_within_a_second() -> None:
    async with observed(max_event_streams=1) as (http, base):
        first = await http.get(f"{base}/api/v1/events?room=r1")
        assert first.status == 200
        first.close()
        closed = time.monotonic()
        deadline = closed + 10
        status = 503
        while status == 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            async with http.get(f"{base}/api/v1/events?room=r1") as response:
                status = response.status
        freed_in = time.monotonic() - closed
    assert status == 200
    print(f"an event stream's place was free {freed_in:.2f} s after its client closed it")


async def test_an_event_stream_without_events_ends(monkeypatch) -> None:
    monkeypatch.setattr("signaling.observe.event_hub.HEARTBEAT", 0.2)
    monkeypatch.setattr("signaling.observe.event_hub.IDLE_LIMIT", 0.7)
    async with observed() as (http, base):
        async with http.get(f"{base}/api/v1/events?room=quiet") as events:
            body = await asyncio.wait_for(events.content.read(), 10)  # it ends by itself
        assert body.count(b": heartbeat\n\n") >= 2  # heartbeats did not keep it alive
        scraped = await scrape(http, base)
    assert value(scraped, "litesfu_event_streams_idle_ended_total") == 1


async def test_a_stopping_server_tells_players_to_reconnect(tmp_path) -> None:
    """SIGTERM: a player that asked for `reconnect` hears where to go before its stream ends."""
    server = start_server(tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            base = server.http_url
            link = await whep_link(http, base, "live/leaving")
            url = await events_url(http, base, link, ["reconnect", "viewercount"])
            async with http.get(url) as events:
                assert await next_event(events) == ("viewercount", {"viewercount": 1})
                server.process.terminate()
                assert await next_event(events) == ("reconnect", {"url": "/whep/live/leaving"})
                assert (await events.content.read()).strip() == b""  # then the stream ends
    finally:
        stop_server(server)
    assert "told 1 event stream(s) to reconnect" in server.log()
