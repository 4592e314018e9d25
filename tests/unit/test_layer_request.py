"""WHEP layer request bodies: what each field accepts, and one-line reasons for the rest."""

from __future__ import annotations

import pytest

from sfu.protocol.simulcast import Choice
from signaling.sdp.layer_request import (
    LayerRequestError,
    layer_link,
    parse_layer_request,
    rid_choice,
)


def test_pin_cap_and_auto() -> None:
    assert parse_layer_request(b'{"mediaId": "1", "rid": "q"}') == ("1", Choice(rid="q"))
    assert parse_layer_request(b'{"rid": "auto"}') == (None, Choice())
    capped = parse_layer_request(b'{"maxWidth": 640, "maxHeight": 360}')
    assert capped == (None, Choice(max_width=640, max_height=360))
    assert rid_choice("auto").auto and rid_choice("h") == Choice(rid="h")
    pinned = parse_layer_request(b'{"spatialLayerId": 0, "temporalLayerId": 1}')
    assert pinned == (None, Choice(spatial=0, temporal=1)) and not pinned[1].auto
    caps = parse_layer_request(b'{"maxSpatialLayerId": 1, "maxTemporalLayerId": 2, "rid": "auto"}')
    assert caps == (None, Choice(max_spatial=1, max_temporal=2)) and caps[1].auto
    assert (
        layer_link("/sessions/ab")
        == '</sessions/ab/layer>; rel="urn:ietf:params:whep:ext:core:layer"'
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"x" * 1025, "larger than 1024"),
        (b"[" * 500 + b"]" * 500, "JSON object"),
        (b'"q"', "JSON object"),
        (b'{"rid": 5}', "rid must be a string"),
        (b'{"rid": "a b"}', "is not 1-16"),
        (b'{"mediaId": ["1"], "rid": "q"}', "mediaId must be a string"),
        (b'{"maxWidth": 0}', "1..16384"),
        (b'{"maxHeight": true}', "1..16384"),
        (b'{"maxWidth": 1e9}', "1..16384"),
        (b'{"other": 1}', "needs rid"),
        (b'{"spatialLayerId": 8}', "spatialLayerId must be an integer 0..7"),
        (b'{"temporalLayerId": -1}', "temporalLayerId must be an integer 0..7"),
        (b'{"maxSpatialLayerId": "1"}', "maxSpatialLayerId must be an integer"),
        (b'{"maxTemporalLayerId": false}', "maxTemporalLayerId must be an integer"),
        (b'{"rid": "q", "spatialLayerId": 1}', "pinned rid takes no"),
        (b'{"spatialLayerId": 1, "maxSpatialLayerId": 2}', "takes no maxSpatialLayerId"),
        (b'{"temporalLayerId": 1, "maxTemporalLayerId": 2}', "takes no maxTemporalLayerId"),
        (b"\xff", "not JSON"),
    ],
)
def test_bad_bodies_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(LayerRequestError, match=reason):
        parse_layer_request(body)
