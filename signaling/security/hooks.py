"""HTTP hooks in the manner of SRS's http_hooks: ask an outside service before admitting a peer.

Before a publish, play or room join creates any state, the server POSTs JSON such as
``{"action": "on_publish", "stream": "live/x", "client_ip": "203.0.113.7", "token": "..."}``
(``token`` only when the client sent one; a join is ``on_subscribe`` of ``ROOM/PARTICIPANT``)
to the hook URL. A 2xx answer admits the peer unless
its body is JSON with a non-zero ``code`` (a bare non-zero number counts too); its ``msg`` or
``reason`` becomes the refusal. Any other status refuses, with the first line of the body as the
reason. A hook that cannot be reached within the timeout makes the request fail as unavailable,
so an outage never silently opens the server.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp

log = logging.getLogger(__name__)

HOOK_TIMEOUT = 3.0  # seconds for the whole hook request
MAX_REASON = 200  # characters of the hook's reason passed on to the client


class HookRejected(Exception):
    """The hook said no; the message is its reason."""


class HookUnavailable(Exception):
    """The hook could not be asked (connection refused, timeout, bad answer framing)."""


def _one_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:MAX_REASON]


def _refusal(body: str) -> str | None:
    """The reason a 2xx body refuses (non-zero code), or None when it admits."""
    try:
        answer = json.loads(body) if body.strip() else 0
    except ValueError:
        return None
    if isinstance(answer, dict):
        code = answer.get("code", 0)
        reason = answer.get("msg") or answer.get("reason") or ""
    else:
        code, reason = answer, ""
    if code in (0, "0", None):
        return None
    return _one_line(str(reason)) or f"code {code}"


class HttpHooks:
    """Calls the configured hook URL; with no URL every check passes without a request."""

    def __init__(self, url: str | None = None, timeout: float = HOOK_TIMEOUT) -> None:
        self.url = url or None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    async def check(
        self, action: str, stream: str, client_ip: str | None, token: str | None
    ) -> None:
        """Ask the hook about `action`; HookRejected or HookUnavailable when it does not admit."""
        if self.url is None:
            return
        event: dict[str, str | None] = {"action": action, "stream": stream, "client_ip": client_ip}
        if token is not None:
            event["token"] = token
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._http.post(self.url, json=event) as response:
                body = await response.text(errors="replace")
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise HookUnavailable(f"{action} hook unreachable: {type(exc).__name__}") from exc
        if not 200 <= status < 300:
            raise HookRejected(_one_line(body) or f"{action} hook answered HTTP {status}")
        reason = _refusal(body)
        if reason is not None:
            raise HookRejected(reason)

    async def notify(self, action: str, stream: str, fields: dict[str, object]) -> None:
        """Tell the hook of something done (on_record_done); its answer changes nothing, and
        a hook that cannot be reached costs one log line."""
        if self.url is None:
            return
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        try:
            event = {"action": action, "stream": stream, **fields}
            async with self._http.post(self.url, json=event) as response:
                await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("%s hook unreachable: %s", action, type(exc).__name__)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
