"""Churn: sessions joining and leaving over time, to find state the server fails to free.

A few long-lived publishers stream for the whole run (synthetic RTP, `bench.client`). Over
`seconds`, `sessions` short sessions start at random moments: mostly players of one of those
publishers, some publishers of their own stream. Each streams for a random life and then
leaves one of three ways, chosen at random: DELETE of its WHIP/WHEP resource, a DTLS
close_notify, or vanishing (its socket closes without a word, so only the server's
--session-timeout can end it). Everything runs in one asyncio loop; every wait is bounded.

`churn()` is one run as a library call; `python -m bench.churn` (bench/churn.py) runs it from
the command line, and the soak test calls it directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.request
from dataclasses import asdict, dataclass, field

import aiohttp

from bench.client import Client, Player, Publisher, Target
from bench.worker import KEEPALIVE_PERIOD, connect, disconnect
from sfu.protocol.certificate import Certificate
from sfu.protocol.dtls import DtlsState

LEAVES = ("delete", "dtls", "vanish")
WATCH_PERIOD = 1.0  # seconds between samples of the server's resource counts
CLOSE_TIMEOUT = 10.0
SERVER_KEYS = (
    "sessions",
    "bound_addresses",
    "streams",
    "publisher_tracks",
    "player_tracks",
    "tasks",
    "open_files",
)


class ChurnError(Exception):
    """The churn could not start: the message says why."""


@dataclass(frozen=True)
class ChurnConfig:
    """What to run; the defaults are the soak test's shape."""

    base_url: str
    sessions: int = 200
    seconds: float = 60.0
    publishers: int = 4
    publisher_share: float = 0.1  # fraction of churning sessions that publish
    min_life: float = 2.0
    max_life: float = 6.0
    prefix: str = "live/churn"
    seed: int | None = None
    connect_timeout: float = 15.0
    # Consent checks every 0.5-1 s (plus the keep-alive poll): players send nothing else, and
    # the soak runs the server with a 3 s --session-timeout.
    consent_interval: tuple[float, float] = (0.5, 1.0)
    concurrency: int = 16  # offers and handshakes in flight at once
    watch_server: bool = True


@dataclass(frozen=True)
class Plan:
    """One churning session: when it starts (seconds after the run began), how long it streams
    once connected, and how it leaves."""

    index: int
    role: str  # "publish" or "play"
    stream: str
    publisher_index: int
    start: float
    life: float
    leave: str


@dataclass
class ChurnResult:
    """Per-session outcomes, the long-lived publishers' reports and the server's samples."""

    config: ChurnConfig
    outcomes: list[dict] = field(default_factory=list)
    publishers: list[dict] = field(default_factory=list)
    server: list[dict] = field(default_factory=list)
    elapsed: float = 0.0

    def summary(self) -> dict:
        """Totals: joins, leaves by way, failures, packets, players with and without media."""
        joined = [o for o in self.outcomes if o["connected"]]
        players = [o for o in joined if o["role"] == "play"]
        leaves = {way: 0 for way in LEAVES}
        for outcome in joined:
            if outcome["left"]:
                leaves[outcome["leave"]] += 1
        peaks = {
            key: max((s[key] for s in self.server if s.get(key) is not None), default=None)
            for key in SERVER_KEYS
        }
        return {
            "sessions": len(self.outcomes),
            "joins": len(joined),
            "join_failures": len(self.outcomes) - len(joined),
            "leaves": leaves,
            "leave_failures": sum(1 for o in joined if not o["left"]),
            "players": len(players),
            "players_with_media": sum(1 for o in players if o["received"] > 0),
            "players_with_audio_and_video": sum(
                1 for o in players if o["by_kind"].get("audio") and o["by_kind"].get("video")
            ),
            "packets_received": sum(o["received"] for o in players),
            "churn_publishers_heard": sum(
                1 for o in joined if o["role"] == "publish" and o["rtcp_in"] > 0
            ),
            "publishers_connected": sum(1 for p in self.publishers if p["connected"]),
            "publisher_packets_sent": sum(sum(p["sent"].values()) for p in self.publishers),
            "server_peaks": peaks,
            "elapsed": round(self.elapsed, 2),
        }

    def problems(self) -> list[str]:
        """Every session that failed to join, to leave, or (as a player) to receive media."""
        found = []
        for o in self.outcomes:
            who = f"{o['role']} #{o['index']} {o['stream']} ({o['leave']}, life {o['life']:.1f} s)"
            if not o["connected"]:
                found.append(f"{who}: did not join: {o['error']}")
            elif not o["left"]:
                found.append(f"{who}: leaving failed: {o['error']}")
            elif o["role"] == "play" and o["received"] == 0:
                found.append(f"{who}: received no media ({o['rtcp_in']} RTCP in)")
        return found


def schedule(config: ChurnConfig, rng: random.Random) -> list[Plan]:
    """Random start times, lives and ways to leave; each ends within the period after it joins."""
    plans = []
    for index in range(config.sessions):
        life = rng.uniform(config.min_life, config.max_life)
        start = rng.uniform(0.0, max(0.0, config.seconds - life))
        if rng.random() < config.publisher_share:
            role, source = "publish", config.publishers + index
            stream = f"{config.prefix}-pub{index}"
        else:
            role, source = "play", rng.randrange(config.publishers)
            stream = f"{config.prefix}{source}"
        plans.append(Plan(index, role, stream, source, start, life, rng.choice(LEAVES)))
    return sorted(plans, key=lambda plan: plan.start)


def server_stats(base_url: str, timeout: float = 5.0) -> dict:
    """The server's resource counts (`GET /api/v1/server`); ChurnError when it does not answer."""
    try:
        with urllib.request.urlopen(base_url + "/api/v1/server", timeout=timeout) as response:
            return json.load(response)
    except (OSError, ValueError) as exc:
        raise ChurnError(f"cannot read {base_url}/api/v1/server: {exc}") from exc


class Churn:
    """One run: the shared HTTP session, certificate and gate, and the clients alive right now."""

    def __init__(self, config: ChurnConfig, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.http = http
        self.certificate = Certificate.generate()
        self.gate = asyncio.Semaphore(config.concurrency)
        self.live: set[Client] = set()  # connected and not yet gone: they send consent checks
        self.samples: list[float] = []  # players' latency samples (kept only to feed Player)

    def client(self, index: int, role: str, stream: str, publisher_index: int) -> Client:
        target = Target(self.config.base_url, "whip", stream)
        client: Client
        if role == "publish":
            client = Publisher(publisher_index, target, self.certificate)
        else:
            client = Player(
                index,
                target,
                self.certificate,
                publisher_index=publisher_index,
                sample_every=1000,
                samples=self.samples,
            )
        client.consent_interval = self.config.consent_interval
        return client

    async def join(self, client: Client) -> bool:
        await connect(self.http, client, self.gate, self.config.connect_timeout)
        if client.error is None:
            self.live.add(client)
            return True
        client.close(goodbye=False)
        return False

    async def leave(self, client: Client, way: str) -> str | None:
        """End a connected client the given way; None on success, else what went wrong."""
        self.live.discard(client)
        if isinstance(client, Publisher):
            client.stop()
        if way == "delete":
            status = await disconnect(self.http, client, self.gate)
            return None if status == 200 else f"DELETE {client.resource}: status {status}"
        client.close(goodbye=way == "dtls")
        return None

    async def session(self, plan: Plan, started: float) -> dict:
        """Wait for the plan's start, join, stream for its life, leave; the outcome as a dict."""
        await asyncio.sleep(max(0.0, started + plan.start - time.monotonic()))
        client = self.client(plan.index, plan.role, plan.stream, plan.publisher_index)
        left = False
        try:
            if await self.join(client):
                await asyncio.sleep(plan.life)
                if client.dtls is not None and client.dtls.state is DtlsState.CLOSED:
                    # The server's close_notify came first: it ended a live session.
                    client.error = "the server ended the session before the client left"
                else:
                    client.error = await self.leave(client, plan.leave)
                left = client.error is None
        finally:
            self.live.discard(client)
            if isinstance(client, Publisher):
                client.stop()
            client.close(goodbye=False)  # a no-op after a leave; frees the socket if cancelled
        report = client.report()
        return {
            **asdict(plan),
            "connected": report["connected"],
            "left": left,
            "error": client.error,
            "received": report.get("received", 0),
            "by_kind": report.get("by_kind", {}),
            "lost": report.get("lost", 0),
            "rtcp_in": report["rtcp_in"],
            "sent": sum(report.get("sent", {}).values()),
        }

    async def keep_alive(self, until: float) -> None:
        """Consent checks for the live clients (vanished ones fall silent), until the deadline."""
        for _ in range(int((until - time.monotonic()) / KEEPALIVE_PERIOD) + 1):
            now = time.monotonic()
            if now >= until:
                return
            for client in list(self.live):
                client.keep_alive(now)
            await asyncio.sleep(KEEPALIVE_PERIOD)

    async def watch(self, samples: list[dict], started: float, until: float) -> None:
        """Sample the server's resource counts once a second, to show peaks and growth."""
        url = self.config.base_url + "/api/v1/server"
        for _ in range(int((until - time.monotonic()) / WATCH_PERIOD) + 1):
            if time.monotonic() >= until:
                return
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                async with self.http.get(url) as response:
                    data = await response.json()
                sample = {key: data.get(key) for key in SERVER_KEYS}
                samples.append({"t": round(time.monotonic() - started, 2), **sample})
            await asyncio.sleep(WATCH_PERIOD)


async def churn(config: ChurnConfig) -> ChurnResult:
    """The whole run, bounded: long-lived publishers, the churning sessions, then goodbye."""
    if config.publishers < 1 or config.sessions < 0 or config.min_life > config.max_life:
        raise ChurnError("need publishers >= 1, sessions >= 0 and min_life <= max_life")
    result = ChurnResult(config)
    plans = schedule(config, random.Random(config.seed))
    timeout = aiohttp.ClientTimeout(total=config.connect_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        run = Churn(config, http)
        steady = [
            run.client(i, "publish", f"{config.prefix}{i}", i) for i in range(config.publishers)
        ]
        background: list[asyncio.Task] = []
        try:
            await asyncio.gather(*(run.join(p) for p in steady))
            if not any(p.srtp for p in steady):
                raise ChurnError(f"no long-lived publisher connected: {steady[0].error}")
            started = time.monotonic()
            # The last session may start at `seconds - life`, join within connect_timeout and
            # then live up to max_life: nothing legitimate runs past this.
            until = started + config.seconds + config.connect_timeout + config.max_life + 5
            background.append(asyncio.create_task(run.keep_alive(until)))
            if config.watch_server:
                background.append(asyncio.create_task(run.watch(result.server, started, until)))
            tasks = [asyncio.create_task(run.session(plan, started)) for plan in plans]
            done, pending = await asyncio.wait(tasks, timeout=max(1.0, until - time.monotonic()))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            result.outcomes = [task.result() for task in done]
            result.outcomes.sort(key=lambda outcome: outcome["start"])
            result.elapsed = time.monotonic() - started
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            gone = [run.leave(p, "delete") for p in steady if p.srtp]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*gone), CLOSE_TIMEOUT)
            for client in [*steady, *run.live]:
                client.close(goodbye=False)
        result.publishers = [p.report() for p in steady]
    return result
