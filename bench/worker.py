"""One load-generator process: connects its share of clients, streams, answers the coordinator.

The coordinator (`bench.load`) talks to each worker over a pipe. The worker says "ready" once
its clients are connected (or failed), answers every "tick" with cumulative counters and the
latency samples since the last tick, and on "stop" halts its publishers, lets packets in
flight arrive, sends "done" with per-client reports, then ends its sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import json
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from urllib.parse import urlparse

import aiohttp
from yarl import URL

from bench.client import AUDIO, VIDEO, Client, ConnectError, Player, Publisher, Target
from bench.sdp import AnswerError
from sfu.protocol.certificate import Certificate

KEEPALIVE_PERIOD = 0.5
COMMAND_TIMEOUT = 60.0  # a worker whose coordinator went quiet this long stops by itself
COMMAND_POLL = 0.005
DRAIN = 0.5  # seconds to keep counting after publishers stop
CLOSE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClientSpec:
    """One client to run: its global index, role, stream and (for players) publisher index."""

    index: int
    role: str  # "publish" or "play"
    stream: str
    publisher_index: int


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs, picklable for multiprocessing's spawn."""

    base_url: str
    route: str
    clients: list[ClientSpec] = field(default_factory=list)
    sample_every: int = 10
    connect_timeout: float = 20.0
    concurrency: int = 16
    simulcast: bool = False  # publishers send 3 synthetic layers (SimulcastMedia)


async def signal(http: aiohttp.ClientSession, client: Client) -> None:
    """Offer over WHIP/WHEP, the room API or SRS's JSON API and hand the answer to the
    client."""
    target = client.target
    publishing = isinstance(client, Publisher)
    offer = client.offer()
    if target.route in ("whip", "room"):
        url = f"{target.base_url}/{'whip' if publishing else 'whep'}/{target.stream}"
        if target.route == "room":  # a participant's subscribe session: stream "ROOM/NAME"
            room, name = target.stream.split("/")
            url = f"{target.base_url}/rooms/v1/{room}/participants/{name}"
        headers = {"Content-Type": "application/sdp"}
        async with http.post(url, data=offer, headers=headers) as response:
            body = await response.text()
            if response.status != 201:
                raise ConnectError(f"POST {url}: HTTP {response.status} {body.strip()[:200]}")
            location = response.headers.get("Location")
            if location:
                client.resource = str(response.url.join(URL(location)))
    else:
        url = f"{target.base_url}/rtc/v1/{'publish' if publishing else 'play'}/"
        host = urlparse(target.base_url).hostname or "127.0.0.1"
        payload = {"api": url, "streamurl": f"webrtc://{host}/{target.stream}", "sdp": offer}
        async with http.post(url, json=payload) as response:
            text = await response.text()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConnectError(f"POST {url}: HTTP {response.status}, not JSON") from exc
        if response.status != 200 or data.get("code") != 0 or "sdp" not in data:
            raise ConnectError(f"POST {url}: HTTP {response.status} {text.strip()[:200]}")
        body = data["sdp"]
        client.session_id = data.get("sessionid")
    client.take_answer(body)


async def connect(
    http: aiohttp.ClientSession, client: Client, gate: asyncio.Semaphore, timeout: float
) -> None:
    """Signal and handshake one client; a failure is recorded on the client, not raised."""
    async with gate:
        try:
            await signal(http, client)
            await client.handshake(timeout)
        except (ConnectError, AnswerError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            client.error = str(exc) or type(exc).__name__
        except OSError as exc:
            client.error = f"{type(exc).__name__}: {exc}"


async def disconnect(
    http: aiohttp.ClientSession, client: Client, gate: asyncio.Semaphore
) -> int | None:
    """DELETE the WHIP/WHEP resource (the SRS route ends with DTLS close_notify instead).

    Returns the DELETE's HTTP status (None when none was sent or it failed), for churn to check.
    """
    status = None
    if client.resource is not None and client.srtp is not None:
        async with gate:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.delete(client.resource) as response:
                    await response.read()
                    status = response.status
    client.close()
    return status


async def keep_alive(clients: list[Client]) -> None:
    """Consent checks for every connected client, forever (the worker cancels it)."""
    while True:
        await asyncio.sleep(KEEPALIVE_PERIOD)
        now = time.monotonic()
        for client in clients:
            client.keep_alive(now)


def snapshot(
    publishers: list[Publisher], players: list[Player], samples: list[float], arrivals: list[float]
) -> dict:
    """Cumulative counters of this worker, plus the latency samples taken since the last one
    (when read, and when they reached the socket)."""
    received = lost = late = receiving = with_video = 0
    by_kind = {AUDIO: 0, VIDEO: 0}
    for player in players:
        with_video += any(t.kind == VIDEO for t in player.tracks.values())
        r, lo, la = player.counts()
        received += r
        lost += lo
        late += la
        if player.received > player.last_received:
            receiving += 1
        player.last_received = player.received
        for track in player.tracks.values():
            if track.kind in by_kind:
                by_kind[track.kind] += track.received
    now = time.monotonic()
    stale = sum(1 for c in (*publishers, *players) if c.srtp and now - c.last_consent > 10)
    return {
        "sent": sum(p.sent[AUDIO] + p.sent[VIDEO] for p in publishers),
        "send_errors": sum(p.send_errors for p in publishers),
        "received": received,
        "received_audio": by_kind[AUDIO],
        "received_video": by_kind[VIDEO],
        "lost": lost,
        "late": late,
        "receiving": receiving,
        "players_with_video": with_video,
        "players_connected": sum(1 for p in players if p.srtp is not None),
        "publishers_connected": sum(1 for p in publishers if p.srtp is not None),
        "consent_stale": stale,
        "wrong_source": sum(p.wrong_source for p in players),
        "samples": list(samples),
        "arrivals": list(arrivals),
    }


async def next_command(conn: Connection) -> str:
    """The coordinator's next command; "stop" when it hung up or stayed quiet too long.

    The pipe is polled rather than watched with add_reader, which would make it non-blocking
    and let a large reply fail with EAGAIN.
    """
    for _ in range(int(COMMAND_TIMEOUT / COMMAND_POLL)):
        try:
            if conn.poll():
                return conn.recv()[0]
        except (EOFError, OSError):
            return "stop"
        await asyncio.sleep(COMMAND_POLL)
    return "stop"


async def run(conn: Connection, spec: WorkerSpec) -> None:
    """Connect, stream until told to stop, report, clean up."""
    loop = asyncio.get_running_loop()
    certificate = Certificate.generate()
    samples: list[float] = []
    arrivals: list[float] = []
    publishers: list[Publisher] = []
    players: list[Player] = []
    for item in spec.clients:
        target = Target(spec.base_url, spec.route, item.stream)
        if item.role == "publish":
            publishers.append(
                Publisher(item.publisher_index, target, certificate, simulcast=spec.simulcast)
            )
        else:
            players.append(
                Player(
                    item.index,
                    target,
                    certificate,
                    publisher_index=item.publisher_index,
                    sample_every=spec.sample_every,
                    samples=samples,
                    arrivals=arrivals,
                )
            )
    clients: list[Client] = [*publishers, *players]
    gate = asyncio.Semaphore(spec.concurrency)
    http_timeout = aiohttp.ClientTimeout(total=spec.connect_timeout)
    async with aiohttp.ClientSession(timeout=http_timeout) as http:
        keeper = loop.create_task(keep_alive(clients))
        try:
            timeout = spec.connect_timeout
            await asyncio.gather(*(connect(http, p, gate, timeout) for p in publishers))
            await asyncio.gather(*(connect(http, p, gate, timeout) for p in players))
            errors = [f"{c.role} {c.target.stream}: {c.error}" for c in clients if c.error]
            conn.send(("ready", {"errors": errors}))
            for _ in range(1_000_000):
                if await next_command(conn) != "tick":
                    break
                conn.send(("stats", snapshot(publishers, players, samples, arrivals)))
                samples.clear()
                arrivals.clear()
            for publisher in publishers:
                publisher.stop()
            await asyncio.sleep(DRAIN)
            final = snapshot(publishers, players, samples, arrivals)
            with contextlib.suppress(OSError):
                conn.send(("done", final, [c.report() for c in clients]))
            await asyncio.wait_for(
                asyncio.gather(*(disconnect(http, c, gate) for c in clients)), CLOSE_TIMEOUT
            )
        finally:
            keeper.cancel()
            for client in clients:
                with contextlib.suppress(OSError):
                    client.close()


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """Process entry point: uvloop if available, and any crash reported to the coordinator."""
    faulthandler.enable()
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(run(conn, spec))
    except Exception:
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
