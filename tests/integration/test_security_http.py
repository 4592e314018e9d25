"""The control plane on a hostile network: sessions are capabilities, one client cannot fill the
server or hold its connections, malformed SRS input is a 400, the front forwards only session
ids and worker-internal routes answer the front alone. Everything stays on 127.0.0.0/8."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from bench.launcher import start_server, stop_server
from sfu.config import MediaConfig
from sfu.io.server import MediaServer
from signaling.http.app import create_app
from signaling.security.admission import Admission, AdmissionPolicy
from signaling.security.auth import Authenticator, mint
from signaling.serving.redact import redacted_path, short_hash
from signaling.workers.internal import add_internal_routes
from signaling.workers.link import CLIENT_HEADER, SECRET_HEADER
from tests.integration.observed import serving
from tests.integration.test_http_api import offer_text
from tests.integration.test_robustness import bearer, status_and_reason
from tests.integration.test_workers import WORKER_ARGS

SDP = {"Content-Type": "application/sdp"}
SECRET = "security secret"


async def post_offer(
    http: aiohttp.ClientSession, url: str, offer: str, headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """(status, Location or "", body) of one offer."""
    async with http.post(url, data=offer, headers=headers or SDP) as response:
        return response.status, response.headers.get("Location", ""), await response.text()


async def test_stats_never_list_session_ids(sfu_server) -> None:
    base = sfu_server.http_url
    pub_offer = await offer_text([("video", "sendonly")])
    play_offer = await offer_text([("video", "recvonly")])
    async with aiohttp.ClientSession() as http:
        publisher = await post_offer(http, f"{base}/whip/live/ids", pub_offer)
        players = [await post_offer(http, f"{base}/whep/live/ids", play_offer) for _ in range(2)]
        ids = [location.rsplit("/", 1)[1] for _, location, _ in [publisher, *players]]
        assert all(len(i) >= 24 for i in ids)
        for path in ("/api/v1/streams", "/api/v1/server"):
            async with http.get(base + path) as response:
                listing = await response.text()
            assert not [i for i in ids if i in listing], path
        async with http.get(base + "/api/v1/streams") as response:
            [stream] = (await response.json())["streams"]
        assert stream["players"] == 2 and len(stream["player_sessions"]) == 2
        assert [p["relay"] for p in stream["player_sessions"]] == [False, False]
        assert stream["publisher_relay"] is False
        # Guessing is the only way in, and a guess is a 404.
        async with http.delete(f"{base}/sessions/{'0' * 32}") as response:
            assert response.status == 404
        async with http.delete(base + players[0][1]) as response:
            assert response.status == 200


async def test_only_the_creating_token_ends_or_changes_a_session(caplog) -> None:
    caplog.set_level(logging.INFO)
    expires = int(time.time()) + 600
    publisher_token = mint(SECRET, "live/x", "publish", expires)
    viewer_a = mint(SECRET, "live/x", "play", expires)
    viewer_b = mint(SECRET, "live/x", "play", expires + 1)  # another viewer, another token
    pub_offer = await offer_text([("video", "sendonly")])
    play_offer = await offer_text([("video", "recvonly")])
    auth = Authenticator(["admin"], SECRET, protect_stats=True)
    async with serving(auth=auth) as (http, base):
        status, publisher, _ = await post_offer(
            http, f"{base}/whip/live/x", pub_offer, bearer(publisher_token)
        )
        assert status == 201
        status, player_a, _ = await post_offer(
            http, f"{base}/whep/live/x", play_offer, bearer(viewer_a)
        )
        assert status == 201
        fragment = "a=ice-ufrag:evil\r\na=ice-pwd:evilevilevilevilevilevil\r\n"
        patch = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*"}
        for token in (None, viewer_b, "admin"):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for url in (publisher, player_a):
                async with http.delete(base + url, headers=headers) as response:
                    assert response.status == 401, (token, url)
                async with http.patch(
                    base + url, data=fragment, headers={**patch, **headers}
                ) as response:
                    assert response.status == 401, (token, url)
        async with http.patch(
            base + player_a, data=fragment, headers={**patch, "Authorization": f"Bearer {viewer_a}"}
        ) as response:
            assert response.status == 200  # its own token restarts ICE
        session_id = player_a.rsplit("/", 1)[1]
        assert f"session #{short_hash(session_id)}: ICE restart over HTTP" in caplog.text
        ours = [r.getMessage() for r in caplog.records if r.name != "aiohttp.access"]
        assert not [line for line in ours if session_id in line]  # the access lines neither
        for url, token in ((player_a, viewer_a), (publisher, publisher_token)):
            async with http.delete(base + url, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
            async with http.delete(
                base + url, headers={"Authorization": f"Bearer {viewer_b}"}
            ) as r:
                assert r.status == 401  # even once ended, a stranger learns nothing
        async with http.get(f"{base}/api/v1/streams", headers=bearer(viewer_a)) as response:
            assert response.status == 401


async def test_a_flood_from_one_address_gets_429_and_others_still_get_in(sfu_server) -> None:
    base = sfu_server.http_url
    play_offer = await offer_text([("video", "recvonly")])
    pub_offer = await offer_text([("video", "sendonly")])
    flooder = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=flooder) as flood, aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(40):
            status, _, body = await post_offer(flood, f"{base}/whep/live/flood", play_offer)
            statuses.append(status)
        assert statuses.count(201) <= 20, statuses  # the pending cap and the burst are 20
        assert 429 in statuses
        async with flood.post(f"{base}/whep/live/flood", data="not sdp", headers=SDP) as response:
            # Refused before the body is read: a 429, not the 400 this body would get.
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
            assert "127.0.0.2" in await response.text()
        status, _, body = await post_offer(http, f"{base}/whip/live/flood", pub_offer)
        assert status == 201, body
        async with http.get(base + "/api/v1/server") as response:
            refused = (await response.json())["admission_refused"]
        assert sum(refused.values()) >= statuses.count(429) + 1
    assert "-> 429" in sfu_server.log()


async def test_trusted_proxy_client_is_the_right_most_forwarded_address() -> None:
    play_offer = await offer_text([("video", "recvonly")])
    admission = Admission(AdmissionPolicy(max_pending=0, rate=0.01, burst=1))
    async with serving(admission=admission, trust_proxy=True) as (http, base):

        async def via_proxy(chain: str) -> int:
            headers = {**SDP, "X-Forwarded-For": chain}
            return (await post_offer(http, f"{base}/whep/live/p", play_offer, headers))[0]

        assert await via_proxy("198.51.100.1") == 201
        assert await via_proxy("203.0.113.50, 198.51.100.2") == 201
        # What the client put left of the proxy's entry changes nothing.
        assert await via_proxy("203.0.113.51, 198.51.100.1") == 429


def slow_socket(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"POST /whip/live/slow HTTP/1.1\r\nHost: x\r\n")
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_slow_and_excess_connections_are_closed_while_others_get_through(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path, "--header-timeout", "1", "--client-connections", "20")
    port = int(server.http_url.rsplit(":", 1)[1])
    try:
        sockets = [slow_socket(port, "127.0.0.2") for _ in range(30)]
        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            async with http.get(server.http_url + "/api/v1/streams") as response:
                assert response.status == 200  # another address is not held up
            for sock in sockets[:5]:
                sock.sendall(b"X-Drip: 1\r\n")  # dripping headers does not extend the deadline
            closed = await asyncio.gather(
                *(asyncio.to_thread(closed_by_server, sock) for sock in sockets)
            )
            assert all(closed), closed
            print(f"30 slow connections closed within {time.monotonic() - started:.1f} s")
            async with http.get(server.http_url + "/api/v1/server") as response:
                stats = (await response.json())["http"]
        assert stats["refused"] >= 10 and stats["header_timeouts"] >= 20, stats
    finally:
        for sock in sockets:
            sock.close()
        stop_server(server)
    assert "Traceback" not in server.log()


async def test_aborted_upload_is_one_info_line(sfu_server) -> None:
    port = int(sfu_server.http_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /whip/live/abort HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\n"
            b"Content-Length: 5000\r\n\r\nv=0\r\n"
        )
        await asyncio.sleep(0.3)
    deadline = time.monotonic() + 10
    while "upload aborted" not in sfu_server.log() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert "INFO signaling.http.app: POST /whip/live/abort -> 400 offer upload aborted" in (
        sfu_server.log()
    )
    # The fixture asserts there is no traceback.


async def test_malformed_srs_input_is_400_with_a_reason() -> None:
    play_offer = await offer_text([("video", "recvonly")])
    bodies = {
        b"[]": "body must be a JSON object",
        b'"webrtc://h/live/x"': "body must be a JSON object",
        b"{not json": "body is not JSON",
        b"\xff\xfe": "body is not UTF-8",
        b"[" * 50000: "body nests too deep",
        json.dumps({"streamurl": 5, "sdp": play_offer}).encode(): "streamurl must be a string",
        json.dumps({"streamurl": ["x"], "sdp": play_offer}).encode(): "streamurl must be a string",
        json.dumps({"streamurl": "webrtc://h/live/x", "sdp": {}}).encode(): "sdp must be a string",
        json.dumps({"sdp": play_offer}).encode(): "streamurl must be a string",
        json.dumps({"streamurl": "http://h/live/x", "sdp": play_offer}).encode(): "look like",
        json.dumps({"streamurl": "webrtc://h/live/x\r\nX: 1", "sdp": play_offer}).encode(): (
            "bad stream name part"
        ),
        json.dumps({"streamurl": "webrtc://h/../x", "sdp": play_offer}).encode(): "bad stream",
        json.dumps({"streamurl": "webrtc://h/a/" + "s" * 65, "sdp": play_offer}).encode(): (
            "bad stream name part"
        ),
    }
    async with serving() as (http, base):
        for body, reason in bodies.items():
            async with http.post(f"{base}/rtc/v1/play/", data=body) as response:
                assert response.status == 400, body[:60]
                answer = await response.json()
                assert answer["code"] == 400 and reason in answer["msg"], (body[:60], answer)
        for query in ("app=live%0d%0a&stream=x", "app=live&stream=x%00", "app=..&stream=x"):
            async with http.post(
                f"{base}/rtc/v1/whep/?{query}", data=play_offer, headers=SDP
            ) as response:
                status, reason = await status_and_reason(response)
                assert status == 400 and "bad stream name part" in reason, query
        async with http.get(f"{base}/api/v1/streams") as response:
            assert (await response.json())["streams"] == []
        async with http.get(f"{base}/api/v1/server") as response:
            assert (await response.json())["http_refused"]["400"] == len(bodies) + 3


async def test_internal_routes_answer_the_front_secret_only() -> None:
    media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0))
    await media.start()
    one_each = Admission(AdmissionPolicy(max_pending=0, rate=0.01, burst=1))
    app = create_app(media, ["127.0.0.1"], None, admission=one_each)
    add_internal_routes(app, "front-secret")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {SECRET_HEADER: "guess"}, {SECRET_HEADER: ""}):
                async with http.get(base + "/internal/load", headers=headers) as response:
                    assert response.status == 403
                async with http.delete(base + "/internal/relays/x", headers=headers) as response:
                    assert response.status == 403
            async with http.get(
                base + "/internal/load", headers={SECRET_HEADER: "front-secret"}
            ) as response:
                assert response.status == 200

            async def offer_for(client: str, secret: str) -> int:
                headers = {**SDP, CLIENT_HEADER: client, SECRET_HEADER: secret}
                async with http.post(base + "/whep/live/x", data="v=0", headers=headers) as r:
                    return r.status  # 422 (nothing to carry) once admitted, 429 if not

            # The front's client addresses each have their own bucket of one...
            assert await offer_for("192.0.2.1", "front-secret") == 422
            assert await offer_for("192.0.2.2", "front-secret") == 422
            # ...but without the secret the claim is not believed: both are 127.0.0.1.
            assert await offer_for("192.0.2.3", "guess") == 422
            assert await offer_for("192.0.2.4", "guess") == 429
    finally:
        await server.close()
        await media.stop()


async def test_front_forwards_only_session_ids(tmp_path: Path) -> None:
    server = start_server(tmp_path, *WORKER_ARGS)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.http_url + "/") as response:
                assert response.status == 200
                assert response.headers["X-Frame-Options"] == "DENY"  # the front's pages too
                assert response.headers["Server"] == "LiteSFU"
            async with http.get(server.http_url + "/api/v1/streams?limit=1") as response:
                assert await response.json() == {"streams": [], "total": 0, "next": None}
            for path in (
                "/sessions/w0-..%2F..%2Finternal%2Frelays%2Fabc",
                "/sessions/w0-..%2Finternal%2Fload",
                "/sessions/w0-" + "g" * 32,
                "/sessions/w99999-" + "a" * 32,
            ):
                async with http.delete(server.http_url + path) as response:
                    assert response.status == 404, path
            async with http.delete(f"{server.http_url}/sessions/w0-{'a' * 32}") as response:
                assert response.status == 404  # well formed: the worker says it has none
    finally:
        stop_server(server)
    worker_lines = [line for line in server.log().splitlines() if " w0 " in line or " w1 " in line]
    assert not [line for line in worker_lines if "/internal/relays" in line]
    # Logged as sent (still encoded), with the would-be session id as its short hash.
    assert redacted_path("/sessions/w0-..%2Finternal%2Fload") in server.log()
    assert "%2Finternal" not in server.log()
    assert "Traceback" not in server.log()
