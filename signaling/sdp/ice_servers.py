"""STUN/TURN servers offered to clients as `Link: rel="ice-server"` headers (RFC 9725 §4.6).

A client behind a symmetric NAT or a UDP-blocking firewall can reach an ICE-lite server only
through a TURN relay; WHIP/WHEP clients learn of one from the 201's Link headers. Credentials
are either static (`--ice-server-username/--ice-server-credential`) or short-lived ones minted
per answer from a secret shared with the TURN server, the scheme coturn calls
`use-auth-secret` ("TURN REST API"): username `<expiry unix time>:<name>`, password
base64(HMAC-SHA1(secret, username)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

# RFC 7064 / RFC 7065 URIs: scheme, host (name, IPv4 or [IPv6]), optional port and, for TURN,
# an optional transport. Anything else is refused at start-up, never sent to clients.
_URI = re.compile(
    r"(?P<scheme>stuns?|turns?):"
    r"(?P<host>[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:\?transport=(?P<transport>udp|tcp))?"
)
# A username or credential goes inside a quoted Link parameter: no quotes, backslashes or
# control characters, and a length no TURN server needs more than.
_PARAMETER = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]{1,256}")
TURN_REST_TTL = 24 * 3600  # seconds a minted TURN credential stays valid, coturn's usual


class IceServerError(ValueError):
    """A configured ICE server that clients could not use; one line for the start-up error."""


@dataclass(frozen=True)
class IceServers:
    """The configured servers and how their credentials are made."""

    uris: tuple[str, ...] = ()
    username: str | None = None
    credential: str | None = None
    turn_secret: str | None = None
    turn_ttl: int = TURN_REST_TTL

    def __post_init__(self) -> None:
        for uri in self.uris:
            match = _URI.fullmatch(uri)
            shown = f"--ice-server {uri[:80]!r}"
            if match is None:
                raise IceServerError(f"{shown} is not a stun:, turn: or turns: URI")
            if match["port"] is not None and not 0 < int(match["port"]) < 65536:
                raise IceServerError(f"{shown} has a bad port")
            if match["transport"] is not None and not match["scheme"].startswith("turn"):
                raise IceServerError(f"{shown}: only TURN takes ?transport=")
        for name, value in (("username", self.username), ("credential", self.credential)):
            if value is not None and not _PARAMETER.fullmatch(value):
                raise IceServerError(f"--ice-server-{name} must be 1-256 printable characters")
        if (self.username is None) != (self.credential is None):
            raise IceServerError("--ice-server-username and --ice-server-credential go together")
        if self.turn_secret is not None and self.credential is not None:
            raise IceServerError("--turn-secret and --ice-server-credential exclude each other")

    def link_headers(self, now: float, name: str = "litesfu") -> list[str]:
        """One Link header value per server; TURN servers carry credentials, STUN none."""
        credentials = self._credentials(now, name)
        links = []
        for uri in self.uris:
            link = f'<{uri}>; rel="ice-server"'
            if uri.startswith("turn") and credentials is not None:
                username, credential = credentials
                link += (
                    f'; username="{username}"; credential="{credential}"'
                    '; credential-type="password"'
                )
            links.append(link)
        return links

    def _credentials(self, now: float, name: str) -> tuple[str, str] | None:
        if self.turn_secret is not None:
            return turn_rest_credentials(self.turn_secret, name, int(now) + self.turn_ttl)
        if self.username is not None and self.credential is not None:
            return self.username, self.credential
        return None


def turn_rest_credentials(secret: str, name: str, expires: int) -> tuple[str, str]:
    """(username, password) valid until `expires` (Unix time) on a TURN server that shares
    `secret`: the server recomputes the HMAC from the username and checks the time."""
    username = f"{expires}:{name}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()
