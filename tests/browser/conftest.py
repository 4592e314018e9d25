"""Browser fixtures: Debian's chromium driven by Playwright, one fresh context per participant.

Chromium gets a fake camera and microphone and may use loopback candidates, so a page can
publish to and play from the server on 127.0.0.1 with nobody at the keyboard.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_DIR = ROOT / "test-output" / "screenshots"

# Playwright adds its own --headless; these make WebRTC work headless with a fake camera.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
# Not stock ICE: gather 127.0.0.1 as a candidate, so a server advertising it is reachable.
LOOPBACK_ICE_ARGS = [
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


def require_chromium() -> None:
    """Skip locally without chromium; in CI a missing browser is a failure, not a skip."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing in CI; run scripts/install-chromium.sh first")
    pytest.skip(f"{CHROMIUM} not installed (run scripts/install-chromium.sh); CI is not set")


@contextlib.contextmanager
def launch_chromium(args: list[str]) -> Iterator[Any]:
    """Headless Debian chromium with `args`, closed (and Playwright stopped) on exit."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args, timeout=30_000
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One chromium per test module; module scope keeps Playwright's loop away from others."""
    with launch_chromium(CHROMIUM_ARGS + LOOPBACK_ICE_ARGS) as chromium:
        yield chromium


@dataclass
class PageLog:
    """Everything a page said on its console, to explain a failure."""

    name: str
    console: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        return [line for line in self.console if line.startswith("error:")]


@dataclass
class Browsing:
    """Opens pages in fresh browser contexts and keeps their logs and screenshots."""

    browser: Any
    tmp_path: Path
    test_name: str
    contexts: list[Any] = field(default_factory=list)
    logs: list[PageLog] = field(default_factory=list)
    server: Any = None  # a ServerProcess, whose log tail goes into failure reports
    firefox: Any = None  # a firefox.Firefox, for open_in_firefox
    # Console errors a test provokes on purpose (regexes); any other one fails the test.
    expected_console_errors: list[str] = field(default_factory=list)
    timeout_ms: int = 15_000  # a new context's default for loads, clicks and evaluations

    def open(
        self, url: str, name: str, *, beside: Any = None, init_script: str | None = None
    ) -> Any:
        """A page at `url` in a new context (own profile state, own camera), or a new tab in
        the context of the page `beside`; `init_script` runs in a new context's every page
        before the page's own scripts."""
        if beside is not None:
            context = beside.context
        else:
            context = self.browser.new_context(
                viewport={"width": 1100, "height": 820}, permissions=["camera", "microphone"]
            )
            context.set_default_timeout(self.timeout_ms)
            if init_script is not None:
                context.add_init_script(init_script)
            self.contexts.append(context)
        page = context.new_page()
        log = PageLog(name)
        self.logs.append(log)
        page.on("console", lambda msg: log.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: log.page_errors.append(str(err)))
        page.goto(url, wait_until="load")
        page.wait_for_function("() => window.litesfu !== undefined", timeout=self.timeout_ms)
        return page

    def open_in_firefox(self, url: str, name: str) -> Any:
        """A new Firefox window at `url` (a FirefoxTab: evaluate, click, text_content)."""
        tab = self.firefox.open(url)
        self.contexts.append(tab)
        log = PageLog(name, console=tab.console, page_errors=tab.page_errors)
        self.logs.append(log)
        self.wait_for(
            f"{name}: the page's test hook",
            lambda: tab.evaluate("() => window.litesfu !== undefined"),
            bool,
            10,
        )
        return tab

    def screenshot(self, page: Any, name: str) -> Path:
        """Save under the pytest tmp dir and copy to test-output/screenshots/ for humans."""
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.test_name}-{name}")
        path = self.tmp_path / f"{safe}.png"
        page.screenshot(path=str(path), full_page=True)
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOT_DIR / path.name)
        return path

    def report(self) -> str:
        """All page logs, for assertion messages."""
        parts = []
        for log in self.logs:
            lines = log.page_errors + log.console[-40:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(lines))
        if self.server is not None:
            parts.append("--- server log (tail) ---\n" + self.server.log()[-4000:])
        return "\n".join(parts)

    @staticmethod
    def stats(page: Any) -> dict[str, Any]:
        """The page's read-only test hook."""
        return page.evaluate("() => window.litesfu.stats()")

    def wait_for(
        self,
        what: str,
        probe: Callable[[], Any],
        done: Callable[[Any], bool],
        timeout: float,
        interval: float = 0.25,
    ) -> tuple[Any, float]:
        """Poll `probe` until `done(value)`; returns the value and the seconds it took."""
        start = time.monotonic()
        while True:
            value = probe()
            if done(value):
                return value, time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(
                    f"timed out after {timeout:.0f} s waiting for {what}; "
                    f"last value: {value!r}\n{self.report()}"
                )
            time.sleep(interval)

    def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):  # a test may have closed it already
                context.close()
        self.contexts.clear()


@pytest.fixture
def browsing(
    browser: Any, sfu_server: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Browsing]:
    """Fresh contexts for one test; fails the test if a page threw or logged an error.

    It takes the server so that the pages close before the server stops: a page left
    polling a stopped server would log connection errors that are not the test's.
    """
    with checked_browsing(
        Browsing(browser, tmp_path, request.node.name, server=sfu_server)
    ) as session:
        yield session


@contextlib.contextmanager
def checked_browsing(session: Browsing) -> Iterator[Browsing]:
    """Yield `session`, then close its pages and fail on any uncaught or unexpected error."""
    yield session
    session.close()
    thrown = [f"{log.name}: {err}" for log in session.logs for err in log.page_errors]
    assert not thrown, "uncaught page errors:\n" + "\n".join(thrown)
    unexpected = [
        f"{log.name}: {line}"
        for log in session.logs
        for line in log.console_errors()
        if not any(re.search(pattern, line) for pattern in session.expected_console_errors)
    ]
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)
