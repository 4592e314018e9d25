"""The HTTP contract: statuses, headers and reasons for good and bad requests."""

from __future__ import annotations

import asyncio
import os

import aiohttp
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection

from sfu.protocol import fastpath
from tests.integration.observed import serving
from tests.integration.peers import close_all, new_peer_connection, play, prefer_codec, publish

SDP = {"Content-Type": "application/sdp"}


async def offer_text(kind_directions: list[tuple[str, str]]) -> str:
    pc = new_peer_connection()
    for kind, direction in kind_directions:
        pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def test_server_stats_name_the_forwarding_path(sfu_server) -> None:
    forced_python = os.environ.get("SFU_NO_EXTENSION", "") not in ("", "0")
    url = f"{sfu_server.http_url}/api/v1/server"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        stats = await response.json()
    assert stats["forwarding_path"] == ("python" if forced_python else "compiled")
    # The best AES engine this CPU has, as the extension found it; libsrtp's on the Python path.
    assert stats["srtp_aes"] == ("libsrtp" if forced_python else fastpath.AES_ENGINES[0])
    trims = stats["heap_trims"]  # malloc_trim after mass teardown: a count and its CPU time
    assert isinstance(trims["count"], int) and trims["count"] >= 0
    assert trims["seconds"] >= 0


async def test_whip_answer_headers_and_delete(sfu_server) -> None:
    base = sfu_server.http_url
    offer = await offer_text([("audio", "sendonly"), ("video", "sendonly")])
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/whip/live/a", data=offer, headers=SDP) as response:
            assert response.status == 201
            assert response.content_type == "application/sdp"
            location = response.headers["Location"]
            assert location.startswith("/sessions/")
            assert response.headers["ETag"]
            answer = await response.text()
        for line in ("a=ice-lite", "a=setup:passive", "a=rtcp-mux", "a=group:BUNDLE"):
            assert line in answer
        assert f"127.0.0.1 {sfu_server.udp_port} typ host" in answer
        async with http.get(f"{base}/api/v1/streams") as response:
            streams = (await response.json())["streams"]
        assert [s["name"] for s in streams] == ["live/a"]
        async with http.delete(base + location) as response:
            assert response.status == 200
        async with http.delete(base + location) as response:
            assert response.status == 200  # a repeated DELETE finds it already ended
            assert "already ended" in await response.text()
        async with http.delete(f"{base}/sessions/0123456789abcdef01234567") as response:
            assert response.status == 404
        async with http.get(f"{base}/api/v1/streams") as response:
            assert (await response.json())["streams"] == []


async def test_error_statuses(sfu_server) -> None:
    base = sfu_server.http_url
    offer = await offer_text([("video", "sendonly")])
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/whip/x", data=offer) as response:
            assert response.status == 415
            assert "Content-Type" in await response.text()
        async with http.post(f"{base}/whip/x", data="v=0\r\nnonsense", headers=SDP) as response:
            assert response.status == 400
            reason = await response.text()
            assert reason.strip() and "\n" not in reason.strip()
        datachannel_only = await offer_text([])
        async with http.post(f"{base}/whip/x", data=datachannel_only, headers=SDP) as response:
            assert response.status in (400, 422)
        async with http.post(f"{base}/whip/busy", data=offer, headers=SDP) as response:
            assert response.status == 201
        async with http.post(f"{base}/whip/busy", data=offer, headers=SDP) as response:
            assert response.status == 409
            assert "already has a publisher" in await response.text()
        async with http.post(f"{base}/whip/a/b/c", data=offer, headers=SDP) as response:
            assert response.status in (404, 405)
        async with http.post(f"{base}/whip/x", data="v=0\r\n" * 20000, headers=SDP) as response:
            assert response.status == 413
        async with http.options(f"{base}/whip/x") as response:
            assert response.status == 204
            assert response.headers["Accept-Post"] == "application/sdp"
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            allowed = response.headers["Access-Control-Allow-Headers"].split(", ")
            assert {"ETag", "If-Match"} <= set(allowed)
            assert "ETag" in response.headers["Access-Control-Expose-Headers"]
            assert "Link" not in response.headers  # no ICE servers configured
        for endpoint in ("whip", "whep"):
            async with http.head(f"{base}/{endpoint}/live/x") as response:
                assert response.status == 200
                assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_srs_routes(sfu_server) -> None:
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        pub_offer = await offer_text([("audio", "sendonly"), ("video", "sendonly")])
        url = f"{base}/rtc/v1/whip/?app=live&stream=srs1"
        async with http.post(url, data=pub_offer, headers=SDP) as response:
            assert response.status == 201
        play_offer = await offer_text([("audio", "recvonly"), ("video", "recvonly")])
        body = {"streamurl": "webrtc://localhost/live/srs1", "sdp": play_offer}
        async with http.post(f"{base}/rtc/v1/play/", json=body) as response:
            result = await response.json()
            assert result["code"] == 0
            assert "a=sendonly" in result["sdp"]
            assert result["sessionid"]
        body = {"streamurl": "webrtc://localhost/live/srs1", "sdp": pub_offer}
        async with http.post(f"{base}/rtc/v1/publish/", json=body) as response:
            assert response.status == 409
            assert (await response.json())["code"] == 409
        async with http.post(f"{base}/rtc/v1/publish/", json={"sdp": 1}) as response:
            assert response.status == 400
        async with http.get(f"{base}/api/v1/streams") as response:
            streams = (await response.json())["streams"]
        assert streams[0]["name"] == "live/srs1" and streams[0]["players"] == 1


async def test_delete_stops_media_and_player_before_publisher(sfu_server) -> None:
    """A player that comes first gets media when the publisher arrives; DELETE ends it."""
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        early = await play(http, base, "live/late")
        publisher = await publish(http, base, "live/late")
        try:
            assert await early.wait_for("video", 20, timeout=20), early.frames
            async with http.delete(early.location) as response:
                assert response.status == 200
            await asyncio.sleep(1.0)  # let packets already in flight land
            frozen = early.frames["video"]
            await asyncio.sleep(2.0)
            assert early.frames["video"] == frozen
            async with http.get(f"{base}/api/v1/streams") as response:
                stream = (await response.json())["streams"][0]
            assert stream["players"] == 0 and stream["publishing"]
        finally:
            await close_all(publisher, early)


async def test_publisher_leaves_and_returns_keeps_players(sfu_server) -> None:
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        player = await play(http, base, "live/again")
        first = await publish(http, base, "live/again")
        peers = [player, first]
        try:
            assert await player.wait_for("video", 15, timeout=20)
            async with http.delete(first.location) as response:
                assert response.status == 200
            before = player.frames["video"]
            peers.append(await publish(http, base, "live/again"))
            assert await player.wait_for("video", before + 30, timeout=20), player.frames
            assert player.frames["audio"] > 0
        finally:
            await close_all(*peers)


async def test_unbundled_offer_gets_422_naming_bundle(sfu_server) -> None:
    """An offer without a BUNDLE group (GStreamer webrtcbin's default bundle-policy none) is
    refused with a reason, never a 201 whose audio cannot flow. aiortc's max-compat offer has a
    transport per m-line but still lists a group, so the group line is taken out."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_COMPAT))
    pc.addTransceiver("audio", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = "".join(
        line
        for line in pc.localDescription.sdp.splitlines(keepends=True)
        if not line.startswith("a=group:BUNDLE")
    )
    await pc.close()
    async with aiohttp.ClientSession() as http:
        url = f"{sfu_server.http_url}/whip/live/unbundled"
        async with http.post(url, data=offer, headers=SDP) as response:
            assert response.status == 422
            assert "BUNDLE" in await response.text()
        async with http.get(f"{sfu_server.http_url}/api/v1/streams") as response:
            assert (await response.json())["streams"] == []


async def test_player_without_the_streams_codec_gets_422(sfu_server) -> None:
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, base, "live/h264", video_codec="video/H264")
        pc = new_peer_connection()
        prefer_codec(pc.addTransceiver("video", direction="recvonly"), "video/VP8")
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        url = f"{base}/whep/live/h264"
        async with http.post(url, data=pc.localDescription.sdp, headers=SDP) as response:
            assert response.status == 422
            assert await response.text() == (
                "the stream sends H264 Baseline (42001f, packetization-mode 1) "
                "video; this offer can receive only VP8\n"
            )
        await pc.close()
        await close_all(publisher)


async def test_publisher_whose_audio_cannot_be_carried_gets_422_not_half_a_session(
    sfu_server,
) -> None:
    """Issue 27 item 11: audio the server cannot forward (PCMU) next to VP8 video was answered
    201 with the audio m-line rejected; now the offer is refused naming both sides."""
    pc = new_peer_connection()
    pc.addTransceiver("video", direction="sendonly")
    prefer_codec(pc.addTransceiver("audio", direction="sendonly"), "audio/PCMU")
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as http:
        url = f"{sfu_server.http_url}/whip/live/pcmu"
        async with http.post(url, data=pc.localDescription.sdp, headers=SDP) as response:
            assert response.status == 422
            assert await response.text() == (
                "the audio m-line (mid 1) offers PCMU; this server takes opus/48000/2, "
                "or red/48000/2 over it (send no audio, or one of those)\n"
            )
        async with http.get(f"{sfu_server.http_url}/api/v1/streams") as response:
            assert (await response.json())["streams"] == []
    await pc.close()


async def test_the_stream_list_comes_a_page_at_a_time() -> None:
    """`?limit=&offset=`: the fields every answer had, plus `total` and the `next` page."""
    offer = await offer_text([("video", "recvonly")])
    async with serving() as (http, base):
        for name in ("c", "a", "b"):  # a waiting player makes its stream
            async with http.post(f"{base}/whep/live/{name}", data=offer, headers=SDP) as r:
                assert r.status == 201
        async with http.get(f"{base}/api/v1/streams?limit=2") as response:
            first = await response.json()
        assert [s["name"] for s in first["streams"]] == ["live/a", "live/b"]
        assert first["total"] == 3 and first["next"] == "/api/v1/streams?offset=2&limit=2"
        assert {"players", "player_sessions", "publisher_relay"} <= first["streams"][0].keys()
        async with http.get(base + first["next"]) as response:
            last = await response.json()
        assert [s["name"] for s in last["streams"]] == ["live/c"] and last["next"] is None
        async with http.get(f"{base}/api/v1/streams") as response:
            assert len((await response.json())["streams"]) == 3  # within the default page
        for query in ("limit=0", "limit=5000", "offset=-1", "limit=ten"):
            async with http.get(f"{base}/api/v1/streams?{query}") as response:
                assert response.status == 400, query
                assert (await response.text()).count("\n") == 1
