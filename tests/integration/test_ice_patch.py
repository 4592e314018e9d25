"""ICE over HTTP PATCH (RFC 9725): trickle, ICE restart, entity tags and their error statuses."""

from __future__ import annotations

import re
import socket

import aiohttp
import pytest

from sfu.protocol import ice
from sfu.wire import stun
from signaling.sdp.trickle import (
    MAX_CANDIDATES,
    SDPFRAG_TYPE,
    Candidate,
    EntityTags,
    FragmentError,
    parse_sdpfrag,
    render_restart,
)
from tests.conftest import shared_server
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
    assert fragment.candidates == [Candidate("1", 1, "udp", 2130706431, "192.0.2.7", 50000, "host")]
    assert fragment.ignored == 0
    assert fragment.end_of_candidates


# Candidate lines as real clients trickle them; each must be read, none may fail a PATCH.
CLIENT_CANDIDATES = [
    # Chromium, IPv6 host with extension attributes
    (
        "a=candidate:3 1 udp 2122262783 fd00::2 52170 typ host generation 0 "
        "network-id 2 network-cost 10",
        ("fd00::2", 1, "udp", "host"),
    ),
    ("a=candidate:4 1 udp 2122262783 ::1 52171 typ host", ("::1", 1, "udp", "host")),
    # Eyevinn's WHIP client: component 0 and a bracketed IPv6 address
    ("a=candidate:1 0 udp 2113937151 [fd00::2] 5000 typ host", ("fd00::2", 0, "udp", "host")),
    # Browsers hiding their address behind an mDNS name
    (
        "a=candidate:2 1 udp 2113937151 0c5e2d3a-8b1f-4b9e-9f3c-1d2e3f4a5b6c.local 54321 typ host",
        ("0c5e2d3a-8b1f-4b9e-9f3c-1d2e3f4a5b6c.local", 1, "udp", "host"),
    ),
    # TCP, active and passive, and a server-reflexive candidate with raddr/rport
    (
        "a=candidate:5 1 tcp 1518280447 192.0.2.7 9 typ host tcptype active",
        ("192.0.2.7", 1, "tcp", "host"),
    ),
    (
        "a=candidate:6 1 TCP 1518280447 192.0.2.7 50001 typ host tcptype passive",
        ("192.0.2.7", 1, "tcp", "host"),
    ),
    (
        "a=candidate:7 1 udp 1685987071 198.51.100.4 61000 typ srflx raddr 0.0.0.0 rport 0",
        ("198.51.100.4", 1, "udp", "srflx"),
    ),
]


@pytest.mark.parametrize(("line", "expected"), CLIENT_CANDIDATES)
def test_client_candidate_forms_are_read(line: str, expected: tuple) -> None:
    fragment = parse_sdpfrag("a=ice-ufrag:abcd\r\n" + line + "\r\n")
    assert fragment.ignored == 0
    (candidate,) = fragment.candidates
    assert (candidate.address, candidate.component, candidate.transport, candidate.kind) == expected


@pytest.mark.parametrize(
    "line",
    [
        "a=candidate:1 1 udp 1 192.0.2.7 50000 host",  # no typ
        "a=candidate:1 1 udp 1 192.0.2.7 70000 typ host",  # port out of range
        "a=candidate:1 x udp 1 192.0.2.7 5000 typ host",  # component not a number
        "a=candidate:1 1 sctp 1 192.0.2.7 5000 typ host",  # no such ICE transport
        "a=candidate:1 1 udp 1 192.0.2.7;rm 5000 typ host",  # not an address
        "a=candidate:garbage",
    ],
)
def test_unreadable_candidates_are_ignored_not_fatal(line: str) -> None:
    fragment = parse_sdpfrag(f"a=ice-ufrag:abcd\r\n{line}\r\n{CANDIDATE}\r\n")
    assert fragment.ignored == 1
    assert [c.address for c in fragment.candidates] == ["192.0.2.7"]


def test_candidates_per_fragment_are_bounded() -> None:
    lines = "".join(f"{CANDIDATE}\r\n" for _ in range(MAX_CANDIDATES + 10))
    fragment = parse_sdpfrag(lines)
    assert len(fragment.candidates) == MAX_CANDIDATES
    assert fragment.ignored == 10


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x=1\r\n", "only a=, m= and c="),
        ("just text\r\n", "only a=, m= and c="),
        ("a=ice-ufrag:ab\r\n", "bad ice-ufrag"),
        ("a=ice-pwd:short\r\n", "bad ice-pwd"),
        ("a=ice-ufrag:abcd\r\na=ice-ufrag:efgh\r\n", "two different ice-ufrag"),
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
    assert [(c.address, c.port, c.kind) for c in fragment.candidates] == [
        ("127.0.0.1", 8000, "host")
    ]
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

# One server for the tests below: each has a stream of its own.
sfu_server = shared_server()


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
        assert await patch(trickle, FRAG) == 204  # trickle without If-Match is fine
        assert await patch(restart, FRAG) == 428  # a restart is not
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
        assert fragment.candidates[0].port == sfu_server.udp_port
        assert await patch(trickle, {**FRAG, "If-Match": etag}) == 412
        assert await patch(f"a=ice-ufrag:{NEW_UFRAG}\r\n", {**FRAG, "If-Match": new_etag}) == 204
        port = sfu_server.udp_port
        assert binding(port, f"{fragment.ufrag}:{NEW_UFRAG}", fragment.pwd) == "ok"
        # The old ufrag is unknown now: no answer at all, so nobody can reflect off us.
        assert binding(port, f"{server_ufrag}:{client_ufrag}", server_pwd, 1) == "no answer"
        async with http.delete(url) as response:
            assert response.status == 200
        assert await patch(trickle, {**FRAG, "If-Match": "*"}) == 404


async def test_client_trickle_bodies_without_if_match(sfu_server) -> None:
    """What Chrome (IPv6), Eyevinn (component 0, [fd00::2]) and medooze (no If-Match) send."""
    base = sfu_server.http_url
    offer = await offer_text([("audio", "sendonly"), ("video", "sendonly")])
    client_ufrag, _ = ice_credentials(offer)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/whip/live/trickled", data=offer, headers=SDP) as response:
            assert response.status == 201
            url = base + response.headers["Location"]
        bodies = [
            f"a=ice-ufrag:{client_ufrag}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"
            f"{CLIENT_CANDIDATES[0][0]}\r\n{CLIENT_CANDIDATES[1][0]}\r\n{CANDIDATE}\r\n",
            f"{CLIENT_CANDIDATES[2][0]}\r\na=end-of-candidates\r\n",
            "a=candidate:1 1 udp 1 192.0.2.7;rm 5000 typ host\r\n",  # unreadable, ignored
        ]
        for body in bodies:
            async with http.patch(url, data=body, headers=FRAG) as response:
                assert response.status == 204, await response.text()


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
                streams = (await response.json())["streams"]
            stream = next(s for s in streams if s["name"] == "live/restart")
            assert stream["players"] == 1 and stream["publishing"]
        finally:
            await close_all(publisher, player)
