"""Bearer-token authorization for WHIP, WHEP, session URLs and (optionally) the stats API.

Two kinds of token are accepted, either or both configured:

- static tokens (``--auth-token``, ``SFU_AUTH_TOKENS``): opaque strings that allow everything;
- signed tokens (``--auth-secret``, ``SFU_AUTH_SECRET``), scoped to one stream and one role::

      lsfu1.<payload>.<signature>

  ``payload`` is the unpadded base64url encoding of a JSON object
  ``{"stream": "live/x", "role": "publish" | "play" | "stats", "exp": <unix seconds>}`` and
  ``signature`` the unpadded base64url HMAC-SHA256, keyed with the secret, of the ASCII text
  ``lsfu1.<payload>``. A token is good until ``exp``, for its stream and role only; a
  ``stats`` token opens the stats API and nothing else (its stream is ignored).

A room token has the same form with the payload ``{"room": "R", "participant": "P", "roles":
["publish", "subscribe"], "exp": ...}``, one role or both: ``publish`` is a WHIP publish of the
stream ``R/P``, ``subscribe`` a join of room R as P (its subscribe session). A stream token for
``R/P`` still publishes or plays that stream, but joins no room: joining lets its holder receive
every participant, which a publish token minted for an OBS guest must not.

Mint one with ``python -m signaling.security.auth mint --secret S --stream live/x --role publish
--ttl 3600``, or ``mint --secret S --room R --participant P --role publish --role subscribe``.
Every failure looks the same to the client, so a token says nothing about streams it was not
made for.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence

PREFIX = "lsfu1"
# The roles a token grants. publish and play equal sfu.routing.router's names, so the --workers
# front, which loads no media plane, can check them too (tests/unit/test_auth.py holds them equal).
PUBLISH, PLAY, STATS = ROLES = ("publish", "play", "stats")
SUBSCRIBE = "subscribe"  # a room join; sfu.routing.router's name too
ROOM_ROLES = (PUBLISH, SUBSCRIBE)
MAX_NAME_LENGTH = 64  # of a room or participant name in a token, as in a stream name's part
MAX_TOKEN_LENGTH = 4096  # longer tokens are refused before any work is done on them
ALL_ACCESS: dict = {"stream": "*", "role": "*"}  # what a static token grants


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, signed_part: str) -> str:
    mac = hmac.new(secret.encode(), signed_part.encode("ascii"), hashlib.sha256)
    return _b64encode(mac.digest())


def mint(secret: str, stream: str, role: str, expires: int) -> str:
    """A signed token for `role` on `stream`, valid until the unix time `expires`."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return _signed(secret, {"stream": stream, "role": role, "exp": int(expires)})


def mint_room(secret: str, room: str, participant: str, roles: Sequence[str], expires: int) -> str:
    """A signed room token: `roles` (publish, subscribe or both) of `participant` in `room`."""
    claims = {"room": room, "participant": participant, "roles": list(roles), "exp": int(expires)}
    if not _room_claims(claims):
        raise ValueError(
            f"a room token names a room and a participant (1 to {MAX_NAME_LENGTH} characters, "
            f"no /) and roles among {', '.join(ROOM_ROLES)}, each once"
        )
    return _signed(secret, claims)


def _signed(secret: str, claims: dict) -> str:
    payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    signed_part = f"{PREFIX}.{payload}"
    return f"{signed_part}.{_signature(secret, signed_part)}"


def _is_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME_LENGTH and "/" not in value


def _room_claims(claims: dict) -> bool:
    """Whether `claims` are a room token's: names, and roles of a room each at most once."""
    roles = claims.get("roles")
    return (
        _is_name(claims.get("room"))
        and _is_name(claims.get("participant"))
        and isinstance(roles, list)
        and 0 < len(roles) <= len(ROOM_ROLES)
        and all(role in ROOM_ROLES for role in roles)
        and len(set(roles)) == len(roles)
    )


def _stream_claims(claims: dict) -> bool:
    return isinstance(claims.get("stream"), str) and claims.get("role") in ROLES


def verify(secret: str, token: str, now: float) -> dict | None:
    """The claims of a well-formed, correctly signed, unexpired token; None otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not token.isascii():
        return None
    expected = _signature(secret, f"{parts[0]}.{parts[1]}")
    if not hmac.compare_digest(expected.encode(), parts[2].encode()):
        return None
    try:
        claims = json.loads(_b64decode(parts[1]))
    except ValueError:
        return None
    if (
        not isinstance(claims, dict)
        or not (_stream_claims(claims) or _room_claims(claims))
        or not isinstance(claims.get("exp"), int)
        or claims["exp"] <= now
    ):
        return None
    return claims


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer ...` header (RFC 6750 §2.1), if any."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return None
    return credentials


class Authenticator:
    """Decides whether a bearer token may publish, play or read stats; off when unconfigured."""

    def __init__(
        self,
        tokens: Iterable[str] = (),
        secret: str | None = None,
        *,
        protect_stats: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._tokens = [token.encode() for token in tokens if token]
        self._secret = secret or None
        self.protect_stats = protect_stats
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self._tokens) or self._secret is not None

    def _is_static(self, token: str) -> bool:
        candidate = token.encode("utf-8", "surrogateescape")
        # Compare against every token so the time taken does not depend on which one matched.
        matches = [hmac.compare_digest(candidate, known) for known in self._tokens]
        return any(matches)

    def _claims(self, token: str | None) -> dict | None:
        """ALL_ACCESS for a static token, the claims of a valid signed one, else None."""
        if token is None or len(token) > MAX_TOKEN_LENGTH:
            return None
        if self._is_static(token):
            return ALL_ACCESS
        if self._secret is None:
            return None
        return verify(self._secret, token, self._clock())

    def allows(self, token: str | None, stream: str, role: str) -> bool:
        """True when auth is off, or the token opens `role` ("publish"/"play") on `stream`:
        a stream token for it, or for a publish of "R/P" a room token of P in R."""
        if not self.enabled:
            return True
        claims = self._claims(token)
        if claims is None:
            return False
        if "roles" in claims:
            return role == PUBLISH and _in_room(claims, stream, PUBLISH)
        return claims is ALL_ACCESS or (claims["role"] == role and claims["stream"] == stream)

    def allows_join(self, token: str | None, room: str, participant: str) -> bool:
        """True when auth is off, or the token is static or a room token that lets
        `participant` subscribe in `room`."""
        if not self.enabled:
            return True
        claims = self._claims(token)
        if claims is None:
            return False
        return claims is ALL_ACCESS or _in_room(claims, f"{room}/{participant}", SUBSCRIBE)

    def allows_stats(self, token: str | None) -> bool:
        """True when the stats API is open, or the token is static or a `stats` token."""
        if not (self.enabled and self.protect_stats):
            return True
        claims = self._claims(token)
        return claims is not None and (claims is ALL_ACCESS or claims.get("role") == STATS)


def _in_room(claims: dict, stream: str, role: str) -> bool:
    """A room token's claims grant `role` to the participant whose stream is `stream`."""
    return (
        "roles" in claims
        and role in claims["roles"]
        and stream == f"{claims['room']}/{claims['participant']}"
    )


def token_digest(token: str | None) -> bytes:
    """What is kept of the token that created a session: enough to recognise it, not to use it."""
    return hashlib.sha256((token or "").encode("utf-8", "surrogateescape")).digest()


class SessionOwners:
    """The digest of the token that created each session, so that token alone ends or changes
    it; the digests of sessions the router no longer knows are pruned on each creation."""

    def __init__(self) -> None:
        self._digests: dict[str, bytes] = {}

    def remember(self, session_id: str, token: str | None) -> None:
        self._digests[session_id] = token_digest(token)

    def is_owner(self, session_id: str, token: str | None) -> bool:
        known = self._digests.get(session_id)
        return (
            token is not None
            and known is not None
            and hmac.compare_digest(known, token_digest(token))
        )

    def prune(self, known: Callable[[str], bool]) -> None:
        for session_id in [s for s in self._digests if not known(s)]:
            del self._digests[session_id]

    def __len__(self) -> int:
        return len(self._digests)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m signaling.security.auth mint ...`: print a signed token."""
    parser = argparse.ArgumentParser(prog="python -m signaling.security.auth")
    commands = parser.add_subparsers(dest="command", required=True)
    mint_cmd = commands.add_parser("mint", help="print a signed token")
    mint_cmd.add_argument(
        "--secret",
        default=os.environ.get("SFU_AUTH_SECRET"),
        help="the server's --auth-secret (default: SFU_AUTH_SECRET)",
    )
    mint_cmd.add_argument("--stream", default="*", help="stream name, e.g. live/x")
    mint_cmd.add_argument("--room", help="a room token: the room, with --participant")
    mint_cmd.add_argument("--participant", help="a room token: the participant's name")
    mint_cmd.add_argument(
        "--role",
        choices=(*ROLES, SUBSCRIBE),
        action="append",
        required=True,
        help="the role; a room token takes publish, subscribe or both (--role twice)",
    )
    mint_cmd.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("--secret (or SFU_AUTH_SECRET) is required")
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    expires = int(time.time()) + args.ttl
    if args.room is not None or args.participant is not None:
        if args.stream != "*":
            parser.error("a room token names --room and --participant, not --stream")
        try:
            print(mint_room(args.secret, args.room, args.participant, args.role, expires))
        except ValueError as exc:
            parser.error(str(exc))
        return
    if len(args.role) != 1 or args.role[0] == SUBSCRIBE:
        parser.error("a stream token has one --role: publish, play or stats")
    if args.role[0] != STATS and args.stream == "*":
        parser.error("--stream is required for publish and play tokens")
    print(mint(args.secret, args.stream, args.role[0], expires))


if __name__ == "__main__":
    main()
