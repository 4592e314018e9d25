"""Front<->worker messages: each goes through JSON unchanged, and anything else (other bytes,
another version or type, a bad field, too much of anything) is a MessageError with a reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu.media import Codec, TrackSpec
from signaling.workers.internal import track_message, track_spec, tracks_from_json, tracks_to_json
from signaling.workers.messages import (
    MAX_ENTRIES,
    MAX_MESSAGE_BYTES,
    MAX_TRACKS,
    VERSION,
    LoadReport,
    Message,
    MessageError,
    RelayCodec,
    RelayInOpened,
    RelayInRequest,
    RelayOutOpened,
    RelayOutRequest,
    RelaySource,
    RelayTrack,
    StreamLoad,
)
from signaling.workers.stats_answers import server_stats_answer, streams_answer

OPUS = RelayCodec("opus", 111, 48000, 2, "minptime=10;useinbandfec=1", ("transport-cc",))
VP8 = RelayCodec("VP8", 96, 90000, 0, "", ("nack", "nack pli", "ccm fir"), 97)
TRACKS = (RelayTrack("0", "audio", OPUS), RelayTrack("1", "video", VP8))
LOAD = LoadReport(
    pid=4242,
    udp_port=8001,
    sessions=3,
    streams={"live/cam1": StreamLoad(2, True), "cam2": StreamLoad(0, False)},
    relays_in={"relay-ab": "live/cam1"},
    relays_out={},
)
MESSAGES: list[Message] = [
    LOAD,
    RelaySource(TRACKS, ("127.0.0.1", 8000)),
    RelayInRequest("live/cam1", TRACKS, ("127.0.0.1", 8000)),
    RelayInOpened("relay-ab", ("127.0.0.1", 8001)),
    RelayOutRequest("live/cam1", TRACKS, ("127.0.0.1", 8001)),
    RelayOutOpened("relay-cd"),
]


def wire(message: Message) -> dict:
    return json.loads(message.to_json())


def reason(kind: type[Message], data: object) -> str:
    raw = data if isinstance(data, (bytes, str)) else json.dumps(data)
    with pytest.raises(MessageError) as caught:
        kind.from_json(raw)
    text = str(caught.value)
    assert text and "\n" not in text and len(text) < 200
    return text


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.KIND)
def test_every_message_goes_through_json_unchanged(message: Message) -> None:
    assert type(message).from_json(message.to_json()) == message
    assert type(message).from_json(message.to_json().encode()) == message
    data = wire(message)
    assert data["v"] == VERSION and data["type"] == message.KIND


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m.KIND)
def test_another_version_is_refused_by_name(message: Message) -> None:
    for version in (VERSION + 1, 0, None, "1", True, 1.0, "9" * 10_000):
        data = {**wire(message), "v": version}
        assert "version" in reason(type(message), data)
    missing = {k: v for k, v in wire(message).items() if k != "v"}
    assert "version None" in reason(type(message), missing)


def test_a_message_of_another_type_is_refused() -> None:
    data = wire(RelayOutRequest("live/cam1", TRACKS, ("127.0.0.1", 8001)))
    assert reason(RelayInRequest, data) == "expected a relay-in message, got 'relay-out'"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "load message is not JSON"),
        (b"\xff\xfe", "load message is not JSON"),
        (b"[1, 2]", "load must be a JSON object"),
        (b"null", "load must be a JSON object"),
        (b"[" * 100_000, "load message nests too deep"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "load message larger than"),
    ],
)
def test_what_is_no_message_at_all_is_refused(raw: bytes, expected: str) -> None:
    assert reason(LoadReport, raw).startswith(expected)


def load_with(**changes: object) -> dict:
    return {**wire(LOAD), **changes}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"pid": -1}, "load.pid must be an integer"),
        ({"pid": True}, "load.pid must be an integer"),
        ({"udp_port": 70000}, "load.udp_port must be an integer from 0 to 65535"),
        ({"sessions": "3"}, "load.sessions must be an integer"),
        ({"streams": []}, "load.streams must be an object"),
        ({"streams": {"a": {"players": 1}}}, "load.streams['a'] has no publishing"),
        (
            {"streams": {"a": {"players": 1, "publishing": 1}}},
            "load.streams['a'].publishing must be true or false",
        ),
        ({"streams": {"a": 5}}, "load.streams['a'] must be a JSON object"),
        ({"streams": {"x" * 130: {"players": 1, "publishing": True}}}, "load.streams must"),
        ({"relays_in": {"r": 5}}, "load.relays_in must hold strings"),
        ({"relays_out": None}, "load.relays_out must be an object"),
    ],
)
def test_a_bad_load_field_is_named(changes: dict, expected: str) -> None:
    assert reason(LoadReport, load_with(**changes)).startswith(expected)


def test_a_load_report_is_bounded_in_streams() -> None:
    many = {f"s{i}": {"players": 0, "publishing": False} for i in range(MAX_ENTRIES + 1)}
    assert f"at most {MAX_ENTRIES}" in reason(LoadReport, load_with(streams=many))


def relay_in_with(**changes: object) -> dict:
    return {**wire(MESSAGES[2]), **changes}


def track_with(**changes: object) -> dict:
    return {**TRACKS[1].to_data(), **changes}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"stream": 7}, "relay-in.stream must be a string"),
        ({"stream": "x" * 200}, "relay-in.stream must be a string of at most 129"),
        ({"tracks": []}, "relay-in.tracks must be a list of 1 to"),
        ({"tracks": "audio"}, "relay-in.tracks must be a list"),
        ({"tracks": [TRACKS[0].to_data()] * (MAX_TRACKS + 1)}, "relay-in.tracks must be"),
        ({"tracks": [track_with(kind="text")]}, "relay-in.tracks[0].kind must be audio or video"),
        ({"tracks": [track_with(codecs=[])]}, "relay-in.tracks[0] must have exactly one codec"),
        (
            {"tracks": [track_with(codecs=[OPUS.to_data(), VP8.to_data()])]},
            "relay-in.tracks[0].codecs must be a list of at most 1",
        ),
        (
            {"tracks": [track_with(codecs=[{**VP8.to_data(), "payload_type": 200}])]},
            "relay-in.tracks[0].codec.payload_type must be an integer from 0 to 127",
        ),
        (
            {"tracks": [track_with(codecs=[{**VP8.to_data(), "rtcp_fb": [1]}])]},
            "relay-in.tracks[0].codec.rtcp_fb must hold strings",
        ),
        ({"source": "127.0.0.1:8000"}, "relay-in.source must be [host, port]"),
        ({"source": ["127.0.0.1", "8000"]}, "relay-in.source must be an integer"),
        ({"source": ["127.0.0.1", 8000, 1]}, "relay-in.source must be [host, port]"),
    ],
)
def test_a_bad_relay_request_field_is_named(changes: dict, expected: str) -> None:
    assert reason(RelayInRequest, relay_in_with(**changes)).startswith(expected)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_are_a_message_or_a_message_error(raw: bytes) -> None:
    for kind in (LoadReport, RelaySource, RelayInRequest, RelayInOpened):
        try:
            message = kind.from_json(raw)
        except MessageError as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert isinstance(message, kind)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["pid", "udp_port", "sessions", "streams", "relays_in", "relays_out"]),
        st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.lists(st.integers()),
    )
)
def test_any_field_values_are_a_load_or_a_message_error(changes: dict) -> None:
    try:
        report = LoadReport.from_json(json.dumps(load_with(**changes)))
    except MessageError:
        return
    assert LoadReport.from_json(report.to_json()) == report


def test_media_tracks_survive_the_trip_to_another_worker() -> None:
    codec = Codec("H264", 102, 90000, 0, "packetization-mode=1", ("nack", "goog-remb"), 103)
    tracks = [
        TrackSpec("0", "audio", [Codec("opus", 111, 48000, 2)]),
        TrackSpec("1", "video", [codec]),
    ]
    assert [track_spec(track_message(t)) for t in tracks] == tracks
    assert tracks_from_json(json.loads(json.dumps(tracks_to_json(tracks)))) == tracks
    with pytest.raises(ValueError, match="exactly one codec"):
        tracks_from_json([{"mid": "0", "kind": "audio", "codecs": []}])


STREAM = {
    "name": "live/cam1",
    "publisher_relay": False,
    "player_sessions": [{"relay": True}, {"relay": False, "state": "connected"}],
    **dict.fromkeys(["packets_out", "packets_in", "bytes_out", "bytes_in"], 10),
    **dict.fromkeys(["bitrate_out", "bitrate_in"], 12.5),
    "tracks": [{"anything": "passes on"}],
}


def test_a_workers_streams_pass_on_as_they_are() -> None:
    raw = json.dumps({"streams": [STREAM, {**STREAM, "name": "b"}]}).encode()
    assert streams_answer(raw) == [STREAM, {**STREAM, "name": "b"}]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "streams has no streams"),
        ({"streams": {}}, "streams.streams must be a list"),
        ({"streams": [7]}, "streams[0] must be a JSON object"),
        ({"streams": [{**STREAM, "name": None}]}, "streams[0].name must be a string"),
        ({"streams": [{**STREAM, "bytes_in": "10"}]}, "streams[0].bytes_in must be a number"),
        ({"streams": [{**STREAM, "bitrate_out": -1}]}, "streams[0].bitrate_out must be a number"),
        ({"streams": [{**STREAM, "publisher_relay": 0}]}, "streams[0].publisher_relay must be"),
        ({"streams": [{**STREAM, "player_sessions": {}}]}, "streams[0].player_sessions must"),
        (
            {"streams": [{**STREAM, "player_sessions": [{"relay": "no"}]}]},
            "streams[0].player_sessions[0].relay must be true or false",
        ),
    ],
)
def test_a_bad_streams_answer_is_a_message_error(body: dict, expected: str) -> None:
    with pytest.raises(MessageError) as caught:
        streams_answer(json.dumps(body).encode())
    assert str(caught.value).startswith(expected)


def test_a_counter_that_is_not_a_number_is_refused_even_as_nan() -> None:
    raw = json.dumps({"streams": [{**STREAM, "bytes_out": float("nan")}]}).encode()
    with pytest.raises(MessageError, match="bytes_out must be a number"):
        streams_answer(raw)
    with pytest.raises(MessageError, match="server stats must be a JSON object"):
        server_stats_answer(b"[]")
    assert server_stats_answer(b'{"sessions": 2}') == {"sessions": 2}
