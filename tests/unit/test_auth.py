"""Bearer tokens: static ones, signed per-stream ones, expiry, tampering and the mint command."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.launcher import ROOT
from signaling.security.auth import (
    Authenticator,
    bearer_token,
    main,
    mint,
    mint_room,
    verify,
)

SECRET = "correct horse battery staple"
NOW = 1_700_000_000.0


def authenticator(*, tokens: tuple[str, ...] = (), protect_stats: bool = False) -> Authenticator:
    return Authenticator(tokens, SECRET, protect_stats=protect_stats, clock=lambda: NOW)


def test_signed_token_opens_its_stream_and_role_only() -> None:
    auth = authenticator()
    token = mint(SECRET, "live/x", "publish", int(NOW) + 60)
    assert auth.allows(token, "live/x", "publish")
    assert not auth.allows(token, "live/x", "play")
    assert not auth.allows(token, "live/y", "publish")
    assert not auth.allows(token, "live", "publish")
    assert verify(SECRET, token, NOW) == {"stream": "live/x", "role": "publish", "exp": NOW + 60}


def test_expired_wrong_secret_and_missing_tokens_fail() -> None:
    auth = authenticator()
    assert not auth.allows(mint(SECRET, "live/x", "play", int(NOW)), "live/x", "play")
    assert not auth.allows(mint("other secret", "live/x", "play", int(NOW) + 60), "live/x", "play")
    assert not auth.allows(None, "live/x", "play")
    assert not auth.allows("", "live/x", "play")
    assert not auth.allows("x" * 10_000, "live/x", "play")


def test_tampered_payload_fails() -> None:
    token = mint(SECRET, "live/x", "play", int(NOW) + 60)
    prefix, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["stream"] = "live/y"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    auth = authenticator()
    assert not auth.allows(f"{prefix}.{forged}.{signature}", "live/y", "play")
    assert not auth.allows(f"{prefix}.{payload}.{signature[:-2]}", "live/x", "play")


def test_static_tokens_open_everything_and_auth_can_be_off() -> None:
    auth = authenticator(tokens=("alpha", "beta"))
    assert auth.allows("beta", "any/stream", "publish")
    assert not auth.allows("gamma", "any/stream", "publish")
    off = Authenticator()
    assert not off.enabled
    assert off.allows(None, "live/x", "publish")


def test_stats_are_open_unless_protected() -> None:
    publish = mint(SECRET, "live/x", "publish", int(NOW) + 60)
    stats = mint(SECRET, "*", "stats", int(NOW) + 60)
    assert authenticator().allows_stats(None)
    guarded = authenticator(tokens=("alpha",), protect_stats=True)
    assert not guarded.allows_stats(None)
    assert not guarded.allows_stats(publish)
    assert guarded.allows_stats(stats)
    assert guarded.allows_stats("alpha")
    assert not guarded.allows(stats, "live/x", "publish")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def", "abc.def"),
        ("bearer   abc", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_header(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@given(st.text(max_size=300))
def test_random_tokens_never_pass_or_raise(token: str) -> None:
    auth = authenticator(tokens=("a-static-token",))
    assert auth.allows(token, "live/x", "publish") == (token == "a-static-token")
    assert verify(SECRET, token, NOW) is None


def test_mint_command(capsys: pytest.CaptureFixture[str]) -> None:
    main(["mint", "--secret", SECRET, "--stream", "live/x", "--role", "play", "--ttl", "60"])
    token = capsys.readouterr().out.strip()
    claims = verify(SECRET, token, NOW)
    assert claims is not None and claims["stream"] == "live/x" and claims["role"] == "play"
    with pytest.raises(SystemExit):
        main(["mint", "--secret", SECRET, "--role", "publish"])  # publish needs a stream


def test_mint_runs_as_a_module() -> None:
    command = [sys.executable, "-m", "signaling.security.auth", "mint", "--stream", "live/x"]
    command += ["--role", "publish", "--ttl", "3600", "--secret", SECRET]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert Authenticator(secret=SECRET).allows(result.stdout.strip(), "live/x", "publish")


def test_token_roles_are_the_routers_roles():
    """The front checks roles without loading the media plane, by names that must match."""
    from sfu.routing import router
    from signaling.security import auth

    assert (auth.PUBLISH, auth.PLAY, auth.SUBSCRIBE) == (
        router.PUBLISH,
        router.PLAY,
        router.SUBSCRIBE,
    )


def signed(claims: dict) -> str:
    """A token signed under SECRET for any claims, as only a holder of the secret could."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signed_part = "lsfu1." + b64(json.dumps(claims).encode())
    mac = hmac.new(SECRET.encode(), signed_part.encode(), hashlib.sha256).digest()
    return f"{signed_part}.{b64(mac)}"


def test_a_room_token_publishes_its_participant_and_joins_only_if_it_may_subscribe() -> None:
    auth = authenticator()
    both = mint_room(SECRET, "standup", "ann", ("publish", "subscribe"), int(NOW) + 60)
    assert auth.allows(both, "standup/ann", "publish")
    assert auth.allows_join(both, "standup", "ann")
    assert not auth.allows(both, "standup/ann", "play")  # WHEP takes a stream token
    assert not auth.allows(both, "standup/bob", "publish")
    assert not auth.allows_join(both, "standup", "bob")
    assert not auth.allows_join(both, "other", "ann")
    assert not authenticator(protect_stats=True).allows_stats(both)
    publish_only = mint_room(SECRET, "standup", "obs", ("publish",), int(NOW) + 60)
    assert auth.allows(publish_only, "standup/obs", "publish")
    assert not auth.allows_join(publish_only, "standup", "obs")
    subscribe_only = mint_room(SECRET, "standup", "ann", ("subscribe",), int(NOW) + 60)
    assert not auth.allows(subscribe_only, "standup/ann", "publish")
    expired = mint_room(SECRET, "standup", "ann", ("subscribe",), int(NOW))
    assert not auth.allows_join(expired, "standup", "ann")
    # A stream token for the participant's stream joins no room; a static token joins any.
    assert not auth.allows_join(
        mint(SECRET, "standup/ann", "publish", int(NOW) + 60), "standup", "ann"
    )
    assert authenticator(tokens=("alpha",)).allows_join("alpha", "standup", "ann")
    assert Authenticator().allows_join(None, "standup", "ann")  # auth off


@pytest.mark.parametrize(
    "claims",
    [
        {"room": "r", "participant": "a", "roles": ["subscribe", "subscribe"]},
        {"room": "r", "participant": "a", "roles": ["play"]},
        {"room": "r", "participant": "a", "roles": []},
        {"room": "r", "participant": "a", "roles": "subscribe"},
        {"room": "r", "participant": "a/b", "roles": ["subscribe"]},
        {"room": "r/a", "participant": "b", "roles": ["subscribe"]},
        {"room": "", "participant": "a", "roles": ["subscribe"]},
        {"room": "r", "participant": "a" * 65, "roles": ["subscribe"]},
        {"room": "r", "roles": ["subscribe"]},
        {"room": 7, "participant": "a", "roles": ["subscribe"]},
    ],
)
def test_malformed_room_claims_fail_even_when_signed(claims: dict) -> None:
    token = signed({**claims, "exp": int(NOW) + 60})
    assert verify(SECRET, token, NOW) is None
    auth = authenticator()
    assert not auth.allows_join(token, "r", "a")
    assert not auth.allows(token, "r/a", "publish")
    with pytest.raises(ValueError):
        mint_room(SECRET, claims.get("room"), claims.get("participant"), claims["roles"], 1)  # type: ignore[arg-type]


def test_mint_command_makes_room_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["mint", "--secret", SECRET, "--room", "standup", "--participant", "ann"]
    main([*argv, "--role", "publish", "--role", "subscribe"])
    claims = verify(SECRET, capsys.readouterr().out.strip(), NOW)
    assert claims is not None
    assert (claims["room"], claims["participant"], claims["roles"]) == (
        "standup",
        "ann",
        ["publish", "subscribe"],
    )
    for bad in (
        [*argv, "--role", "play"],
        [*argv, "--role", "subscribe", "--stream", "live/x"],
        ["mint", "--secret", SECRET, "--room", "standup", "--role", "subscribe"],
        ["mint", "--secret", SECRET, "--stream", "live/x", "--role", "subscribe"],
        ["mint", "--secret", SECRET, "--stream", "live/x", "--role", "play", "--role", "publish"],
    ):
        with pytest.raises(SystemExit):
            main(bad)
