"""The one SRS name parser: a query and a JSON body naming the same stream agree, and the front
routes by exactly what its worker would accept."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.serving.plumbing import Rejection
from signaling.serving.srs_url import parse_srs_body, query_stream

# Characters a URL path carries as they are (urlparse drops tabs and newlines, and '/', '?'
# and '#' end a part), the name characters among them.
PARTS = st.text(alphabet="Az09_.~- %@:+", max_size=70)


@settings(max_examples=300, deadline=None)
@given(PARTS, PARTS)
def test_query_and_body_name_a_stream_alike(app_name: str, stream: str) -> None:
    url = f"webrtc://example.com/{app_name}/{stream}"
    body = json.dumps({"streamurl": url, "sdp": "v=0\r\n"}).encode()
    try:
        from_query = query_stream({"app": app_name, "stream": stream})
    except Rejection as exc:
        assert exc.status == 400
        from_query = None
    try:
        from_body = parse_srs_body(body)[0]
    except Rejection as exc:
        assert exc.status == 400
        from_body = None
    assert from_query == from_body
    if from_query is not None:
        assert from_query == f"{app_name}/{stream}"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({}, "app and stream are required"),
        ({"app": "live"}, "app and stream are required"),
        ({"app": "live", "stream": ""}, "app and stream are required"),
        ({"app": "..", "stream": "cam"}, "bad stream name part '..'"),
        ({"app": "live", "stream": "a b"}, "bad stream name part 'a b'"),
        ({"app": "live", "stream": "x" * 65}, "bad stream name part"),
        ({"app": "live\r\n", "stream": "cam"}, "bad stream name part"),
    ],
)
def test_a_bad_query_is_400_with_its_reason(query: dict[str, str], reason: str) -> None:
    with pytest.raises(Rejection) as caught:
        query_stream(query)
    assert caught.value.status == 400 and caught.value.reason.startswith(reason)
    assert "\n" not in caught.value.reason


def test_a_good_query_names_app_slash_stream() -> None:
    assert query_stream({"app": "live", "stream": "cam1"}) == "live/cam1"
