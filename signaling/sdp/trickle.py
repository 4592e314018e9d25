"""ICE over HTTP PATCH (RFC 9725 §4.3): trickled candidates, ICE restarts and entity tags.

An ICE-lite server never checks towards the client, so trickled candidates are read, counted
and otherwise ignored. An ICE restart (a fragment with a new ice-ufrag) gives the session new
credentials on both sides; DTLS and SRTP carry on, so media resumes as soon as the client's
checks succeed.
Each session has an entity tag that names its current ICE credentials; a restart replaces it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Container, Sequence
from dataclasses import dataclass, field

from signaling.sdp.answer import ServerCandidate, candidate_lines
from signaling.serving.media_types import SDPFRAG_TYPE as SDPFRAG_TYPE  # the type of what it parses

_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")  # RFC 8839 §5.4: ice-char, 4 to 256
_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")  # RFC 8839 §5.4: ice-char, 22 to 256
_FOUNDATION = re.compile(r"[A-Za-z0-9+/]{1,32}")
# An address as clients write it: IPv4, IPv6 (bare or in brackets, as Eyevinn's client sends
# it) or an mDNS name ending in .local (browsers hiding their addresses, RFC 8839 §5.1 allows
# an FQDN).
_ADDRESS = re.compile(r"\[?[0-9A-Fa-f:.]{2,45}\]?|[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,7}")
TRANSPORTS = ("udp", "tcp")
TYPES = ("host", "srflx", "prflx", "relay")
# Candidate lines read from one fragment; the rest are counted as ignored. A browser trickles a
# handful per m-line, so this never bothers a real client and bounds the work of a PATCH.
MAX_CANDIDATES = 64


class FragmentError(ValueError):
    """A PATCH body that is not a trickle-ice-sdpfrag; one line, fit for an HTTP 400 body."""


@dataclass(frozen=True)
class Candidate:
    """One trickled candidate, as far as a server can read it (RFC 8839 §5.1)."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str  # without brackets
    port: int
    kind: str  # host, srflx, prflx or relay


@dataclass
class IceFragment:
    """What a trickle-ice-sdpfrag says about ICE: credentials if present, and its candidates.

    Candidate lines the server cannot read are counted in `ignored`, never fatal: clients
    write forms the grammar does not (component 0, bracketed IPv6), and an ICE-lite server has
    no use for client candidates beyond counting them.
    """

    ufrag: str | None = None
    pwd: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    ignored: int = 0
    end_of_candidates: bool = False


def parse_candidate(value: str) -> Candidate | None:
    """The candidate of an a=candidate value, or None when it is not one we can read."""
    parts = value.split()
    if len(parts) < 8 or parts[6] != "typ":
        return None
    foundation, component, transport, priority, address, port, _, kind = parts[:8]
    transport, kind = transport.lower(), kind.lower()
    readable = (
        _FOUNDATION.fullmatch(foundation)
        and component.isdigit()
        and int(component) <= 256
        and transport in TRANSPORTS
        and priority.isdigit()
        and len(priority) <= 10
        and _ADDRESS.fullmatch(address)
        and port.isdigit()
        and int(port) <= 65535
        and kind in TYPES
    )
    if not readable:
        return None
    return Candidate(
        foundation,
        int(component),
        transport,
        int(priority),
        address.removeprefix("[").removesuffix("]"),
        int(port),
        kind,
    )


def _set_once(current: str | None, value: str, what: str) -> str:
    if current is not None and current != value:
        raise FragmentError(f"fragment carries two different {what} values")
    return value


def parse_sdpfrag(text: str) -> IceFragment:
    """Parse a trickle-ice-sdpfrag body (RFC 8840 §3); FragmentError if it is not one.

    Credentials must be well-formed (they start an ICE restart); candidates are read
    liberally, and one the server cannot read is ignored rather than failing the PATCH.
    """
    fragment = IceFragment()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        kind, eq, value = line.partition("=")
        if not eq or kind not in ("a", "m", "c"):
            raise FragmentError(f"line {number}: only a=, m= and c= lines belong in a fragment")
        if kind != "a":
            continue
        name, _, attr = value.partition(":")
        if name == "ice-ufrag":
            if not _UFRAG.fullmatch(attr):
                raise FragmentError(f"line {number}: bad ice-ufrag")
            fragment.ufrag = _set_once(fragment.ufrag, attr, "ice-ufrag")
        elif name == "ice-pwd":
            if not _PWD.fullmatch(attr):
                raise FragmentError(f"line {number}: bad ice-pwd")
            fragment.pwd = _set_once(fragment.pwd, attr, "ice-pwd")
        elif name == "candidate":
            candidate = None
            if len(fragment.candidates) < MAX_CANDIDATES:
                candidate = parse_candidate(attr)
            if candidate is None:
                fragment.ignored += 1
            else:
                fragment.candidates.append(candidate)
        elif name == "end-of-candidates":
            fragment.end_of_candidates = True
    return fragment


def render_restart(
    ufrag: str,
    pwd: str,
    kind: str,
    mid: str,
    candidates: list[ServerCandidate],
    tcp_ports: Sequence[int] = (),
) -> str:
    """The 200 body of an ICE restart: the server's new credentials and its candidates."""
    lines = [
        "a=ice-lite",
        f"a=ice-ufrag:{ufrag}",
        f"a=ice-pwd:{pwd}",
        f"m={kind} 9 UDP/TLS/RTP/SAVPF 0",
        f"a=mid:{mid}",
        *candidate_lines(candidates, tcp_ports),
    ]
    return "\r\n".join(lines) + "\r\n"


class EntityTags:
    """The current entity tag of each live session (quoted, as sent in ETag)."""

    def __init__(self) -> None:
        self._tags: dict[str, str] = {}

    def renew(self, session_id: str) -> str:
        """A fresh tag for the session's new ICE credentials."""
        tag = f'"{secrets.token_hex(8)}"'
        self._tags[session_id] = tag
        return tag

    def matches(self, session_id: str, if_match: str) -> bool:
        """RFC 9110 §13.1.1: "*" or the current tag (strong comparison) in the list."""
        current = self._tags.get(session_id)
        for candidate in if_match.split(","):
            candidate = candidate.strip()
            if candidate == "*" or (current is not None and candidate == current):
                return True
        return False

    def forget(self, session_id: str) -> None:
        self._tags.pop(session_id, None)

    def prune(self, live: Container[str]) -> None:
        """Drop the tags of sessions that have ended."""
        for session_id in [s for s in self._tags if s not in live]:
            del self._tags[session_id]

    def __len__(self) -> int:
        return len(self._tags)
