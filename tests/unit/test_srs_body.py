"""The SRS JSON body and name parser: any bytes give (stream, offer) or a 400 Rejection."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.serving.plumbing import Rejection
from signaling.serving.srs_url import parse_srs_body, srs_stream

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def outcome(raw: bytes) -> tuple[str, str] | int:
    try:
        return parse_srs_body(raw)
    except Rejection as exc:
        assert "\n" not in exc.reason and len(exc.reason) < 200
        return exc.status


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_400(raw: bytes) -> None:
    result = outcome(raw)
    assert result == 400 or isinstance(result, tuple)


@FUZZ
@given(JSON_VALUES, JSON_VALUES)
def test_any_json_shape_parses_or_is_400(streamurl: object, sdp: object) -> None:
    for body in ({"streamurl": streamurl, "sdp": sdp}, streamurl, [streamurl, sdp]):
        result = outcome(json.dumps(body).encode())
        if isinstance(result, tuple):
            stream, offer = result
            assert offer == sdp and isinstance(body, dict)
            assert all(part.isprintable() and 0 < len(part) <= 64 for part in stream.split("/"))
        else:
            assert result == 400


@FUZZ
@given(st.text(max_size=70), st.text(max_size=70))
def test_names_are_printable_segments_or_400(app_name: str, stream: str) -> None:
    try:
        name = srs_stream(app_name, stream)
    except Rejection as exc:
        assert exc.status == 400
    else:
        assert name == f"{app_name}/{stream}" and name.isascii() and name.isprintable()
        assert app_name.strip(".") and stream.strip(".")


def test_a_good_body_gives_its_stream_and_offer() -> None:
    body = json.dumps({"streamurl": "webrtc://example.com/live/cam1", "sdp": "v=0\r\n"})
    assert parse_srs_body(body.encode()) == ("live/cam1", "v=0\r\n")
