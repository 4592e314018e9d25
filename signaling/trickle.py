"""ICE over HTTP PATCH (RFC 9725 §4.3): trickled candidates, ICE restarts and entity tags.

An ICE-lite server never checks towards the client, so trickled candidates are validated and
ignored. An ICE restart (a fragment with a new ice-ufrag) gives the session new credentials on
both sides; DTLS and SRTP carry on, so media resumes as soon as the client's checks succeed.
Each session has an entity tag that names its current ICE credentials; a restart replaces it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Container
from dataclasses import dataclass, field

from signaling.answer import _candidate_lines

SDPFRAG_TYPE = "application/trickle-ice-sdpfrag"

_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")  # RFC 8839 §5.4: ice-char, 4 to 256
_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")  # RFC 8839 §5.4: ice-char, 22 to 256
_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 8866 token
_FOUNDATION = re.compile(r"[A-Za-z0-9+/]{1,32}")


class FragmentError(ValueError):
    """A PATCH body that is not a trickle-ice-sdpfrag; one line, fit for an HTTP 400 body."""


@dataclass
class IceFragment:
    """What a trickle-ice-sdpfrag says about ICE: credentials if present, and its candidates."""

    ufrag: str | None = None
    pwd: str | None = None
    candidates: list[str] = field(default_factory=list)
    end_of_candidates: bool = False


def _check_candidate(value: str) -> None:
    """RFC 8839 §5.1 grammar up to the candidate type; extensions after it are not checked."""
    parts = value.split()
    if len(parts) < 8 or parts[6] != "typ":
        raise FragmentError(
            "a=candidate needs foundation, component, transport, priority, "
            "address, port, typ and a type"
        )
    foundation, component, transport, priority, address, port, _, kind = parts[:8]
    ok = (
        _FOUNDATION.fullmatch(foundation)
        and component.isdigit()
        and 1 <= int(component) <= 256
        and _TOKEN.fullmatch(transport)
        and priority.isdigit()
        and len(priority) <= 10
        and _TOKEN.fullmatch(address)
        and port.isdigit()
        and int(port) <= 65535
        and _TOKEN.fullmatch(kind)
    )
    if not ok:
        raise FragmentError(f"malformed a=candidate: {value[:80]!r}")


def _set_once(current: str | None, value: str, what: str) -> str:
    if current is not None and current != value:
        raise FragmentError(f"fragment carries two different {what} values")
    return value


def parse_sdpfrag(text: str) -> IceFragment:
    """Parse and validate a trickle-ice-sdpfrag body (RFC 8840 §3); FragmentError if bad."""
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
            _check_candidate(attr)
            fragment.candidates.append(attr)
        elif name == "end-of-candidates":
            fragment.end_of_candidates = True
    return fragment


def render_restart(
    ufrag: str, pwd: str, kind: str, mid: str, candidates: list[tuple[str, int]]
) -> str:
    """The 200 body of an ICE restart: the server's new credentials and its candidates."""
    lines = [
        "a=ice-lite",
        f"a=ice-ufrag:{ufrag}",
        f"a=ice-pwd:{pwd}",
        f"m={kind} 9 UDP/TLS/RTP/SAVPF 0",
        f"a=mid:{mid}",
        *_candidate_lines(candidates),
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
