"""ICE over HTTP PATCH (RFC 9725): trickle, ICE restart, entity tags and their error statuses."""

from __future__ import annotations

import re
import socket

import aiohttp
import pytest

from sfu import ice, stun
from signaling.trickle import (
    SDPFRAG_TYPE,
    EntityTags,
    FragmentError,
    parse_sdpfrag,
    render_restart,
)
from tests.integration.peers import close_all, play, publish
from tests.integration.test_http_api import offer_text

SDP = {"Content-Type": "application/sdp"}
FRAG = {"Content-Type": SDPFRAG_TYPE}
CANDIDATE = "a=candidate:1 1 udp 2130706431 192.0.2.7 50000 typ host"
NEW_UFRAG, NEW_PWD = "rSt1", "N3wPasswordForRestart0"


# -- the fragment format -------------------------------------------------------------------------


def test_trickle_fragment() -> None:
    text = f"a=ice-ufrag:abcd\r\na=ice-pwd:{'p' * 22}\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n"
    fragment = parse_sdpfrag(text + CANDIDATE + "\r\na=end-of-candidates\r\n")
    assert (fragment.ufrag, fragment.pwd) == ("abcd", "p" * 22)
    assert fragment.candidates == [CANDIDATE.removeprefix("a=candidate:")]
    assert fragment.end_of_candidates


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x=1\r\n", "only a=, m= and c="),
        ("just text\r\n", "only a=, m= and c="),
        ("a=ice-ufrag:ab\r\n", "bad ice-ufrag"),
        ("a=ice-pwd:short\r\n", "bad ice-pwd"),
        ("a=ice-ufrag:abcd\r\na=ice-ufrag:efgh\r\n", "two different ice-ufrag"),
        ("a=candidate:1 1 udp 1 192.0.2.7 50000 host\r\n", "needs foundation"),
        ("a=candidate:1 1 udp 1 192.0.2.7 70000 typ host\r\n", "malformed"),
        ("a=candidate:1 x udp 1 192.0.2.7 5000 typ host\r\n", "malformed"),
    ],
)
def test_bad_fragments(text: str, reason: str) -> None:
    with pytest.raises(FragmentError, match=reason) as caught:
        parse_sdpfrag(text)
    assert "\n" not in str(caught.value)


def test_restart_answer_parses_as_a_fragment() -> None:
    body = render_restart("abcd", "q" * 22, "video", "1", [("127.0.0.1", 8000)])
    fragment = parse_sdpfrag(body)
    assert (fragment.ufrag, fragment.pwd) == ("abcd", "q" * 22)
    assert fragment.candidates and " 127.0.0.1 8000 typ host" in fragment.candidates[0]
    assert "a=mid:1\r\n" in body and body.startswith("a=ice-lite\r\n")


def test_entity_tags() -> None:
    tags = EntityTags()
    first = tags.renew("s1")
    assert tags.matches("s1", first) and tags.matches("s1", "*")
    assert tags.matches("s1", f'"other", {first}')
    assert not tags.matches("s1", '"other"')
    assert not tags.matches("s1", f"W/{first}")  # If-Match compares strongly
    assert tags.renew("s1") != first and not tags.matches("s1", first)
    tags.renew("s2")
    tags.prune({"s2"})
    assert len(tags) == 1 and not tags.matches("s1", first)


# -- PATCH against the server --------------------------------------------------------------------


def binding(udp_port: int, username: str, pwd: str, timeout: float = 5) -> str:
    """Send one Binding Request from a fresh socket; 'ok', the error the server answered, or
    'no answer' (what an unknown ufrag gets)."""
    transaction = b"patchtest012"
    request = ice.binding_request(
        transaction, username, pwd, controlling=True, tie_breaker=1, priority=1
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(request, ("127.0.0.1", udp_port))
        try:
            reply = sock.recv(2048)
        except TimeoutError:
            return "no answer"
    try:
        ice.parse_binding_success(reply, transaction, pwd)
    except stun.StunError as error:
        return str(error)
    return "ok"


def ice_credentials(sdp: str) -> tuple[str, str]:
    ufrag = re.search(r"a=ice-ufrag:(\S+)", sdp)
    pwd = re.search(r"a=ice-pwd:(\S+)", sdp)
    assert ufrag and pwd
    return ufrag.group(1), pwd.group(1)


async def test_patch_statuses_and_ice_restart(sfu_server) -> None:
    base = sfu_server.http_url
    offer = await offer_text([("audio", "sendonly"), ("video", "sendonly")])
    client_ufrag, _ = ice_credentials(offer)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/whip/live/patch", data=offer, headers=SDP) as response:
            assert response.status == 201
            url = base + response.headers["Location"]
            etag = response.headers["ETag"]
            server_ufrag, server_pwd = ice_credentials(await response.text())
        trickle = f"a=ice-ufrag:{client_ufrag}\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n{CANDIDATE}\r\n"
        restart = f"a=ice-ufrag:{NEW_UFRAG}\r\na=ice-pwd:{NEW_PWD}\r\n"

        async def patch(body: str, headers: dict[str, str], target: str = url) -> int:
            async with http.patch(target, data=body, headers=headers) as reply:
                text = await reply.text()
                assert reply.status == 204 or text.count("\n") == 1, text
                return reply.status

        assert await patch(trickle, {**FRAG, "If-Match": "*"}, f"{base}/sessions/nope") == 404
        assert await patch(trickle, {**SDP, "If-Match": etag}) == 415
        assert await patch(trickle, FRAG) == 428
        assert await patch(trickle, {**FRAG, "If-Match": '"stale"'}) == 412
        assert await patch("not a fragment", {**FRAG, "If-Match": etag}) == 400
        assert await patch(f"a=ice-ufrag:{NEW_UFRAG}\r\n", {**FRAG, "If-Match": "*"}) == 400
        assert await patch(trickle, {**FRAG, "If-Match": etag}) == 204
        assert await patch(trickle, {**FRAG, "If-Match": "*"}) == 204
        assert binding(sfu_server.udp_port, f"{server_ufrag}:{client_ufrag}", server_pwd) == "ok"

        async with http.patch(url, data=restart, headers={**FRAG, "If-Match": "*"}) as response:
            assert response.status == 200
            assert response.content_type == SDPFRAG_TYPE
            new_etag = response.headers["ETag"]
            fragment = parse_sdpfrag(await response.text())
        assert new_etag != etag
        assert fragment.ufrag != server_ufrag and fragment.pwd != server_pwd
        assert f" {sfu_server.udp_port} typ host" in fragment.candidates[0]
        assert await patch(trickle, {**FRAG, "If-Match": etag}) == 412
        assert await patch(f"a=ice-ufrag:{NEW_UFRAG}\r\n", {**FRAG, "If-Match": new_etag}) == 204
        port = sfu_server.udp_port
        assert binding(port, f"{fragment.ufrag}:{NEW_UFRAG}", fragment.pwd) == "ok"
        # The old ufrag is unknown now: no answer at all, so nobody can reflect off us.
        assert binding(port, f"{server_ufrag}:{client_ufrag}", server_pwd, 1) == "no answer"
        async with http.delete(url) as response:
            assert response.status == 200
        assert await patch(trickle, {**FRAG, "If-Match": "*"}) == 404


async def test_media_continues_across_an_ice_restart(sfu_server) -> None:
    base = sfu_server.http_url
    async with aiohttp.ClientSession() as http:
        publisher = await publish(http, base, "live/restart")
        player = await play(http, base, "live/restart")
        try:
            assert await player.wait_for("video", 20, timeout=20), player.frames
            restart = f"a=ice-ufrag:{NEW_UFRAG}\r\na=ice-pwd:{NEW_PWD}\r\n"
            headers = {**FRAG, "If-Match": "*"}
            async with http.patch(player.location, data=restart, headers=headers) as response:
                assert response.status == 200
            before = player.frames["video"]
            assert await player.wait_for("video", before + 40, timeout=20), player.frames
            async with http.get(f"{base}/api/v1/streams") as response:
                stream = (await response.json())["streams"][0]
            assert stream["players"] == 1 and stream["publishing"]
        finally:
            await close_all(publisher, player)
