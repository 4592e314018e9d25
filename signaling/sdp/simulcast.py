"""Simulcast offers (RFC 8853 a=simulcast, RFC 8851 a=rid): which layers a publisher sends.

Browsers and OBS name each layer with a rid and tag its packets with the RID header extension
(RFC 8852); the answer must accept every offered layer (OBS gives up on fewer), so an offer with
more layers than we carry is refused whole rather than trimmed.
"""

from __future__ import annotations

import re

from signaling.sdp.parse import MediaSection

MAX_LAYERS = 4  # OBS offers up to 4; browsers 3
MAX_RID_LENGTH = 16  # RFC 8851 sets no limit; real clients use 1-3 characters
_RID = re.compile(r"[A-Za-z0-9_-]+\Z")


class SimulcastError(ValueError):
    """A simulcast offer we cannot accept as offered; one line, fit for an HTTP 400 body."""


def check_rid(rid: str, where: str) -> str:
    if not 0 < len(rid) <= MAX_RID_LENGTH or not _RID.match(rid):
        raise SimulcastError(
            f"{where}: rid {rid[:20]!r} is not 1-{MAX_RID_LENGTH} of A-Z a-z 0-9 _ -"
        )
    return rid


def _send_rids(section: MediaSection) -> list[str]:
    """The rids the section declares with a=rid:<id> send, in order, checked."""
    declared: list[str] = []
    for value in section.rids:
        rid, _, rest = value.partition(" ")
        direction = rest.split(" ", 1)[0]
        if direction != "send":
            continue
        if check_rid(rid, "a=rid") not in declared:
            declared.append(rid)
    return declared


def offered_layers(section: MediaSection) -> tuple[str, ...]:
    """The rids of a publisher's simulcast m-line in a=simulcast order; () without simulcast.

    Each ';'-separated stream takes its first alternative; a paused one ('~') is still a
    layer the client may resume. Every rid must be declared with a=rid ... send."""
    if section.simulcast is None:
        return ()
    parts = section.simulcast.split()
    if len(parts) < 2 or parts[0] != "send":
        raise SimulcastError("a=simulcast must start with 'send' for a publisher")
    declared = _send_rids(section)
    streams = parts[1].split(";")
    if len(streams) > MAX_LAYERS:
        raise SimulcastError(
            f"a=simulcast offers {len(streams)} layers; this server carries at most {MAX_LAYERS}"
        )
    layers: list[str] = []
    for stream in streams:
        rid = stream.split(",", 1)[0].removeprefix("~")
        check_rid(rid, "a=simulcast")
        if rid not in declared:
            raise SimulcastError(f"a=simulcast names rid {rid!r} that no a=rid ... send declares")
        if rid in layers:
            raise SimulcastError(f"a=simulcast names rid {rid!r} twice")
        layers.append(rid)
    return tuple(layers)


def answer_lines(rids: tuple[str, ...]) -> list[str]:
    """The a=rid and a=simulcast lines that accept every offered layer, as a receiver."""
    if not rids:
        return []
    return [f"a=rid:{rid} recv" for rid in rids] + [f"a=simulcast:recv {';'.join(rids)}"]
