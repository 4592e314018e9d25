"""`GET /metrics` as Prometheus scrapes it, parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bench.launcher import start_server, stop_server
from signaling.security.auth import Authenticator
from tests.integration.observed import observed
from tests.integration.peers import close_all, play, publish


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample as {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def total(scraped: dict, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include `labels`."""
    return sum(
        v for (n, have), v in scraped.items() if n == name and set(labels.items()) <= set(have)
    )


async def scrape(http: aiohttp.ClientSession, url: str, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url + "/metrics", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "text/plain"
        return samples(await response.text())


async def scrape_while_playing(http: aiohttp.ClientSession, base: str, stream: str) -> dict:
    """Publish and play `stream`, scrape once video reaches the player, then end both."""
    publisher = await publish(http, base, stream)
    player = await play(http, base, stream)
    try:
        assert await player.wait_for("video", 10, timeout=30)
        return await scrape(http, base)
    finally:
        await close_all(player, publisher)


async def test_metrics_move_while_a_stream_plays(tmp_path) -> None:
    server = start_server(tmp_path, "--metrics-per-stream", "3")
    try:
        async with aiohttp.ClientSession() as http:
            idle = await scrape(http, server.http_url)
            assert value(idle, "litesfu_streams") == 0
            assert value(idle, "process_resident_memory_bytes") > 0
            publisher = await publish(http, server.http_url, "live/m")
            player = await play(http, server.http_url, "live/m")
            try:
                assert await player.wait_for("video", 20, timeout=20)
                first = await scrape(http, server.http_url)
                await asyncio.sleep(1.5)
                second = await scrape(http, server.http_url)
            finally:
                await close_all(player, publisher)
        for name in ("litesfu_media_packets_in_total", "litesfu_media_bytes_out_total"):
            assert value(second, name) > value(first, name) > 0, name
        assert value(second, "litesfu_udp_datagrams_in_total") > 0
        assert value(second, "litesfu_sessions", role="publish", state="connected") == 1
        assert value(second, "litesfu_sessions", role="play", state="connected") == 1
        assert value(second, "litesfu_players") == 1
        assert value(second, "litesfu_streams_live") == 1
        assert value(second, "litesfu_stream_players", stream="live/m") == 1
        assert value(second, "litesfu_stream_bitrate_in", stream="live/m") > 0
        # Both player tracks have started: the loss histogram holds one value for each.
        assert value(second, "litesfu_player_loss_ratio_gcount") == 2
        assert value(second, "litesfu_player_loss_ratio_bucket", le="+Inf") == 2
        assert value(second, "process_cpu_seconds_total") > 0
        assert ("litesfu_event_loop_lag_seconds", ()) in second
        for (name, labels), _ in second.items():
            assert all(key != "session" for key, _ in labels), name
    finally:
        stop_server(server)
    assert "Traceback" not in server.log()


async def test_counters_keep_what_ended_sessions_reached(sfu_server) -> None:
    """Counters never go backwards when the stream they came from ends."""
    async with aiohttp.ClientSession() as http:
        during = await scrape_while_playing(http, sfu_server.http_url, "live/gone")
        deadline = time.monotonic() + 15
        after = during
        while time.monotonic() < deadline:
            after = await scrape(http, sfu_server.http_url)
            if value(after, "litesfu_streams") == 0:
                break
            await asyncio.sleep(0.3)
    assert value(after, "litesfu_streams") == 0
    for name in ("litesfu_media_packets_in_total", "litesfu_media_packets_out_total"):
        assert value(after, name) >= value(during, name) > 0, name


async def test_metrics_behind_the_stats_token(caplog) -> None:
    async with observed(Authenticator(["op-secret"], protect_stats=True)) as (http, base):
        async with http.get(base + "/metrics") as response:
            assert response.status == 401
            assert "token" in await response.text()
        async with http.get(base + "/metrics", headers={"Authorization": "Bearer x"}) as response:
            assert response.status == 401
        scraped = await scrape(http, base, "op-secret")
        assert value(scraped, "litesfu_streams") == 0
    assert "op-secret" not in caplog.text


async def test_front_labels_each_worker_and_counts_once(tmp_path) -> None:
    server = start_server(tmp_path, "--workers", "2", "--udp-port", "0")
    try:
        async with aiohttp.ClientSession() as http:
            scraped = await scrape_while_playing(http, server.http_url, "live/w")
    finally:
        stop_server(server)
    workers = {
        dict(labels).get("worker")
        for (name, labels) in scraped
        if name == "process_cpu_seconds_total"
    }
    assert workers == {"front", "0", "1"}
    assert total(scraped, "litesfu_players") == 1
    assert total(scraped, "litesfu_sessions", role="publish") == 1
    assert total(scraped, "litesfu_sessions", role="play") == 1
    assert "Traceback" not in server.log()
