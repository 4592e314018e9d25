"""A cluster node's decisions against the in-memory registry: claims, refusals, the sealed link."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import make_mocked_request

from sfu.config import MediaConfig
from sfu.io.server import MediaServer
from sfu.routing.relay import relay_keys
from sfu.routing.router import PLAY, PUBLISH
from signaling.cluster.link import MAX_SKEW, ClusterLink, LinkError, ReplayError
from signaling.cluster.node import Cluster, ClusterConfig
from signaling.cluster.registry import MemoryRegistry
from signaling.cluster.relay_setup import keys_from_json, keys_to_json
from signaling.cluster.rooms import room_streams
from signaling.serving.plumbing import Rejection
from signaling.startup.flags import parse_args

SECRET = "a-unit-test-cluster-secret"


@pytest.fixture
async def node():
    """Make cluster nodes over real media servers on 127.0.0.1; stop them all afterwards."""
    made: list[MediaServer] = []

    async def make(registry: MemoryRegistry, name: str, redirect: bool = False) -> Cluster:
        media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0))
        await media.start()
        made.append(media)
        config = ClusterConfig(name, f"http://{name}.test:8080", "127.0.0.1", redirect=redirect)
        return Cluster(media, registry, ClusterLink(SECRET), config)

    yield make
    for media in made:
        await media.stop()


def request(path: str):
    return make_mocked_request("POST", path)


async def test_the_first_publisher_claims_and_a_second_node_gets_409(node) -> None:
    registry = MemoryRegistry()
    a, b = await node(registry, "a"), await node(registry, "b")
    await a.admit(request("/whip/s"), PUBLISH, "s")
    assert await registry.owner("s") == "a"
    with pytest.raises(Rejection) as refused:
        await b.admit(request("/whip/s"), PUBLISH, "s")
    assert refused.value.status == 409
    assert "published on a" in refused.value.reason


async def test_with_redirect_a_publish_elsewhere_is_sent_to_the_owner(node) -> None:
    registry = MemoryRegistry()
    a, b = await node(registry, "a"), await node(registry, "b", redirect=True)
    await a.sync()
    await a.admit(request("/whip/s"), PUBLISH, "s")
    await b.sync()
    with pytest.raises(Rejection) as moved:
        await b.admit(request("/whip/s?x=1"), PUBLISH, "s")
    assert moved.value.status == 307
    assert moved.value.headers["Location"] == "http://a.test:8080/whip/s?x=1"


async def test_a_claim_without_its_publisher_is_released_after_the_grace(node) -> None:
    registry = MemoryRegistry()
    a = await node(registry, "a")
    await a.admit(request("/whip/s"), PUBLISH, "s")
    await a.sync()
    assert await registry.owner("s") == "a"  # the offer may still be under way
    a.claimed["s"] = time.monotonic() - 60  # it never became a publisher
    await a.sync()
    assert await registry.owner("s") is None
    assert a.claimed == {}


async def test_a_draining_node_refuses_new_sessions_with_retry_after(node) -> None:
    registry = MemoryRegistry()
    a = await node(registry, "a")
    a.draining = True
    for role in (PUBLISH, PLAY):
        with pytest.raises(Rejection) as refused:
            await a.admit(request("/whep/s"), role, "s")
        assert refused.value.status == 503
        assert refused.value.headers["Retry-After"]


async def test_a_draining_node_redirects_to_the_least_loaded_other_node(node) -> None:
    registry = MemoryRegistry()
    a, b = await node(registry, "a", redirect=True), await node(registry, "b")
    await b.sync()
    await a.sync()
    a.draining = True
    with pytest.raises(Rejection) as moved:
        await a.admit(request("/whep/s"), PLAY, "s")
    assert moved.value.status == 307
    assert moved.value.headers["Location"] == "http://b.test:8080/whep/s"


async def test_a_play_of_a_stream_owned_by_an_unreachable_node_is_503(node) -> None:
    registry = MemoryRegistry()
    b = await node(registry, "b")
    await registry.claim("s", "gone", ttl=30)  # a claim whose node has no record
    await b.start()
    try:
        with pytest.raises(Rejection) as refused:
            await b.admit(request("/whep/s"), PLAY, "s")
    finally:
        await b.stop()
    assert refused.value.status == 503
    assert "gone" in refused.value.reason


async def test_node_records_carry_load_but_no_session_ids(node) -> None:
    registry = MemoryRegistry()
    a = await node(registry, "a")
    await a.sync()
    [view] = a.nodes_view()
    assert view["name"] == "a" and view["url"] == "http://a.test:8080"
    assert view["sessions"] == 0 and view["draining"] is False
    assert set((await registry.nodes())["a"]) >= {"url", "relay", "candidates", "cpu", "players"}


def test_the_link_opens_only_what_it_sealed_for_the_same_route() -> None:
    link = ClusterLink(SECRET)
    sealed = link.seal("/cluster/v1/relay-out", {"stream": "s"})
    assert link.open("/cluster/v1/relay-out", sealed) == {"stream": "s"}
    with pytest.raises(LinkError):
        link.open("/cluster/v1/relay-close", sealed)  # sealed for another route
    with pytest.raises(LinkError):
        ClusterLink("another-cluster-secret").open("/cluster/v1/relay-out", sealed)
    with pytest.raises(LinkError):
        link.open("/cluster/v1/relay-out", sealed[:-1] + bytes([sealed[-1] ^ 1]))
    for bad in (b"", b"short", b"x" * (65 * 1024)):
        with pytest.raises(LinkError):
            link.open("/cluster/v1/relay-out", bad)
    with pytest.raises(ValueError):
        ClusterLink("short")


def test_the_link_refuses_a_message_sealed_long_ago() -> None:
    now = [1000.0]
    link = ClusterLink(SECRET, clock=lambda: now[0])
    sealed = link.seal("/p", {"stream": "s"})
    now[0] += MAX_SKEW + 1
    with pytest.raises(LinkError, match="too long ago"):
        link.open("/p", sealed)


def test_a_replayed_sealed_request_is_refused_until_its_window_closes() -> None:
    now = [1000.0]
    sender = ClusterLink(SECRET, clock=lambda: now[0])
    receiver = ClusterLink(SECRET, clock=lambda: now[0])
    sealed = sender.seal("/cluster/v1/relay-out", {"stream": "s"})
    assert receiver.open("/cluster/v1/relay-out", sealed) == {"stream": "s"}
    now[0] += MAX_SKEW - 1
    with pytest.raises(ReplayError, match="replay"):
        receiver.open("/cluster/v1/relay-out", sealed)
    # Another body of the same message has its own nonce: not a replay.
    assert receiver.open("/cluster/v1/relay-out", sender.seal("/cluster/v1/relay-out", {})) == {}
    now[0] += 2  # the window has closed: the nonce is forgotten, and the body is too old
    with pytest.raises(LinkError, match="too long ago"):
        receiver.open("/cluster/v1/relay-out", sealed)


def test_a_full_replay_memory_refuses_rather_than_forgets_a_live_nonce() -> None:
    now = [1000.0]
    link = ClusterLink(SECRET, max_remembered=2, clock=lambda: now[0])
    first, second, third = (link.seal("/p", {"n": n}) for n in range(3))
    link.open("/p", first)
    link.open("/p", second)
    with pytest.raises(ReplayError, match="too many"):
        link.open("/p", third)
    with pytest.raises(ReplayError, match="replay"):
        link.open("/p", first)  # still remembered
    now[0] += 2 * MAX_SKEW + 1  # all windows closed: room again, for a fresh body
    assert link.open("/p", link.seal("/p", {"n": 4})) == {"n": 4}


def test_relay_keys_travel_as_json_and_bad_keys_are_refused() -> None:
    keys = relay_keys()
    assert keys_from_json(keys_to_json(keys)) == keys
    good = keys_to_json(keys)
    for bad in (
        None,
        [],
        {**good, "profile": 1},
        {**good, "local": "zz"},
        {**good, "remote": "00"},
    ):
        with pytest.raises(ValueError):
            keys_from_json(bad)


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--redis-url", "http://x"], "must be a redis://"),
        (["--redis-url", "redis://127.0.0.1:1/0"], "needs --cluster-secret"),
        (["--redis-url", "redis://127.0.0.1:1/0", "--cluster-secret", "short"], "16 characters"),
        (
            ["--redis-url", "redis://127.0.0.1:1/0", "--cluster-secret", SECRET, "--workers", "2"],
            "one media process per node",
        ),
    ],
)
def test_cluster_flags_are_checked_with_a_reason(argv, reason, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert reason in capsys.readouterr().err


def test_cluster_flags_default_from_the_others() -> None:
    args = parse_args(["--redis-url", "redis://127.0.0.1:1/0", "--cluster-secret", SECRET,
                       "--http-port", "9001", "--candidate", "192.0.2.7"])  # fmt: skip
    assert args.public_url == "http://127.0.0.1:9001"
    assert args.relay_host == "192.0.2.7"
    assert args.node_name.endswith("-9001")
    assert parse_args([]).redis_url is None  # clustering stays off by default


def test_a_node_relays_in_the_participant_streams_other_nodes_publish_in_its_rooms() -> None:
    nodes = {
        "a": {"publishing": ["standup/ann", "standup/bob", "live/cam", "standup", "x/y/z"]},
        "b": {"publishing": ["standup/cy", "other/dee"]},
        "c": {"publishing": "standup/eve"},  # a corrupt record is skipped, not trusted
        "d": {"publishing": ["standup/ann", 7]},  # a stream two records list: the first wins
    }
    assert room_streams(nodes, "b", {"standup"}, per_room=10) == {
        "standup/ann": "a",
        "standup/bob": "a",
    }
    assert room_streams(nodes, "a", {"standup", "other", "live"}, per_room=10) == {
        "standup/cy": "b",
        "other/dee": "b",
        "standup/ann": "d",  # its own records are not read: "a" relays none of its streams
    }
    # However many streams the records list, a room gets at most its participant cap.
    crowded = {"a": {"publishing": [f"big/p{i}" for i in range(500)]}}
    assert len(room_streams(crowded, "b", {"big"}, per_room=100)) == 100


async def test_a_join_relays_the_room_from_the_records_and_a_draining_node_refuses(node) -> None:
    registry = MemoryRegistry()
    b = await node(registry, "b")
    await registry.put_node("a", {"url": "http://a.test:8080", "publishing": ["r/ann"]}, 30)
    assert b.room_relays({"r"}) == {}  # not read yet
    await b.admit_room(request("/rooms/v1/r/participants/bob"), "r")  # the relay fails: no 5xx
    assert b.room_relays({"r"}) == {"r/ann": "a"}
    assert b.room_relays() == {}  # no subscriber in r here yet
    assert b.edges == {}
    b.draining = True
    with pytest.raises(Rejection) as refused:
        await b.admit_room(request("/rooms/v1/r/participants/bob"), "r")
    assert refused.value.status == 503
