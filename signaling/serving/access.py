"""Who may do what, request by request: bearer tokens for streams, stats and sessions."""

from __future__ import annotations

from aiohttp import web

from signaling.security.auth import Authenticator, SessionOwners, bearer_token
from signaling.serving.plumbing import Rejection

AUTH = web.AppKey("auth", Authenticator)
OWNERS = web.AppKey("owners", SessionOwners)


def request_token(request: web.Request) -> str | None:
    return bearer_token(request.headers.get("Authorization"))


def unauthorized(token: str | None) -> Rejection:
    """401 with the RFC 6750 challenge; the reason never says why a given token failed."""
    if token is None:
        return Rejection(
            401, "bearer token required", {"WWW-Authenticate": 'Bearer realm="litesfu"'}
        )
    challenge = 'Bearer realm="litesfu", error="invalid_token"'
    return Rejection(401, "token not valid for this request", {"WWW-Authenticate": challenge})


def authorize(request: web.Request, token: str | None, stream: str, role: str) -> None:
    if not request.app[AUTH].allows(token, stream, role):
        raise unauthorized(token)


def authorize_stats(request: web.Request) -> None:
    token = request_token(request)
    if not request.app[AUTH].allows_stats(token):
        raise unauthorized(token)


def check_owner(request: web.Request, session_id: str) -> None:
    """With auth on, only the token that created a session may end or change it; the session
    URL alone is the capability when auth is off."""
    if not request.app[AUTH].enabled:
        return
    token = request_token(request)
    if not request.app[OWNERS].is_owner(session_id, token):
        raise unauthorized(token)
