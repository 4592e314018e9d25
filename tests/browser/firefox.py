"""Debian's firefox-esr driven over WebDriver BiDi, with no geckodriver and no Playwright.

Firefox's built-in remote agent (`--remote-debugging-port`) speaks BiDi: JSON commands and
events over one websocket, which aiohttp's client opens. The client runs its asyncio loop on
a thread of its own so that tests call it synchronously, side by side with Playwright's sync
API (which refuses to run inside an asyncio loop). Every wait is bounded, and the browser's
process group is always killed at the end.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp

FIREFOX = Path("/usr/bin/firefox-esr")
START_S = 40  # profile creation and the first window, on 2 busy cores
COMMAND_S = 30  # any single BiDi command, navigation included
MAX_MESSAGE = 64 * 1024 * 1024  # screenshots arrive base64-encoded in one message

# A throwaway profile: fake camera and microphone granted without a prompt, and nothing that
# would reach for the network (the machine has none) or show a first-run page. ICE settings
# are deliberately stock: no media.peerconnection.ice.loopback.
PROFILE_PREFS: dict[str, bool | int | str] = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    "media.autoplay.default": 0,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "startup.homepage_welcome_url": "",
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "browser.search.update": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "browser.newtabpage.enabled": False,
}


class BidiError(RuntimeError):
    """A BiDi command answered with an error, or the browser went away."""


def user_js(prefs: dict[str, bool | int | str]) -> str:
    """The text of a profile's user.js setting `prefs`."""
    return "".join(
        f"user_pref({json.dumps(name)}, {json.dumps(value)});\n" for name, value in prefs.items()
    )


def from_remote(value: dict[str, Any]) -> Any:
    """A BiDi RemoteValue as plain Python: JSON-like types, anything else by its type name."""
    kind = value.get("type")
    if kind in ("undefined", "null"):
        return None
    if kind == "number":
        number = value["value"]
        return float(number) if isinstance(number, str) else number  # NaN, Infinity, -0
    if kind in ("string", "boolean", "bigint"):
        return value["value"]
    if kind in ("array", "set"):
        return [from_remote(item) for item in value.get("value", [])]
    if kind in ("object", "map"):
        return {
            key if isinstance(key, str) else str(from_remote(key)): from_remote(item)
            for key, item in value.get("value", [])
        }
    return f"<{kind}>"


class _Connection:
    """One BiDi websocket: commands matched to answers by id, events handed to a callback."""

    def __init__(self, on_event: Callable[[str, dict[str, Any]], None]) -> None:
        self.on_event = on_event
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None

    async def open(self, url: str) -> None:
        self.http = aiohttp.ClientSession()
        self.ws = await asyncio.wait_for(self.http.ws_connect(url, max_msg_size=MAX_MESSAGE), 10)
        self.reader = asyncio.create_task(self._read())

    async def send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if self.ws is None or self.ws.closed:
            raise BidiError(f"{method}: the BiDi connection is closed")
        command_id = next(self.ids)
        answer = asyncio.get_running_loop().create_future()
        self.pending[command_id] = answer
        try:
            await self.ws.send_json({"id": command_id, "method": method, "params": params})
            message = await asyncio.wait_for(answer, COMMAND_S)
        except asyncio.TimeoutError:
            raise BidiError(f"{method}: no answer from firefox in {COMMAND_S} s") from None
        finally:
            self.pending.pop(command_id, None)
        if message.get("type") == "error":
            raise BidiError(f"{method}: {message.get('error')}: {message.get('message')}")
        return message.get("result", {})

    async def _read(self) -> None:
        assert self.ws is not None
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            message = json.loads(frame.data)
            if message.get("type") == "event":
                self.on_event(message.get("method", ""), message.get("params", {}))
            elif (answer := self.pending.get(message.get("id"))) and not answer.done():
                answer.set_result(message)
        for answer in self.pending.values():
            if not answer.done():
                answer.set_exception(BidiError("the browser closed the BiDi connection"))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.reader, 5)
        if self.http is not None:
            await self.http.close()


class FirefoxTab:
    """One top-level browsing context, with the few calls tests make on Playwright pages."""

    def __init__(self, firefox: Firefox, context: str) -> None:
        self.firefox = firefox
        self.context = context
        self.console: list[str] = []  # "level: text", like the Chromium tests' page logs
        self.page_errors: list[str] = []  # uncaught exceptions

    def goto(self, url: str) -> None:
        self.firefox.command(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    def evaluate(self, function: str, *args: str | int | float | bool | None) -> Any:
        """Call a JS function (source text) with JSON-like args; its (awaited) result."""
        result = self.firefox.command(
            "script.callFunction",
            {
                "functionDeclaration": function,
                "arguments": [_to_local(arg) for arg in args],
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
        )
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            raise BidiError(f"page threw: {details.get('text', details)}")
        return from_remote(result["result"])

    def click(self, selector: str) -> None:
        found = self.evaluate(
            "sel => { const el = document.querySelector(sel); el?.click(); return Boolean(el); }",
            selector,
        )
        if not found:
            raise BidiError(f"no element matches {selector!r}")

    def text_content(self, selector: str) -> str | None:
        return self.evaluate("sel => document.querySelector(sel)?.textContent ?? null", selector)

    def screenshot(self, path: str, full_page: bool = True) -> None:
        """A PNG of the document (whole page when `full_page`, else the viewport)."""
        origin = "document" if full_page else "viewport"
        result = self.firefox.command(
            "browsingContext.captureScreenshot", {"context": self.context, "origin": origin}
        )
        Path(path).write_bytes(base64.b64decode(result["data"]))

    def close(self) -> None:
        self.firefox.tabs.pop(self.context, None)
        with contextlib.suppress(BidiError):
            self.firefox.command("browsingContext.close", {"context": self.context})


def _to_local(value: str | int | float | bool | None) -> dict[str, Any]:
    """A BiDi LocalValue for a primitive argument."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, (int, float)):
        return {"type": "number", "value": value}
    return {"type": "string", "value": value}


class Firefox:
    """A headless firefox-esr with a throwaway profile, and its BiDi session."""

    def __init__(self, extra_prefs: dict[str, bool | int | str] | None = None) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="litesfu-firefox-"))
        (self.profile / "user.js").write_text(user_js({**PROFILE_PREFS, **(extra_prefs or {})}))
        self.log_path = self.profile / "firefox.log"
        self.tabs: dict[str, FirefoxTab] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.version = "unknown"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.connection = _Connection(self._on_event)
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    str(FIREFOX),
                    "--headless",
                    "--no-remote",
                    "--remote-debugging-port=0",
                    "--profile",
                    str(self.profile),
                    "about:blank",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MOZ_HEADLESS": "1"},
                start_new_session=True,  # its own process group, so close() ends all of it
            )
        url = self._wait_for_agent()
        self._run(self.connection.open(url + "/session"))
        session = self.command("session.new", {"capabilities": {}})
        capabilities = session.get("capabilities", {})
        self.version = f"{capabilities.get('browserName')} {capabilities.get('browserVersion')}"
        self.command("session.subscribe", {"events": ["log.entryAdded"]})

    def _wait_for_agent(self) -> str:
        """The agent's websocket URL, from the line Firefox prints once it listens."""
        assert self.process is not None
        for _ in range(START_S * 10):
            found = re.search(r"WebDriver BiDi listening on (ws://\S+)", self.log())
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                raise BidiError(f"firefox exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise BidiError(f"firefox's remote agent did not start in {START_S} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(COMMAND_S + 5)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BidiError("no answer from firefox in time") from None

    def command(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one BiDi command and wait (bounded) for its result."""
        return self._run(self.connection.send(method, params))

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method != "log.entryAdded":
            return
        tab = self.tabs.get(params.get("source", {}).get("context", ""))
        if tab is None:
            return
        text = params.get("text") or ""
        level = params.get("level", "info")
        # Firefox files its own complaints about a page (ICE failed, an <input pattern> it
        # cannot compile) as "javascript" errors too; only a thrown one has a stack.
        if params.get("type") == "javascript" and params.get("stackTrace", {}).get("callFrames"):
            tab.page_errors.append(text)
        else:
            tab.console.append(f"{level}: {text}")

    def open(self, url: str) -> FirefoxTab:
        """A new window (not a background tab, so nothing is throttled) showing `url`."""
        created = self.command("browsingContext.create", {"type": "window"})
        tab = FirefoxTab(self, created["context"])
        self.tabs[tab.context] = tab
        tab.goto(url)
        return tab

    def close(self) -> None:
        """End the session, kill the process group, drop the profile; safe to call twice."""
        if self.connection.ws is not None and not self.connection.ws.closed:
            with contextlib.suppress(Exception):
                self.command("browser.close", {})
        with contextlib.suppress(Exception):
            self._run(self.connection.close())
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)  # browser.close lets it exit by itself
            # Content processes share its group; whatever is left of the group goes too.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
        self.loop.close()
        shutil.rmtree(self.profile, ignore_errors=True)
