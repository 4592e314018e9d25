"""Simulcast against the real server: the load client publishes 3 layers, players pick them
over WHEP's layer extension (?layer= and POSTs to the Link), bad requests get one-line 400s."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest

from bench.client import Player, Publisher, Target
from bench.launcher import ServerProcess
from bench.sdp import build_offer
from bench.worker import connect, keep_alive
from sfu.protocol.certificate import Certificate
from signaling.sdp.layer_request import LINK_REL

STREAM = "live/sc"
SDP = {"Content-Type": "application/sdp"}


async def streams(http: aiohttp.ClientSession, base: str) -> dict:
    async with http.get(f"{base}/api/v1/streams") as response:
        return {s["name"]: s for s in (await response.json())["streams"]}


async def until(check, what: str, timeout: float = 10.0):
    """Poll an async check until it returns something truthy, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s")


def player_layers(stream: dict) -> list[str]:
    return sorted(
        t["layer"] for p in stream["player_sessions"] for t in p["tracks"] if "layer" in t
    )


def layer_url(link: str) -> str:
    return next(part.split(">")[0].strip(" <") for part in link.split(",") if LINK_REL in part)


@pytest.mark.timeout(60)
async def test_players_pin_layers_over_whep(sfu_server: ServerProcess) -> None:
    base = sfu_server.http_url
    certificate = Certificate.generate()
    publisher = Publisher(0, Target(base, "whip", STREAM), certificate, simulcast=True)
    player = Player(
        1,
        Target(base, "whip", STREAM + "?layer=q"),
        certificate,
        publisher_index=0,
        sample_every=1000,
        samples=[],
    )
    gate = asyncio.Semaphore(4)
    async with aiohttp.ClientSession() as http:
        keeper = asyncio.get_running_loop().create_task(keep_alive([publisher, player]))
        try:
            await connect(http, publisher, gate, 10)
            assert publisher.error is None, publisher.error

            async def three_layers():
                stream = (await streams(http, base)).get(STREAM)
                layers = [t for t in (stream or {}).get("tracks", []) if t.get("rid")]
                return len(layers) == 3 and all(t["packets"] for t in layers) and layers

            layers = await until(three_layers, "3 layers with packets")
            assert sorted(t["rid"] for t in layers) == ["f", "h", "q"]

            await connect(http, player, gate, 10)
            assert player.error is None, player.error

            async def on(rid: str):
                return player_layers((await streams(http, base))[STREAM]) == [rid]

            await until(lambda: on("q"), "the ?layer=q player on q")
            url = base + player.resource.removeprefix(base) + "/layer"  # type: ignore[union-attr]
            async with http.post(url, json={"rid": "f"}) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["rid"] == "f"
            await until(lambda: on("f"), "the player moved to f")
            async with http.post(url, json={"rid": "auto"}) as response:
                assert response.status == 200
            video = [t for t in player.tracks.values() if t.kind == "video"]
            assert len(video) == 1 and video[0].received > 0  # one SSRC across the switch
            assert video[0].lost == 0 and video[0].late == 0  # and no jump in its numbers

            # The 201's Link names the layer URL; an offer for a rid the stream lacks is refused.
            offer = build_offer("uf01", "pw" * 12, certificate.fingerprint, send=False)
            async with http.post(f"{base}/whep/{STREAM}", data=offer, headers=SDP) as response:
                assert response.status == 201
                other = base + layer_url(response.headers["Link"])
                assert other.endswith(response.headers["Location"] + "/layer")
            async with http.post(f"{base}/whep/{STREAM}?layer=zz", data=offer, headers=SDP) as r:
                assert r.status == 400 and "no layer with rid 'zz'" in await r.text()
            async with http.post(f"{base}/whep/{STREAM}?layer=a%2Fb", data=offer, headers=SDP) as r:
                assert r.status == 400 and "is not 1-16" in await r.text()

            for body, status, reason in [
                ({"rid": "zz"}, 400, "no layer with rid 'zz'"),
                ({"mediaId": "9", "rid": "q"}, 400, "no video track with mediaId '9'"),
                ({"maxWidth": "wide"}, 400, "maxWidth must be an integer"),
                ({"rid": "q", "maxWidth": 320}, 400, "takes no maxWidth"),
                ({}, 400, "needs rid, maxWidth, maxHeight or an SVC layer id"),
                ([1], 400, "must be a JSON object"),
            ]:
                async with http.post(url, json=body) as response:
                    assert response.status == status, body
                    assert reason in await response.text(), body
            async with http.post(url, data=b"{", headers={"Content-Type": "application/json"}) as r:
                assert r.status == 400 and "not JSON" in await r.text()
            async with http.post(url, data=b"{}", headers=SDP) as response:
                assert response.status == 415
            big = b'{"rid": "q", "pad": "' + b"x" * 2000 + b'"}'
            async with http.post(url, data=big, headers={"Content-Type": "application/json"}) as r:
                assert r.status == 413
            async with http.post(publisher.resource + "/layer", json={"rid": "q"}) as response:
                assert response.status == 400 and "playing (WHEP) sessions only" in (
                    await response.text()
                )
            async with http.post(f"{base}/sessions/{'0' * 32}/layer", json={"rid": "q"}) as r:
                assert r.status == 404
        finally:
            keeper.cancel()
            for client in (player, publisher):
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.delete(client.resource):
                        pass
                client.close()
