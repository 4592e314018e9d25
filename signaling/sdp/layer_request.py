"""The WHEP layer extension (draft-ietf-wish-whep, core extensions): a player picks its layer.

The 201 of a WHEP POST links to `/sessions/{id}/layer`; a POST of JSON there pins a rid, caps
the size, pins or caps a VP9 SVC stream's spatial and temporal layer, or goes back to
automatic choice. `?layer=` on the WHEP POST sets the first choice.
Bodies are small and strictly typed, so a mistake gets a 400 with the field it is about.
"""

from __future__ import annotations

import json

from sfu.protocol.simulcast import AUTO, Choice
from signaling.sdp.simulcast import MAX_RID_LENGTH, SimulcastError, check_rid

LINK_REL = "urn:ietf:params:whep:ext:core:layer"
MAX_LAYER_BODY = 1024
MAX_MEDIA_ID = 64
MAX_DIMENSION = 16384


class LayerRequestError(ValueError):
    """A layer request we cannot read; one line, fit for an HTTP 400 body."""


def layer_link(session_path: str) -> str:
    """The Link header value of a WHEP 201 for the session at `session_path`."""
    return f'<{session_path}/layer>; rel="{LINK_REL}"'


def rid_choice(rid: str) -> Choice:
    """The choice a rid names: "auto", or that layer (syntax checked)."""
    if rid == AUTO:
        return Choice()
    try:
        return Choice(rid=check_rid(rid, "layer"))
    except SimulcastError as error:
        raise LayerRequestError(str(error)) from None


def _dimension(body: dict, key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if type(value) is not int or not 0 < value <= MAX_DIMENSION:
        raise LayerRequestError(f"{key} must be an integer 1..{MAX_DIMENSION}")
    return value


# The draft's SVC fields and the Choice fields they set; layer ids are 0-7 (three bits).
SVC_FIELDS = {
    "spatialLayerId": "spatial",
    "temporalLayerId": "temporal",
    "maxSpatialLayerId": "max_spatial",
    "maxTemporalLayerId": "max_temporal",
}
MAX_LAYER_ID = 7


def _svc_fields(body: dict) -> dict[str, int]:
    """The SVC layer ids a request sets, as Choice fields."""
    found = {}
    for key, name in SVC_FIELDS.items():
        value = body.get(key)
        if value is None:
            continue
        if type(value) is not int or not 0 <= value <= MAX_LAYER_ID:
            raise LayerRequestError(f"{key} must be an integer 0..{MAX_LAYER_ID}")
        found[name] = value
    return found


def parse_layer_request(raw: bytes) -> tuple[str | None, Choice]:
    """(mediaId or None for every video track, the choice) from a layer POST body."""
    if len(raw) > MAX_LAYER_BODY:
        raise LayerRequestError(f"layer request larger than {MAX_LAYER_BODY} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise LayerRequestError("layer request is not JSON") from None
    if not isinstance(body, dict):
        raise LayerRequestError("layer request must be a JSON object")
    media_id = body.get("mediaId")
    if media_id is not None and (not isinstance(media_id, str) or len(media_id) > MAX_MEDIA_ID):
        raise LayerRequestError(f"mediaId must be a string of at most {MAX_MEDIA_ID} characters")
    rid = body.get("rid")
    if rid is not None and (not isinstance(rid, str) or len(rid) > MAX_RID_LENGTH + 4):
        raise LayerRequestError('rid must be a string: a layer\'s rid or "auto"')
    max_width, max_height = _dimension(body, "maxWidth"), _dimension(body, "maxHeight")
    svc = _svc_fields(body)
    if rid is None and max_width is None and max_height is None and not svc:
        raise LayerRequestError(
            "layer request needs rid, maxWidth, maxHeight or an SVC layer id (spatialLayerId, "
            "temporalLayerId, maxSpatialLayerId, maxTemporalLayerId)"
        )
    if rid is not None and rid != AUTO:
        if max_width is not None or max_height is not None or svc:
            raise LayerRequestError("a pinned rid takes no maxWidth, maxHeight or SVC layer id")
        return media_id, rid_choice(rid)
    if "spatial" in svc and "max_spatial" in svc:
        raise LayerRequestError("spatialLayerId pins the layer; it takes no maxSpatialLayerId")
    if "temporal" in svc and "max_temporal" in svc:
        raise LayerRequestError("temporalLayerId pins the layer; it takes no maxTemporalLayerId")
    return media_id, Choice(max_width=max_width, max_height=max_height, **svc)
