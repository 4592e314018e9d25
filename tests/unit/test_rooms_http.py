"""The room API's refusals and event stream, in-process, with no media: names, bodies, prefs,
unknown sessions, tokens, and the events a changing room view makes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sfu.config import MediaConfig
from sfu.io.server import MediaServer
from sfu.routing.room_stats import OwnMedia, ParticipantView, RoomView, SlotView, TrackPrefs
from signaling.http.app import create_app
from signaling.http.rooms import MAX_MEDIA_BODY, MAX_PREFS_BODY, parse_own_media, parse_prefs
from signaling.http.state import MEDIA_SERVER
from signaling.observe.event_hub import PER_CLIENT_STREAMS, PER_SESSION_STREAMS
from signaling.observe.room_events import room_frames, room_listener, room_state
from signaling.observe.routes import HUB
from signaling.observe.wiring import add_observability
from signaling.security.auth import Authenticator, mint, mint_room
from signaling.security.hooks import HttpHooks
from signaling.serving.access import OWNERS
from signaling.serving.plumbing import REFUSED, ROOM_REFUSED
from signaling.serving.redact import redacted_path, short_hash
from signaling.workers.balancer import Balancer
from signaling.workers.front import create_front
from signaling.workers.pool import WorkerPool

OFFERS = Path(__file__).parent / "offers"
SESSION = "0123456789abcdef0123456789abcdef"
SDP = {"Content-Type": "application/sdp"}
JSON = {"Content-Type": "application/json"}
SECRET = "s3cret"


def view(
    others: tuple[str, ...] = ("bob",),
    slots: tuple[SlotView, ...] = (),
    wanted: dict[str, int] | None = None,
    speakers: tuple[str, ...] = (),
) -> RoomView:
    return RoomView(
        room="r",
        participant="alice",
        participants=tuple(ParticipantView(n, True, ("audio", "video"), True) for n in others),
        slots=slots,
        wanted=wanted or {"audio": 1, "video": 1},
        speakers=speakers,
        estimate=None,
        allocated=0.0,
        paused=sum(s.paused for s in slots),
    )


BOB_SLOTS = (SlotView("0", "audio", "bob", False, None), SlotView("1", "video", "bob", False, "h"))


class Served:
    """The app on 127.0.0.1 with one fake live room session, SESSION, whose view tests set."""

    def __init__(self, app: web.Application, http: aiohttp.ClientSession, base: str) -> None:
        self.app, self.http, self.base = app, http, base
        self.views: list[RoomView | None] = [view(slots=BOB_SLOTS)]
        router = app[MEDIA_SERVER].router
        router.room_view = lambda sid: self.views[0] if sid == SESSION else None  # type: ignore[method-assign]
        fake = SimpleNamespace(id=SESSION)
        router.live_session = lambda sid: fake if sid == SESSION else None  # type: ignore[method-assign]
        self.prefs: dict[str, TrackPrefs] = {}
        router.set_prefs = lambda sid, prefs, now: self.prefs.update(prefs)  # type: ignore[method-assign]
        self.said: list[OwnMedia] = []
        room = SimpleNamespace(say=lambda subscriber, media, now: self.said.append(media))
        router.subscriber_and_room = lambda sid: (fake, room)  # type: ignore[method-assign]
        self.closed: list[str] = []
        router.close = lambda sid, reason, now=None: self.closed.append(sid) or True  # type: ignore[method-assign]

    def url(self, path: str) -> str:
        return f"{self.base}/rooms/v1{path}"


@pytest.fixture
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    auth = getattr(request, "param", None)
    media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0))
    app = create_app(media, ["127.0.0.1"], None, auth=auth)
    add_observability(app, media, 0, 10)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            yield Served(app, http, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


async def status_of(response: aiohttp.ClientResponse) -> tuple[int, str]:
    async with response:
        return response.status, await response.text()


@pytest.mark.parametrize(
    "path",
    ["/r%20x/participants/alice", "/r/participants/" + "a" * 65, "/r/participants/a%2Fb"],
)
async def test_bad_names_are_400_and_counted(served: Served, path: str) -> None:
    status, reason = await status_of(await served.http.post(served.url(path), headers=SDP))
    assert status in (400, 404)  # a slash in a name never matches the route at all
    assert reason.count("\n") == 1
    if "%2F" not in path:
        assert status == 400 and "name" in reason


async def test_an_offer_must_be_sdp_within_the_bound(served: Served) -> None:
    url = served.url("/r/participants/alice")
    assert (await status_of(await served.http.post(url, data="x", headers=JSON)))[0] == 415
    big = "v=0\r\n" + "a=x\r\n" * 20000
    assert (await status_of(await served.http.post(url, data=big, headers=SDP)))[0] == 413
    status, reason = await status_of(await served.http.post(url, data="garbage", headers=SDP))
    assert status == 400 and reason.count("\n") == 1
    assert served.app[REFUSED] == {"415": 1, "413": 1, "400": 1}


async def test_unknown_sessions_are_404(served: Served) -> None:
    other = "f" * 32
    for method, path, kwargs in (
        ("PATCH", f"/sessions/{other}", {"data": "v=0", "headers": SDP}),
        ("DELETE", f"/sessions/{other}", {}),
        ("POST", f"/sessions/{other}/prefs", {"data": "{}", "headers": JSON}),
        ("GET", f"/sessions/{other}/events", {}),
        ("GET", "/sessions/not-an-id/events", {}),
    ):
        response = await served.http.request(method, served.url(path), **kwargs)
        assert (await status_of(response))[0] == 404, (method, path)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "object"),
        (b"{", "JSON"),
        (b'{"bob": {"pinned": 1}}', "pinned"),
        (b'{"bob": {"maxWidth": 0}}', "maxWidth"),
        (b'{"bob": {"maxHeight": true}}', "maxHeight"),
        (b'{"bob": {"loud": true}}', "object of"),
        (b'{"b/b": {}}', "names"),
        (b'{"bob": []}', "object of"),
    ],
)
def test_bad_prefs_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_prefs(body, 100)


def test_prefs_are_bounded_by_the_room_size() -> None:
    body = ("{" + ",".join(f'"p{i}": {{}}' for i in range(3)) + "}").encode()
    assert len(parse_prefs(body, 3)) == 3
    with pytest.raises(ValueError, match="at most 2"):
        parse_prefs(body, 2)


async def test_prefs_reach_the_router(served: Served) -> None:
    url = served.url(f"/sessions/{SESSION}/prefs")
    body = '{"bob": {"pinned": true, "maxWidth": 640}, "carol": {"off": true}}'
    assert (await status_of(await served.http.post(url, data=body, headers=JSON)))[0] == 204
    assert served.prefs == {
        "bob": TrackPrefs(pinned=True, max_width=640),
        "carol": TrackPrefs(off=True),
    }
    big = '{"bob": {}, "x": "' + "y" * MAX_PREFS_BODY + '"}'
    assert (await status_of(await served.http.post(url, data=big, headers=JSON)))[0] == 413

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length to refuse it by
        yield big.encode()

    assert (await status_of(await served.http.post(url, data=chunked(), headers=JSON)))[0] == 413
    bad = await served.http.post(url, data="[1]", headers=JSON)
    assert (await status_of(bad))[0] == 400


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[]", "object"),
        (b"{", "JSON"),
        (b'{"loud": true}', "object of"),
        (b'{"muted": "audio"}', "muted"),
        (b'{"muted": ["screen"]}', "muted"),
        (b'{"muted": ["audio", "audio", "video"]}', "muted"),
        (b'{"screen": 1}', "screen"),
    ],
)
def test_bad_media_bodies_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_own_media(body)


def test_a_media_body_says_muted_kinds_and_screen() -> None:
    said = parse_own_media(b'{"muted": ["video"], "screen": true}')
    assert said == OwnMedia(frozenset({"video"}), True)
    assert parse_own_media(b"{}") == OwnMedia()


async def test_the_media_route_reaches_the_router_and_refuses_bad_bodies(served: Served) -> None:
    said = served.said
    url = served.url(f"/sessions/{SESSION}/media")
    body = '{"muted": ["audio"], "screen": true}'
    assert (await status_of(await served.http.post(url, data=body, headers=JSON)))[0] == 204
    assert said == [OwnMedia(frozenset({"audio"}), True)]
    big = '{"muted": [], "x": "' + "y" * MAX_MEDIA_BODY + '"}'
    assert (await status_of(await served.http.post(url, data=big, headers=JSON)))[0] == 413
    assert (await status_of(await served.http.post(url, data="{}")))[0] == 415
    status, reason = await status_of(await served.http.post(url, data="[1]", headers=JSON))
    assert status == 400 and reason.count("\n") == 1
    other = served.url(f"/sessions/{'f' * 32}/media")
    assert (await status_of(await served.http.post(other, data="{}", headers=JSON)))[0] == 404
    assert len(said) == 1
    assert served.app[REFUSED] == {"413": 1, "415": 1, "400": 1, "404": 1}
    assert served.app[ROOM_REFUSED] == {
        "media 413": 1,
        "media 415": 1,
        "media 400": 1,
        "media 404": 1,
    }


async def test_a_reoffer_is_bounded_and_each_refusal_counted_by_action(served: Served) -> None:
    url = served.url(f"/sessions/{SESSION}")
    big = "v=0\r\n" + "a=x\r\n" * 20000  # past the 64 KiB of an offer

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length to refuse it by
        yield big.encode()

    refused = [
        ({"data": big, "headers": SDP}, 413),
        ({"data": chunked(), "headers": SDP}, 413),
        ({"data": "v=0", "headers": JSON}, 415),
        ({"data": b"\xff\xfe", "headers": SDP}, 400),  # not UTF-8
        ({"data": "garbage", "headers": SDP}, 400),
        ({"data": "v=0", "headers": {**SDP, "If-Match": '"stale"'}}, 412),
    ]
    for kwargs, expected in refused:
        status, reason = await status_of(await served.http.patch(url, **kwargs))
        assert status == expected and reason.count("\n") == 1, (status, reason)
    assert served.app[ROOM_REFUSED] == {
        "reoffer 413": 2,
        "reoffer 415": 1,
        "reoffer 400": 2,
        "reoffer 412": 1,
    }


async def test_a_room_session_is_left_by_delete(served: Served) -> None:
    url = served.url(f"/sessions/{SESSION}")
    assert (await status_of(await served.http.delete(url)))[0] == 200
    assert served.closed == [SESSION]


def token(stream: str, role: str) -> str:
    return mint(SECRET, stream, role, int(time.time()) + 60)


def room_token(room: str, name: str, *roles: str, secret: str = SECRET) -> str:
    return mint_room(secret, room, name, roles, int(time.time()) + 60)


@pytest.mark.parametrize("served", [Authenticator(["static"], SECRET)], indirect=True)
async def test_a_join_needs_a_room_token_to_subscribe_as_that_participant(served: Served) -> None:
    url = served.url("/r/participants/alice")

    def bearer(value: str) -> dict[str, str]:
        return {**SDP, "Authorization": f"Bearer {value}"}

    refused = (
        None,
        "wrong",
        token("r/alice", "stats"),
        token("r/alice", "publish"),  # a stream token joins no room: it would receive everyone
        token("r/alice", "play"),
        room_token("r", "bob", "subscribe"),  # another participant's
        room_token("q", "alice", "subscribe"),  # another room's
        room_token("r", "alice", "publish"),  # publish only: an OBS guest's
        room_token("r", "alice", "subscribe", secret="another server's secret"),
    )
    for value in refused:
        headers = SDP if value is None else bearer(value)
        response = await served.http.post(url, data="garbage", headers=headers)
        assert (await status_of(response))[0] == 401, value
    allowed = (
        "static",
        room_token("r", "alice", "subscribe"),
        room_token("r", "alice", "publish", "subscribe"),
    )
    for value in allowed:
        response = await served.http.post(url, data="garbage", headers=bearer(value))
        assert (await status_of(response))[0] == 400  # past auth, to the offer


@pytest.mark.parametrize("served", [Authenticator(["static", "other"])], indirect=True)
async def test_only_the_creating_token_changes_a_session(served: Served) -> None:
    served.app[OWNERS].remember(SESSION, "static")
    url = served.url(f"/sessions/{SESSION}")
    for headers in ({}, {"Authorization": "Bearer other"}):
        assert (await status_of(await served.http.delete(url, headers=headers)))[0] == 401
        prefs = await served.http.post(url + "/prefs", data="{}", headers={**JSON, **headers})
        assert (await status_of(prefs))[0] == 401
    assert served.closed == []
    ok = await served.http.delete(url, headers={"Authorization": "Bearer static"})
    assert (await status_of(ok))[0] == 200 and served.closed == [SESSION]


async def read_events(
    served: Served, count: int, change: Callable[[], None] | None = None
) -> list[tuple[str, str]]:
    """The first `count` events of SESSION's stream; `change` runs after the first batch."""
    events: list[tuple[str, str]] = []
    async with served.http.get(served.url(f"/sessions/{SESSION}/events")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        name = ""
        while len(events) < count:
            line = (await asyncio.wait_for(response.content.readline(), 5)).decode().strip()
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, line.removeprefix("data: ")))
                if change is not None and len(events) == 4:
                    change()
    return events


async def test_events_follow_the_view_and_end(served: Served) -> None:
    def change() -> None:
        slots = (*BOB_SLOTS, SlotView("2", "video", "carol", True, None, screen=True))
        served.views[0] = view(("bob", "carol"), slots, {"audio": 2, "video": 2}, ("carol",))

    events = await read_events(served, 10, change)
    assert [name for name, _ in events] == [
        *("participants", "slots", "speakers", "layers"),
        *("participants", "slots", "renegotiate", "speakers", "paused", "layers"),
    ]
    assert json.loads(events[5][1]) == {
        "0": {"participant": "bob", "kind": "audio", "track": "audio"},
        "1": {"participant": "bob", "kind": "video", "track": "video"},
        "2": {"participant": "carol", "kind": "video", "track": "screen"},
    }
    assert events[6][1] == '{"audio": 2, "video": 2}'
    assert events[8][1] == '{"participant": "carol", "mid": "2"}'
    text = "".join(data for _, data in events)
    assert SESSION not in text and "127.0.0.1" not in text


async def test_room_streams_count_per_session_not_per_address(served: Served) -> None:
    """A room behind one NAT address holds one stream per participant, past the 8 a client
    may hold; each session may hold only its own (and a reconnect's overlap)."""
    sessions = [f"{n:032x}" for n in range(1, PER_CLIENT_STREAMS + 3)]
    router = served.app[MEDIA_SERVER].router
    router.room_view = lambda sid: view() if sid in sessions else None  # type: ignore[method-assign]
    served.app[HUB].max_streams = 2 * len(sessions)  # the server-wide cap is not what is tested
    opened: list[aiohttp.ClientResponse] = []
    try:
        for session in sessions:
            opened.append(await served.http.get(served.url(f"/sessions/{session}/events")))
            assert opened[-1].status == 200, await opened[-1].text()
        opened.append(await served.http.get(served.url(f"/sessions/{sessions[0]}/events")))
        assert opened[-1].status == 200  # the overlap of an EventSource's reconnect
        status, reason = await status_of(
            await served.http.get(served.url(f"/sessions/{sessions[0]}/events"))
        )
        assert status == 429
        assert f"this session holds {PER_SESSION_STREAMS} event streams" in reason
        assert sessions[0] not in reason
    finally:
        for response in opened:
            response.close()


async def test_the_stream_ends_with_the_session(served: Served) -> None:
    events = await read_events(served, 5, lambda: served.views.__setitem__(0, None))
    assert events[-1] == ("ended", "{}")


def test_paused_and_resumed_follow_the_slot() -> None:
    paused = room_state(view(slots=(SlotView("1", "video", "bob", True, None),)))
    playing = room_state(view(slots=(SlotView("1", "video", "bob", False, "h"),)))
    moved = room_state(view(slots=(SlotView("1", "video", "carol", False, None),)))
    assert [f.split(b"\n")[0] for f in room_frames(paused, playing)] == [
        b"event: resumed",
        b"event: layers",
    ]
    # A paused slot given to someone else is no resumption of the one it showed.
    assert b"event: resumed" not in b"".join(room_frames(paused, moved))


def test_a_listener_that_finds_no_session_ends_at_once() -> None:
    listener, first = room_listener(lambda: None)
    assert first == [b"event: ended\ndata: {}\n\n"] and listener.ending


async def test_the_workers_front_passes_a_join_to_its_rooms_worker() -> None:
    """Not a 501: the join waits for its room's worker (more in test_front_rooms.py)."""
    pool = WorkerPool(2, 0, [])
    balancer = Balancer(pool, 1)
    server = TestServer(create_front(pool, balancer, None), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            url = str(server.make_url("/rooms/v1/r/participants/alice"))
            async with http.post(url, data="v=0", headers=SDP) as response:
                assert response.status == 503 and response.headers["Retry-After"]
                index = balancer.origin("r/alice").index
                assert await response.text() == f"worker {index} is starting\n"
    finally:
        await server.close()


def recvonly_offer() -> str:
    """Chrome's publish offer turned into a subscriber's: recvonly, no sources of its own."""
    text = (OFFERS / "chrome_publish.sdp").read_text()
    lines = [line for line in text.splitlines() if not line.startswith(("a=ssrc", "a=msid"))]
    return "\r\n".join(line.replace("a=sendonly", "a=recvonly") for line in lines) + "\r\n"


async def test_a_join_answers_then_a_second_is_busy_and_a_third_full() -> None:
    media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0, max_room_participants=2))
    await media.start()  # its answer names the media port
    server = TestServer(create_app(media, ["127.0.0.1"], None), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("/rooms/v1/r/participants/")).rstrip("/")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/ann", data=recvonly_offer(), headers=SDP) as answer:
                assert answer.status == 201, await answer.text()
                location = answer.headers["Location"]
                assert location.startswith("/rooms/v1/sessions/") and answer.headers["ETag"]
                assert f'<{location}/events>; rel="events"' in answer.headers.getall("Link")
                sdp = await answer.text()
            assert "a=sendonly" in sdp and "a=ssrc:" in sdp and "a=recvonly" not in sdp
            session_url = str(server.make_url(location))
            assert "m=application 0 " not in sdp and "webrtc-datachannel" in sdp  # room data
            async with http.patch(session_url, data=recvonly_offer(), headers=SDP) as again:
                reanswer = await again.text()
                assert again.status == 200 and "a=sendonly" in reanswer
                assert "m=application 0 " not in reanswer and "webrtc-datachannel" in reanswer
                assert again.headers["ETag"]
            offer = recvonly_offer()
            no_data = offer[: offer.index("m=application")]
            async with http.patch(session_url, data=no_data, headers=SDP) as dataless:
                assert dataless.status == 400
                assert "removed or moved the data channel m-line" in await dataless.text()
            video_only = offer[: offer.index("m=audio")] + offer[offer.index("m=video") :]
            async with http.patch(session_url, data=video_only, headers=SDP) as removed:
                assert removed.status == 400 and "m-lines" in await removed.text()
            for name, status in (("ann", 409), ("bob", 201), ("cy", 403)):
                async with http.post(f"{base}/{name}", data=recvonly_offer(), headers=SDP) as r:
                    assert r.status == status, (name, await r.text())
            view = media.router.room_view(location.rsplit("/", 1)[1])
            assert view is not None and [p.name for p in view.participants] == ["bob"]
            async with http.delete(session_url) as gone:
                assert gone.status == 200
            assert media.router.room_view(location.rsplit("/", 1)[1]) is None
    finally:
        await server.close()
        await media.stop()


def test_a_room_session_url_is_logged_as_a_hash() -> None:
    hashed = f"/rooms/v1/sessions/#{short_hash(SESSION)}"
    assert redacted_path(f"/rooms/v1/sessions/{SESSION}") == hashed
    assert redacted_path(f"/rooms/v1/sessions/{SESSION}/events") == hashed + "/events"
    assert redacted_path("/rooms/v1/r/participants/ann") == "/rooms/v1/r/participants/ann"


async def test_the_hook_is_asked_about_a_join_and_may_refuse_it() -> None:
    asked: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        asked.append(await request.json())
        return web.json_response({"code": 1, "msg": "not today"})

    hook_app = web.Application()
    hook_app.router.add_post("/hook", hook)
    hook_server = TestServer(hook_app, host="127.0.0.1")
    await hook_server.start_server()
    media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0))
    app = create_app(
        media, ["127.0.0.1"], None, hooks=HttpHooks(str(hook_server.make_url("/hook")))
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            url = str(server.make_url("/rooms/v1/r/participants/ann"))
            status, reason = await status_of(
                await http.post(url, data=recvonly_offer(), headers=SDP)
            )
        assert (status, reason) == (403, "refused by hook: not today\n")
        assert [(a["action"], a["stream"]) for a in asked] == [("on_subscribe", "r/ann")]
        assert media.router.session_count() == 0
    finally:
        await server.close()
        await hook_server.close()
