"""`python -m bench.room`: conferencing rooms under load, beside the same media as WHIP/WHEP.

    python -m bench.room [--rooms 2] [--participants 4] [--seconds 10] [--joins 10] \\
        [--at-once 10] [--settle 2] [--url http://127.0.0.1:8080 --pid PID] [--json FILE]

R rooms of N synthetic participants (bench.client: real ICE, DTLS and SRTP, no codec). Each
publishes audio and 3-layer simulcast video by WHIP as ROOM/NAME and subscribes to everyone
else over one room session, a slot per other participant's audio and video offered up front.
Then the same publishers again, with a WHEP player per other participant's stream in place of
each room session: the same flows as per-stream sessions. It prints:

- the server's CPU per forwarded packet (one packet to one subscriber, as the subscribers
  count them) over `--seconds`, for both, and their ratio;
- the server's RSS per participant: its growth over the idle server, over R x N;
- first-frame time p50/p99: from a joiner's connection (its DTLS done) to the first packet of
  each participant's video in its room (a slot starts on a keyframe), for `--joins` joiners
  coming one at a time and `--at-once` joining together; the generator's own event loop adds
  its delay to these;
- allocation runs per second: the rate the server runs them in this load (each subscriber's
  once a second) and the rate one core runs one allocation for a subscriber of this room size.

The clients send no receiver feedback, so no estimate is known and nothing is paused: every
video plays its lowest layer in a room, and the WHEP players ask for that layer (?layer=), so
both loads carry the same packets (printed beside the CPU).
Without --url it starts a server of this checkout (bench.launcher) and stops it at the end.
Exit status: 0 when the run completed, whatever the numbers; 2 when the server was unreachable
or a participant could not connect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from bench.client import SIMULCAST_LAYERS, Player, Publisher, Target
from bench.launcher import start_server, stop_server
from bench.load import percentile
from bench.procstat import TreeSampler, tree_rss_bytes
from bench.room_clients import RoomSubscriber, allocations_per_second
from bench.worker import connect, disconnect, keep_alive
from sfu.protocol.certificate import Certificate

# The server started here: every client comes from 127.0.0.1, so the per-address admission
# limits must allow them all.
OWN_SERVER_ARGS = (
    "--client-rate", "1000", "--client-burst", "1000",
    "--client-connections", "10000", "--client-pending", "1000",
)  # fmt: skip
CONNECT_TIMEOUT = 20.0
CONCURRENCY = 16
FIRST_FRAME_TIMEOUT = 5.0  # a joiner waits this long for every video of its room
JOIN_SPACING = 0.5  # between joiners that come one at a time
# What the WHEP players ask for (the WHEP layer extension's ?layer=): the layer a room gives
# every video while it knows no estimate, so both loads carry the same packets.
LOWEST_LAYER = SIMULCAST_LAYERS[0][0]


class RoomBenchError(Exception):
    """The run could not go on: the message says why, for stderr."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.room", description="Conferencing rooms under load."
    )
    parser.add_argument("--url", help="base URL of a running server (default: start one)")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid (CPU and RSS)")
    parser.add_argument("--rooms", type=int, default=2)
    parser.add_argument("--participants", type=int, default=4, help="per room")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured, per load")
    parser.add_argument("--joins", type=int, default=10, help="joiners one at a time")
    parser.add_argument("--at-once", type=int, default=10, help="joiners together")
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds after connecting before measuring"
    )
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    if args.rooms < 1 or args.participants < 2 or args.seconds <= 0:
        parser.error("need --rooms >= 1, --participants >= 2 and --seconds > 0")
    if args.joins < 0 or args.at_once < 0 or args.settle < 0:
        parser.error("--joins, --at-once and --settle must not be negative")
    if args.url and not args.pid:
        parser.error("--url needs --pid: the numbers are the server's CPU and RSS")
    return args


class Bench:
    """The clients of one run, against the server at `base` whose process is `pid`."""

    def __init__(self, args: argparse.Namespace, base: str, pid: int) -> None:
        self.args = args
        self.base = base
        self.pid = pid
        self.certificate = Certificate.generate()
        self.gate = asyncio.Semaphore(CONCURRENCY)
        self.http: aiohttp.ClientSession | None = None
        self.live: list = []  # every connected client, for consent checks
        self.samples: list[float] = []  # Player's latency samples: unused, required

    def names(self) -> list[tuple[str, str]]:
        """(room, participant) of every participant."""
        return [
            (f"r{room}", f"p{i}")
            for room in range(self.args.rooms)
            for i in range(self.args.participants)
        ]

    async def connected(self, clients: Sequence) -> None:
        """Signal and handshake `clients`; RoomBenchError naming the first that failed."""
        assert self.http is not None
        timeout = CONNECT_TIMEOUT
        await asyncio.gather(*(connect(self.http, c, self.gate, timeout) for c in clients))
        failed = [c for c in clients if c.srtp is None]
        if failed:
            first = failed[0]
            raise RoomBenchError(
                f"{len(failed)} clients did not connect, the first {first.role}"
                f" {first.target.stream}: {first.error}"
            )
        self.live += clients

    async def leave(self, clients: Sequence) -> None:
        assert self.http is not None
        await asyncio.gather(*(disconnect(self.http, c, self.gate) for c in clients))
        self.live[:] = [c for c in self.live if c not in clients]  # keep_alive holds it

    def subscriber(self, room: str, name: str, slots: int) -> RoomSubscriber:
        target = Target(self.base, "room", f"{room}/{name}")
        return RoomSubscriber(len(self.live), target, self.certificate, slots, self.samples)

    async def measure(self, receivers: Sequence[Player]) -> dict:
        """Server CPU and packets the receivers counted over --seconds."""
        sampler = TreeSampler([self.pid])
        before = sum(r.received for r in receivers)
        started = time.monotonic()
        await asyncio.sleep(self.args.seconds)
        _, cpu, rss = sampler.sample()
        packets = sum(r.received for r in receivers) - before
        elapsed = time.monotonic() - started
        return {
            "cpu_percent": 100 * cpu / elapsed,
            "packets_per_second": packets / elapsed,
            "us_per_packet": 1e6 * cpu / packets if packets else None,
            "rss_mb": rss,
        }

    async def first_frames(self, count: int, together: bool) -> list[float]:
        """Joiners of room r0, one at a time or all at once: seconds from each one's
        connection to the first packet of each participant's video."""
        slots = self.args.participants
        waits: list[float] = []
        groups = [range(count)] if together else [[i] for i in range(count)]
        prefix = "together" if together else "alone"
        for group in groups:
            joiners = [self.subscriber("r0", f"{prefix}{i}", slots) for i in group]
            await self.connected(joiners)
            deadline = time.monotonic() + FIRST_FRAME_TIMEOUT
            while time.monotonic() < deadline and not all(
                len(j.first_video()) >= slots for j in joiners
            ):
                await asyncio.sleep(0.02)
            for joiner in joiners:
                waits += joiner.first_video()
            await self.leave(joiners)
            await asyncio.sleep(JOIN_SPACING)
        return waits


async def run(args: argparse.Namespace, base: str, pid: int) -> dict:
    bench = Bench(args, base, pid)
    result: dict = {"rooms": args.rooms, "participants": args.participants}
    idle_rss = tree_rss_bytes(pid)
    # A fresh connection per request: the server closes idle ones (--header-timeout), and a
    # POST on one it just closed fails rather than retries.
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=CONNECT_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        bench.http = http
        alive = asyncio.ensure_future(keep_alive(bench.live))
        try:
            others = args.participants - 1
            publishers = [
                Publisher(i, Target(base, "whip", f"{room}/{name}"), bench.certificate, True)
                for i, (room, name) in enumerate(bench.names())
            ]
            await bench.connected(publishers)
            subscribers = [bench.subscriber(room, name, others) for room, name in bench.names()]
            await bench.connected(subscribers)
            await asyncio.sleep(args.settle)
            result["room"] = await bench.measure(subscribers)
            grown = tree_rss_bytes(pid) - idle_rss
            result["rss_kb_per_participant"] = grown / 1024 / len(publishers)
            result["allocations_per_second_server"] = len(subscribers)
            result["allocations_per_second_core"] = allocations_per_second(others)
            result["first_frame_alone"] = await bench.first_frames(args.joins, False)
            result["first_frame_at_once"] = await bench.first_frames(args.at_once, True)
            await bench.leave(subscribers)
            players = [
                Player(
                    len(bench.live),
                    Target(base, "whip", f"{room}/{other}?layer={LOWEST_LAYER}"),
                    bench.certificate,
                    publisher_index=0,
                    sample_every=1_000_000,
                    samples=bench.samples,
                )
                for room, name in bench.names()
                for other in (n for r, n in bench.names() if r == room and n != name)
            ]
            await bench.connected(players)
            await asyncio.sleep(args.settle)
            result["whep"] = await bench.measure(players)
            await bench.leave(players)
            for publisher in publishers:
                publisher.stop()
            await bench.leave(publishers)
        finally:
            alive.cancel()
            for client in bench.live:
                client.close()
    return result


def milliseconds(values: list[float], fraction: float) -> str:
    value = percentile(values, fraction)
    return "-" if value is None else f"{value * 1000:.0f}"


def report(result: dict) -> list[str]:
    room, whep = result["room"], result["whep"]
    ratio = (
        f"{room['us_per_packet'] / whep['us_per_packet']:.2f}"
        if room["us_per_packet"] and whep["us_per_packet"]
        else "-"
    )
    alone, together = result["first_frame_alone"], result["first_frame_at_once"]
    rows = [
        f"bench.room: {result['rooms']} rooms x {result['participants']} participants",
        f"{'':24}{'room sessions':>16}{'WHIP/WHEP':>16}",
    ]
    for key, label, form in (
        ("us_per_packet", "server µs per packet", "{:.1f}"),
        ("packets_per_second", "packets per second", "{:.0f}"),
        ("cpu_percent", "server CPU %", "{:.1f}"),
    ):
        cells = [form.format(x[key]) if x[key] is not None else "-" for x in (room, whep)]
        rows.append(f"{label:24}{cells[0]:>16}{cells[1]:>16}")
    rows += [
        f"room / WHEP CPU per packet: {ratio}",
        f"server RSS per participant: {result['rss_kb_per_participant']:.0f} KB",
        f"first frame, joins alone: p50 {milliseconds(alone, 0.5)} ms,"
        f" p99 {milliseconds(alone, 0.99)} ms over {len(alone)} videos",
        f"first frame, {result['first_frame_together']} at once:"
        f" p50 {milliseconds(together, 0.5)} ms, p99 {milliseconds(together, 0.99)} ms"
        f" over {len(together)} videos",
        f"allocation runs per second: {result['allocations_per_second_server']} in this load,"
        f" {result['allocations_per_second_core']:.0f} per core for"
        f" {2 * (result['participants'] - 1)} slots",
    ]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server = None
    try:
        if args.url:
            base, pid = args.url.rstrip("/"), args.pid
        else:
            log_dir = Path(tempfile.mkdtemp(prefix="bench-room-"))
            server = start_server(log_dir, *OWN_SERVER_ARGS)
            base, pid = server.http_url, server.pid
            print(f"bench.room: started a server at {base}", flush=True)
        result = asyncio.run(run(args, base, pid))
    except (RoomBenchError, RuntimeError, OSError) as exc:
        print(f"bench.room: {exc}", file=sys.stderr)
        return 2
    finally:
        if server is not None:
            stop_server(server)
    result["first_frame_together"] = args.at_once
    for line in report(result):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
