"""The media plane's narrow API to signaling: query methods that answer with frozen values.

The stats JSON keeps the keys (and their order) that the dict builders it replaced produced;
signaling modules are held to the API by an AST check of their attribute reads.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from sfu.routing.router import PLAY, PUBLISH
from sfu.routing.stats import Layer
from signaling.observe.events import GONE, StreamState, layers_data, whep_frames
from signaling.observe.wiring import sample
from signaling.security.limits import Limits
from tests.harness import Harness

ROOT = Path(__file__).resolve().parents[2]

# The keys /api/v1/streams and /api/v1/server had before the stats became dataclasses, in order.
STREAM_KEYS = [
    "name", "publishing", "publisher_state", "publisher_relay", "codecs", "players",
    "packets_in", "bytes_in", "packets_out", "bytes_out", "bitrate_in", "bitrate_out",
    "tracks", "publisher_details", "player_sessions",
]  # fmt: skip
IN_TRACK_KEYS = [
    "kind", "codec", "ssrc", "bitrate", "packets", "bytes", "packets_lost", "jitter_ms",
    "nacks_sent", "recovered", "rtt_ms", "plis_sent", "send_failures", "subscribers",
]  # fmt: skip
IN_LAYER_KEYS = [*IN_TRACK_KEYS[:3], "rid", "width", "height", *IN_TRACK_KEYS[3:]]
PUBLISHER_KEYS = [
    "transport", "srtp_errors", "unknown_ssrc_packets", "unknown_rid_packets",
    "transport_feedback_sent",
]  # fmt: skip
PLAYER_KEYS = [
    "relay", "state", "transport", "codec_mismatch", "remb", "estimate", "congestion",
    "overuses", "transport_feedback", "probes", "failed_probes", "probe_packets", "probe_bytes",
    "srtp_errors", "tracks",
]  # fmt: skip
OUT_TRACK_KEYS = [
    "kind", "ssrc", "packets", "bytes", "nacks_received", "retransmissions",
    "retransmit_misses", "nack_budget_drops", "plis_received", "fraction_lost", "packets_lost",
    "rtt_ms",
]  # fmt: skip
OUT_LAYER_KEYS = [
    *OUT_TRACK_KEYS, "layer", "target_layer", "choice", "max_width", "max_height",
    "layer_switches", "max_temporal", "temporal_drops",
]  # fmt: skip
RESOURCE_KEYS = [
    "sessions", "bound_addresses", "streams", "publisher_tracks", "player_tracks",
    "media_packets_out",
]  # fmt: skip


def test_stats_json_keeps_the_keys_of_before() -> None:
    h = Harness()
    h.simulcast_pair("s")
    h.player("t")  # a stream with a waiting player and no publisher
    h.run(2.0)
    streams = json.loads(json.dumps(h.router.snapshot()))  # plain JSON all the way down
    assert [s["name"] for s in streams] == ["s", "t"]
    live, waiting = streams
    assert list(live) == STREAM_KEYS and list(waiting) == STREAM_KEYS
    assert [list(t) for t in live["tracks"]] == [IN_TRACK_KEYS] + [IN_LAYER_KEYS] * 3
    assert list(live["publisher_details"]) == PUBLISHER_KEYS
    (player,) = live["player_sessions"]
    assert list(player) == PLAYER_KEYS
    assert [list(t) for t in player["tracks"]] == [OUT_TRACK_KEYS, OUT_LAYER_KEYS]
    assert waiting["publisher_details"] is None and waiting["tracks"] == []
    assert [list(t) for t in waiting["player_sessions"][0]["tracks"]] == [OUT_TRACK_KEYS] * 2
    assert list(h.router.resource_counts()) == RESOURCE_KEYS
    assert live["publishing"] and live["codecs"] == {"audio": "opus", "video": "VP8"}
    assert player["tracks"][1]["layer"] in ("q", "h", "f") and live["packets_out"] > 0


def test_stats_are_frozen_values_not_views() -> None:
    h = Harness()
    h.pair("s")
    h.run(1.0)
    (before,) = h.router.stream_stats()
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.name = "other"  # type: ignore[misc]
    h.run(1.0)
    (after,) = h.router.stream_stats()
    assert after.packets_in > before.packets_in  # a later query sees more; the value did not
    assert after.serial == before.serial and after.publisher is not None
    assert after.publisher.serial != after.players[0].serial


def test_session_queries_and_counts() -> None:
    h = Harness()
    publisher, player = h.pair("s")
    h.player("s")
    router = h.router
    info = router.session_info(player.session.id)
    assert info is not None and (info.role, info.stream, info.state) == (PLAY, "s", "connected")
    assert router.session_info("no-such-id") is None
    assert router.session_count() == 3 and player.session.id in router.session_ids()
    assert router.player_count("s") == 2 and router.player_count("nothing") == 0
    summary = router.stream_summary("s")
    assert summary is not None and summary.live and summary.has_publisher
    assert (summary.players, summary.peer_players, summary.layers) == (2, 2, ())
    assert router.stream_summary("nothing") is None
    limits = Limits(max_sessions=3)
    assert limits.refusal(router, PUBLISH, "x") == "server is full: 3 sessions is the limit"
    limits = Limits(max_players_per_stream=2)
    assert limits.refusal(router, PLAY, "s") == "stream s is full: 2 players is the limit"
    assert limits.refusal(router, PLAY, "other") is None
    router.close(publisher.session.id, "test")
    ended = router.ended_session(publisher.session.id)
    assert ended is not None and (ended.role, ended.reason) == (PUBLISH, "test")
    assert router.session_info(publisher.session.id) is None
    assert publisher.session.id not in router.session_ids()
    assert router.resources().sessions == 2


def test_a_simulcast_publisher_offers_its_layers_to_the_sampler() -> None:
    h = Harness()
    h.simulcast_pair("s")
    h.run(3.0)  # bitrates are sampled once a second
    state = sample(h.router)["s"]
    assert state.live and state.players == 1
    assert [(layer.rid, layer.active) for layer in state.layers] == [
        ("q", True),
        ("h", True),
        ("f", True),
    ]
    (video,) = {layer.mline for layer in state.layers}
    data = layers_data(state.layers)
    assert list(data) == [str(video)] and [layer["rid"] for layer in data[str(video)]] == [
        "q",
        "h",
        "f",
    ]
    assert all(layer["bitrate"] > 0 and layer["active"] for layer in data[str(video)])


def layer(rid: str, bitrate: float, width: int = 0) -> Layer:
    return Layer(1, rid, width, width * 9 // 16, bitrate, bitrate > 0)


def names(before: StreamState | None, after: StreamState | None) -> list[str]:
    return [name for name, _ in whep_frames(before, after)]


def test_layers_event_on_news_only() -> None:
    first = StreamState(True, 1, (layer("q", 100_000), layer("f", 0)))
    assert names(None, first) == ["active", "viewercount", "layers"]
    assert names(None, StreamState(True, 1)) == ["active", "viewercount"]  # no simulcast
    moved = StreamState(True, 1, (layer("q", 150_000), layer("f", 0)))
    assert moved == first and names(first, moved) == []  # a bitrate that moves is no news
    woke = StreamState(True, 1, (layer("q", 150_000), layer("f", 900_000)))
    assert names(moved, woke) == ["layers"]
    sized = StreamState(True, 1, (layer("q", 150_000, 320), layer("f", 900_000)))
    (event,) = [f for name, f in whep_frames(woke, sized) if name == "layers"]
    assert event.startswith(b"event: layers\ndata: ") and event.endswith(b"\n\n")
    data = json.loads(event.split(b"data: ")[1])
    assert data == {
        "1": [
            {"rid": "q", "width": 320, "height": 180, "bitrate": 150_000, "active": True},
            {"rid": "f", "bitrate": 900_000, "active": True},
        ]
    }
    assert names(sized, GONE) == ["inactive", "viewercount"]


# --- the rule: signaling reads the router through its query methods only ---

# Attributes of the router's own state that signaling may not read (Router.sessions, .streams,
# the session table's .by_id/.by_addr, and a stream's .players/.publisher/.tracks).
ROUTER_INTERNALS = {"sessions", "streams", "by_id", "by_addr", "players", "publisher", "tracks"}


def router_internals_read(tree: ast.AST) -> list[str]:
    """`x.router.streams`, `router.sessions.by_id`, ...: an internal attribute read from an
    expression named `router`, or anywhere down a chain that starts at one."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr not in ROUTER_INTERNALS:
            continue
        base = node.value
        while isinstance(base, ast.Attribute) and base.attr in ROUTER_INTERNALS:
            base = base.value
        named = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
        if named == "router":
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_the_rule_catches_what_it_should() -> None:
    caught = "a = self.media.router.streams\nb = router.sessions.by_id\nc = m.router.players"
    assert len(router_internals_read(ast.parse(caught))) == 4
    allowed = "app.router.add_get('/x', f)\ns = router.stream_stats()\nn = s.players"
    assert router_internals_read(ast.parse(allowed)) == []


def test_signaling_uses_only_the_query_methods() -> None:
    offenders = {
        path.name: found
        for path in sorted((ROOT / "signaling").glob("*.py"))
        if (found := router_internals_read(ast.parse(path.read_text(), str(path))))
    }
    assert offenders == {}
