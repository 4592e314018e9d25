"""Load generator: P publishers and N players of synthetic media against a running LiteSFU.

    python -m bench.load --url http://127.0.0.1:8080 --publishers 1 --players 100 --seconds 10 \\
        [--route whip|srs] [--server-pid PID] [--procs K] [--json FILE] [--plot FILE] \\
        [--stream-prefix live/bench] [--sample-every 10] [--simulcast [--beside-single]]

Players are spread evenly over the P streams (<prefix>0 .. <prefix>P-1; the SRS route needs a
prefix of the form app/name). Clients do real ICE, DTLS and SRTP but carry no codec: see
`bench.client`. `--procs K` splits the clients over K processes; this process only coordinates:
it asks every worker for its counters once a second and prints one line per second with
packets sent and received per second, sequence loss, latency p50/p99 (decrypting every
`--sample-every`-th packet; also p99 to the kernel's stamp of when the packet reached the
player's socket, which leaves out the generator's own queueing), the server's CPU (100 % = one
core) and RSS when `--server-pid` is given, and the generator's own CPU. The measurement
starts once every client has connected.

At the end it prints a summary and writes the per-second series and per-client results as
JSON (`--json`) and a PNG plot (`--plot`). It exits 0 whenever the run completed, whatever the
numbers; 2 when it could not reach the server or connect any publisher.

`--simulcast --beside-single` first runs the same load single-layer, then prints the server's
CPU per player packet of both runs and their ratio (issue 10: within 10 % of each other).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from bench.procstat import TreeSampler
from bench.worker import ClientSpec, WorkerSpec, worker_main

TICK_REPLY_TIMEOUT = 3.0
JOIN_TIMEOUT = 20.0
WARM_UP_TICKS = 20
WARM_UP_PERIOD = 0.5


class LoadError(Exception):
    """The run could not start: the message says why, for stderr."""


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of unsorted values; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[rank]


def loss_percent(received: int, lost: int) -> float:
    total = received + lost
    return 100.0 * lost / total if total else 0.0


def plan(publishers: int, players: int, prefix: str, procs: int) -> list[list[ClientSpec]]:
    """Clients per worker: players round-robin over streams, everyone round-robin over workers."""
    specs = [ClientSpec(i, "publish", f"{prefix}{i}", i) for i in range(publishers)]
    specs += [
        ClientSpec(j, "play", f"{prefix}{j % publishers}", j % publishers) for j in range(players)
    ]
    per_worker: list[list[ClientSpec]] = [[] for _ in range(procs)]
    for position, spec in enumerate(specs):
        per_worker[position % procs].append(spec)
    return [w for w in per_worker if w]


def check_reachable(base_url: str) -> None:
    """Fail fast with a clear message when nothing answers HTTP at base_url."""
    try:
        with urllib.request.urlopen(base_url + "/api/v1/streams", timeout=5) as response:
            response.read()
    except urllib.error.HTTPError:
        return  # something answered; the offers will say more
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot reach {base_url}: {exc}") from exc


@dataclass
class Workers:
    """The worker processes and their pipes, driven in lockstep by the coordinator."""

    processes: list[Any] = field(default_factory=list)
    pipes: list[Connection] = field(default_factory=list)

    def start(self, specs: list[WorkerSpec]) -> None:
        context = multiprocessing.get_context("spawn")
        for spec in specs:
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, args=(child, spec), daemon=True)
            process.start()
            child.close()
            self.processes.append(process)
            self.pipes.append(parent)

    def collect(self, kind: str, timeout: float) -> list[tuple]:
        """One message of `kind` from every worker, or LoadError on timeout, crash or exit."""
        replies: dict[int, tuple] = {}
        deadline = time.monotonic() + timeout
        while len(replies) < len(self.pipes):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoadError(f"workers did not send '{kind}' within {timeout:.0f} s")
            waiting = [p for i, p in enumerate(self.pipes) if i not in replies]
            for pipe in wait(waiting, remaining):
                index = self.pipes.index(pipe)  # type: ignore[arg-type]
                try:
                    message = pipe.recv()  # type: ignore[union-attr]
                except (EOFError, OSError) as exc:
                    process = self.processes[index]
                    process.join(1.0)
                    raise LoadError(
                        f"worker {index} exited unexpectedly (exit code {process.exitcode})"
                    ) from exc
                if message[0] == "error":
                    raise LoadError(f"worker {index} crashed:\n{message[1]}")
                if message[0] == kind:
                    replies[index] = message
        return [replies[i] for i in range(len(self.pipes))]

    def send(self, command: str) -> None:
        for pipe in self.pipes:
            try:
                pipe.send((command,))
            except OSError as exc:
                raise LoadError("a worker went away") from exc

    def stop(self) -> None:
        """Hang up (a worker still streaming stops on EOF), wait for cleanup, leave none behind."""
        for pipe in self.pipes:
            pipe.close()
        deadline = time.monotonic() + JOIN_TIMEOUT
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(5)


def merge(stats: list[dict]) -> dict:
    """Sum worker snapshots; latency samples (read, and at the socket) are concatenated."""
    total: dict[str, Any] = {"samples": [], "arrivals": []}
    for item in stats:
        for key, value in item.items():
            if key in ("samples", "arrivals"):
                total[key].extend(value)
            else:
                total[key] = total.get(key, 0) + value
    return total


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def run(args: argparse.Namespace) -> dict:
    """The whole run: start workers, connect, measure `seconds` ticks, stop, summarize."""
    base_url = args.url.rstrip("/")
    check_reachable(base_url)
    clients = args.publishers + args.players
    procs = max(1, min(args.procs, clients))
    connect_timeout = 20.0
    specs = [
        WorkerSpec(
            base_url,
            args.route,
            group,
            args.sample_every,
            connect_timeout,
            simulcast=args.simulcast,
        )
        for group in plan(args.publishers, args.players, args.stream_prefix, procs)
    ]
    server = TreeSampler([args.server_pid]) if args.server_pid else None
    workers = Workers()
    workers.start(specs)
    try:
        setup_started = time.monotonic()
        ready = workers.collect("ready", 60.0 + connect_timeout + 0.2 * clients)
        errors = [e for message in ready for e in message[1]["errors"]]
        setup_seconds = time.monotonic() - setup_started
        for error in errors[:10]:
            print(f"connect failed: {error}", file=sys.stderr)
        if len(errors) > 10:
            print(f"... and {len(errors) - 10} more connect failures", file=sys.stderr)
        baseline = warm_up(workers)
        if baseline["publishers_connected"] == 0:
            raise LoadError("no publisher could connect: " + (errors[0] if errors else "?"))
        print(
            f"connected {baseline['publishers_connected']}/{args.publishers} publishers, "
            f"{baseline['players_connected']}/{args.players} players in {setup_seconds:.1f} s "
            f"({procs} process{'es' if procs > 1 else ''})",
            flush=True,
        )
        generator = TreeSampler([os.getpid()])
        if server is not None:
            server.sample()
        rows, samples, arrivals = measure(args, workers, baseline, server, generator)
        workers.send("stop")
        done = workers.collect("done", 30.0)
    finally:
        workers.stop()
    final = merge([m[1] for m in done])
    reports = [r for m in done for r in m[2]]
    latencies = {"samples": samples, "arrivals": arrivals}
    return summarize(args, rows, latencies, baseline, final, reports, errors, setup_seconds)


def warm_up(workers: Workers) -> dict:
    """Wait (bounded) until every connected player receives, so the window starts in steady state.

    Players start on a keyframe; the snapshot that ends the warm-up is the measurement baseline.
    """
    snapshot: dict = {}
    for _ in range(WARM_UP_TICKS):
        workers.send("tick")
        snapshot = merge([m[1] for m in workers.collect("stats", TICK_REPLY_TIMEOUT)])
        if snapshot["publishers_connected"] == 0:
            break
        connected = snapshot["players_connected"]
        if snapshot["players_with_video"] >= connected and snapshot["receiving"] >= connected:
            break
        time.sleep(WARM_UP_PERIOD)
    return snapshot


def measure(
    args: argparse.Namespace,
    workers: Workers,
    baseline: dict,
    server: TreeSampler | None,
    generator: TreeSampler,
) -> tuple[list[dict], list[float], list[float]]:
    """One tick a second for `seconds`: per-second rates, loss, latency, CPU; one line each.
    Returns the rows and every latency sample, as read and as it reached the socket."""
    rows: list[dict] = []
    all_samples: list[float] = []
    all_arrivals: list[float] = []
    previous = baseline
    start = time.monotonic()
    last = start
    for second in range(1, args.seconds + 1):
        time.sleep(max(0.0, start + second - time.monotonic()))
        workers.send("tick")
        current = merge([m[1] for m in workers.collect("stats", TICK_REPLY_TIMEOUT)])
        now = time.monotonic()
        elapsed = max(1e-6, now - last)
        last = now
        samples, arrivals = current["samples"], current["arrivals"]
        all_samples.extend(samples)
        all_arrivals.extend(arrivals)
        received = current["received"] - previous["received"]
        lost = current["lost"] - previous["lost"]
        row: dict[str, Any] = {
            "t": round(now - start, 3),
            "sent_pps": (current["sent"] - previous["sent"]) / elapsed,
            "recv_pps": received / elapsed,
            "loss_pct": loss_percent(received, max(0, lost)),
            "latency_p50_ms": percentile(samples, 0.5),
            "latency_p99_ms": percentile(samples, 0.99),
            "latency_samples": len(samples),
            "socket_latency_p99_ms": percentile(arrivals, 0.99),
            "players_receiving": current["receiving"],
            "players_connected": current["players_connected"],
            "consent_stale": current["consent_stale"],
            "server_cpu_pct": None,
            "server_rss_mb": None,
        }
        row["generator_cpu_pct"] = generator.sample()[0]
        if server is not None:
            cpu, _, rss = server.sample()
            row["server_cpu_pct"] = cpu
            row["server_rss_mb"] = rss
        rows.append(row)
        previous = current
        print(
            f"{second:4d}s sent {row['sent_pps']:7.0f} pps  recv {row['recv_pps']:8.0f} pps  "
            f"loss {row['loss_pct']:6.2f}%  latency p50 {fmt(row['latency_p50_ms'], '.2f')} "
            f"p99 {fmt(row['latency_p99_ms'], '.2f')} ms "
            f"(at socket {fmt(row['socket_latency_p99_ms'], '.2f')})  "
            f"players {row['players_receiving']}/{args.players}  "
            f"server cpu {fmt(row['server_cpu_pct'], '.0f')}% "
            f"rss {fmt(row['server_rss_mb'], '.0f')} MB  "
            f"gen cpu {row['generator_cpu_pct']:.0f}%",
            flush=True,
        )
    return rows, all_samples, all_arrivals


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(
    args: argparse.Namespace,
    rows: list[dict],
    latencies: dict[str, list[float]],
    baseline: dict,
    final: dict,
    reports: list[dict],
    errors: list[str],
    setup_seconds: float,
) -> dict:
    """The result document: configuration, totals over the window, series, per-client data.
    `latencies`: "samples" (when the players read the packets) and "arrivals" (when the packets
    reached their sockets, by the kernel's stamp: without the generator's own queueing)."""
    samples, arrivals = latencies["samples"], latencies["arrivals"]
    received = final["received"] - baseline["received"]
    lost = max(0, final["lost"] - baseline["lost"])
    cpu = [r["server_cpu_pct"] for r in rows if r["server_cpu_pct"] is not None]
    rss = [r["server_rss_mb"] for r in rows if r["server_rss_mb"] is not None]
    cpu_mean = mean(cpu)
    recv_pps = mean([r["recv_pps"] for r in rows]) or 0.0
    summary = {
        "seconds": len(rows),
        "setup_seconds": round(setup_seconds, 2),
        "publishers_connected": final["publishers_connected"],
        "players_connected": final["players_connected"],
        "connect_failures": len(errors),
        "sent_pps": mean([r["sent_pps"] for r in rows]),
        "recv_pps": recv_pps,
        "received": received,
        "lost": lost,
        "late": final["late"] - baseline["late"],
        "loss_pct": loss_percent(received, lost),
        "latency_p50_ms": percentile(samples, 0.5),
        "latency_p99_ms": percentile(samples, 0.99),
        "latency_max_ms": max(samples) if samples else None,
        "latency_samples": len(samples),
        "socket_latency_p50_ms": percentile(arrivals, 0.5),
        "socket_latency_p99_ms": percentile(arrivals, 0.99),
        "socket_latency_max_ms": max(arrivals) if arrivals else None,
        "server_cpu_pct": cpu_mean,
        "server_rss_mb_max": max(rss) if rss else None,
        "generator_cpu_pct": mean([r["generator_cpu_pct"] for r in rows]),
        "egress_pps_per_cpu_second": recv_pps / (cpu_mean / 100) if cpu_mean else None,
        "players_per_core": args.players / (cpu_mean / 100) if cpu_mean else None,
        "cpu_us_per_player_packet": 1e4 * cpu_mean / recv_pps if cpu_mean and recv_pps else None,
        "wrong_source": final["wrong_source"],
        "send_errors": final["send_errors"],
        "players_silent_at_end": args.players - (rows[-1]["players_receiving"] if rows else 0),
        "loadavg_1min_at_end": os.getloadavg()[0],
    }
    return {
        "config": {
            "url": args.url,
            "route": args.route,
            "publishers": args.publishers,
            "players": args.players,
            "seconds": args.seconds,
            "procs": args.procs,
            "sample_every": args.sample_every,
            "stream_prefix": args.stream_prefix,
            "server_pid": args.server_pid,
        },
        "summary": summary,
        "series": rows,
        "errors": errors,
        "clients": reports,
    }


def print_summary(result: dict) -> None:
    s = result["summary"]
    print(
        f"summary: {s['seconds']} s, {s['publishers_connected']} publishers, "
        f"{s['players_connected']} players ({s['connect_failures']} failed to connect)\n"
        f"  sent {fmt(s['sent_pps'], '.0f')} pps, received {fmt(s['recv_pps'], '.0f')} pps, "
        f"loss {s['loss_pct']:.3f}% ({s['lost']} of {s['received'] + s['lost']}), "
        f"{s['late']} late\n"
        f"  latency p50 {fmt(s['latency_p50_ms'], '.2f')} ms, p99 "
        f"{fmt(s['latency_p99_ms'], '.2f')} ms, max {fmt(s['latency_max_ms'], '.2f')} ms "
        f"({s['latency_samples']} samples); at the socket p50 "
        f"{fmt(s['socket_latency_p50_ms'], '.2f')} ms, p99 "
        f"{fmt(s['socket_latency_p99_ms'], '.2f')} ms, max "
        f"{fmt(s['socket_latency_max_ms'], '.2f')} ms\n"
        f"  server cpu {fmt(s['server_cpu_pct'], '.0f')}%, rss max "
        f"{fmt(s['server_rss_mb_max'], '.0f')} MB, "
        f"{fmt(s['egress_pps_per_cpu_second'], '.0f')} egress packets per CPU-second, "
        f"{fmt(s['players_per_core'], '.0f')} players per core; "
        f"generator cpu {fmt(s['generator_cpu_pct'], '.0f')}%; "
        f"machine load average {s['loadavg_1min_at_end']:.2f} on {os.cpu_count()} CPUs",
        flush=True,
    )


def plot(result: dict, path: Path) -> None:
    """Four panels of the per-second series: packet rates, loss, latency, server CPU/RSS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["series"]
    t = [r["t"] for r in rows]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    rates, loss, latency, cpu = axes.flat
    rates.plot(t, [r["recv_pps"] for r in rows], color="tab:orange", label="received")
    rates.set_ylabel("received packets/s", color="tab:orange")
    sent = rates.twinx()  # publishers send a small fraction of what players receive
    sent.plot(t, [r["sent_pps"] for r in rows], color="tab:blue", label="sent")
    sent.set_ylabel("sent packets/s", color="tab:blue")
    loss.plot(t, [r["loss_pct"] for r in rows], color="tab:red")
    loss.set_ylabel("loss %")
    for key, label in (
        ("latency_p50_ms", "p50"),
        ("latency_p99_ms", "p99"),
        ("socket_latency_p99_ms", "p99 at the socket"),
    ):
        latency.plot(t, [r[key] if r[key] is not None else float("nan") for r in rows], label=label)
    latency.set_ylabel("latency ms")
    latency.legend()
    latency.set_xlabel("seconds")
    none = float("nan")
    cpu.plot(t, [r["server_cpu_pct"] or none for r in rows], label="server CPU %")
    cpu.plot(t, [r["generator_cpu_pct"] for r in rows], label="generator CPU %")
    cpu.set_ylabel("CPU % (100 = one core)")
    cpu.set_xlabel("seconds")
    cpu.legend()
    config = result["config"]
    figure.suptitle(
        f"LiteSFU load: {config['publishers']} publishers, {config['players']} players "
        f"({config['route']})"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description="Load LiteSFU with codec-free WebRTC clients."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="server base URL")
    parser.add_argument("--publishers", type=int, default=1)
    parser.add_argument("--players", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=10, help="measurement window")
    parser.add_argument("--route", choices=("whip", "srs"), default="whip")
    parser.add_argument("--server-pid", type=int, help="sample this process tree's CPU and RSS")
    parser.add_argument("--procs", type=int, default=1, help="generator processes")
    parser.add_argument("--sample-every", type=int, default=10, help="decrypt 1 in k packets")
    parser.add_argument("--stream-prefix", default="live/bench")
    parser.add_argument(
        "--simulcast", action="store_true", help="publishers send 3 layers; players get the top"
    )
    parser.add_argument(
        "--beside-single",
        action="store_true",
        help="with --simulcast: a single-layer run first, then the forwarding cost of both",
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--plot", type=Path, help="write a PNG of the per-second series here")
    args = parser.parse_args(argv)
    if args.publishers < 1 or args.players < 0 or args.seconds < 1 or args.procs < 1:
        parser.error("need --publishers >= 1, --players >= 0, --seconds >= 1, --procs >= 1")
    if args.beside_single and not (args.simulcast and args.server_pid):
        parser.error("--beside-single needs --simulcast and --server-pid (the cost is its CPU)")
    if args.route == "srs" and args.stream_prefix.count("/") != 1:
        parser.error("--route srs needs --stream-prefix of the form app/name")
    return args


def print_beside(single: dict, simulcast: dict) -> None:
    """The forwarding cost of the simulcast run next to the single-layer one on the same load."""
    cost = [r["summary"]["cpu_us_per_player_packet"] for r in (single, simulcast)]
    ratio = cost[1] / cost[0] if None not in cost and cost[0] else None
    print(
        f"forwarding cost, server CPU per player packet: single layer {fmt(cost[0], '.2f')} us, "
        f"simulcast (3 layers in, the top one out) {fmt(cost[1], '.2f')} us, "
        f"ratio {fmt(ratio, '.2f')}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        single = None
        if args.beside_single:
            single_args = argparse.Namespace(**{**vars(args), "simulcast": False})
            single_args.stream_prefix = f"{args.stream_prefix}-single"
            single = run(single_args)
            print_summary(single)
        result = run(args)
    except LoadError as exc:
        print(f"bench.load: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print_summary(result)
    if single is not None:
        print_beside(single, result)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    if args.plot is not None:
        plot(result, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
