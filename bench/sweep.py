"""Find where one server saturates: 1 publisher, more and more players, a fresh server each step.

    python -m bench.sweep [--seconds 5] [--max-players 3200] [--workers W] [--procs K]
                          [--out bench/results]

Each step starts `python -m sfu` on free ports on 127.0.0.1, runs `bench.load` against it with
--server-pid, and stops it. Players go 10, 50, 100, 200, 400, 800, ... until loss exceeds 1 %,
the server uses more than 95 % of a core (per worker), more than 1 % of players fail to
connect, or --max-players is reached. The table
shows server CPU (100 % = one core), egress packets/s (as received by the players), egress
packets per server CPU-second, players per core (extrapolated to 100 % CPU), latency and loss,
plus the generator's own CPU: when that nears 100 % per --procs, the generator is the limit.
Results go to <out>/sweep.json and <out>/sweep.png (players vs server CPU and latency).
`--workers W` runs the server as W worker processes behind its front.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.launcher import ROOT, start_server, stop_server

FIRST_STEPS = (10, 50, 100, 200, 400)
LOSS_LIMIT = 1.0  # percent
CPU_LIMIT = 95.0  # percent of one core, per server worker
MAX_STEPS = 20
CONNECT_FAILURE_LIMIT = 0.01  # fraction of players
# Media on loopback only, and a quiet log: the load generator's clients are all 127.0.0.1.
SERVER_ARGS = ("--udp-host", "127.0.0.1", "--log-level", "WARNING")


def player_steps(max_players: int) -> list[int]:
    """10, 50, 100, 200, 400, then doubling, capped by (and ending at) max_players."""
    doubling = (FIRST_STEPS[-1] << k for k in range(1, MAX_STEPS))
    steps = list(itertools.takewhile(lambda n: n < max_players, [*FIRST_STEPS, *doubling]))
    return [*steps, max_players]


def run_step(
    players: int, args: argparse.Namespace, extra: list[str], tmp: Path, root: Path = ROOT
) -> dict | None:
    """One fresh server (of the checkout at `root`), one load run with this checkout's load
    generator; the load result's summary, or None if the run failed."""
    result_path = tmp / f"load-{players}.json"
    server = start_server(tmp, *SERVER_ARGS, *extra, root=root)
    command = [
        sys.executable, "-m", "bench.load",
        "--url", server.http_url, "--publishers", "1", "--players", str(players),
        "--seconds", str(args.seconds), "--server-pid", str(server.pid),
        "--procs", str(args.procs), "--json", str(result_path),
    ]  # fmt: skip
    try:
        run = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120 + args.seconds + players * 0.1,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"  {players} players: load generator timed out", file=sys.stderr)
        return None
    finally:
        stop_server(server)
    if run.returncode != 0 or not result_path.exists():
        message = f"  {players} players: load failed ({run.returncode}):\n{run.stderr}"
        print(message, file=sys.stderr)
        return None
    result = json.loads(result_path.read_text())
    errors = result["errors"]
    return {**result["summary"], "first_connect_error": errors[0] if errors else None}


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


HEADER = (
    f"{'players':>7} {'srv CPU%':>8} {'egress pps':>10} {'pkts/CPU-s':>10} {'players/core':>12} "
    f"{'p50 ms':>7} {'p99 ms':>7} {'loss %':>7} {'gen CPU%':>8} {'failed':>6} {'loadavg':>7}"
)


def row_text(row: dict) -> str:
    return (
        f"{row['players']:>7} {fmt(row['server_cpu_pct'], '.0f'):>8} "
        f"{fmt(row['recv_pps'], '.0f'):>10} {fmt(row['egress_pps_per_cpu_second'], '.0f'):>10} "
        f"{fmt(row['players_per_core'], '.0f'):>12} {fmt(row['latency_p50_ms'], '.2f'):>7} "
        f"{fmt(row['latency_p99_ms'], '.2f'):>7} {fmt(row['loss_pct'], '.3f'):>7} "
        f"{fmt(row['generator_cpu_pct'], '.0f'):>8} {row['connect_failures']:>6} "
        f"{row['loadavg_1min_at_end']:>7.2f}"
    )


def plot(rows: list[dict], path: Path) -> None:
    """Players against server CPU (left axis) and latency p50/p99 (right axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    players = [r["players"] for r in rows]
    figure, cpu_axis = plt.subplots(figsize=(8, 5))
    cpu_axis.plot(players, [r["server_cpu_pct"] for r in rows], "o-", label="server CPU %")
    cpu_axis.plot(players, [r["generator_cpu_pct"] for r in rows], "s--", label="generator CPU %")
    cpu_axis.set_xlabel("players (1 publisher, ~110 packets/s each)")
    cpu_axis.set_ylabel("CPU % (100 = one core)")
    latency_axis = cpu_axis.twinx()
    for key, style in (("latency_p50_ms", "^:"), ("latency_p99_ms", "v:")):
        values = [r[key] if r[key] is not None else float("nan") for r in rows]
        latency_axis.plot(players, values, style, color="tab:red", label=key.split("_")[1])
    latency_axis.set_ylabel("latency ms", color="tab:red")
    handles = cpu_axis.get_legend_handles_labels()
    more = latency_axis.get_legend_handles_labels()
    cpu_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left")
    figure.suptitle("LiteSFU sweep: server CPU and latency against players")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sweep", description="Find the player count one server saturates at."
    )
    parser.add_argument("--seconds", type=int, default=5, help="measurement window per step")
    parser.add_argument("--max-players", type=int, default=3200)
    parser.add_argument("--workers", type=int, default=1, help="server --workers, if it has it")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.max_players < 1 or args.workers < 1 or args.procs < 1:
        parser.error("--seconds, --max-players, --workers and --procs must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # No session limit and no per-client admission (every generated client is 127.0.0.1);
    # with workers, each takes udp-port + i, so let the kernel choose them.
    extra = ["--max-sessions", "0", "--client-rate", "0", "--client-pending", "0"]
    extra += ["--client-connections", "0"]
    workers = args.workers
    if workers > 1:
        extra += ["--workers", str(workers), "--udp-port", "0"]
    cpu_limit = CPU_LIMIT * workers
    rows: list[dict] = []
    stopped_by = f"--max-players {args.max_players}"
    print(f"sweep: {args.seconds} s a step, server workers {workers}, generator procs {args.procs}")
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="litesfu-sweep-") as tmp:
        for players in player_steps(args.max_players):
            try:
                summary = run_step(players, args, extra, Path(tmp))
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                summary = None
            if summary is None:
                stopped_by = f"a failed run at {players} players"
                break
            row = {"players": players, **summary}
            rows.append(row)
            print(row_text(row), flush=True)
            if summary["connect_failures"] > CONNECT_FAILURE_LIMIT * players:
                stopped_by = (
                    f"{summary['connect_failures']} players failed to connect, "
                    f"first: {summary['first_connect_error']}"
                )
                break
            if summary["loss_pct"] > LOSS_LIMIT:
                stopped_by = f"loss {summary['loss_pct']:.2f}% > {LOSS_LIMIT}%"
                break
            if (summary["server_cpu_pct"] or 0) > cpu_limit:
                stopped_by = f"server CPU {summary['server_cpu_pct']:.0f}% > {cpu_limit:.0f}%"
                break
    print(f"stopped by {stopped_by}")
    args.out.mkdir(parents=True, exist_ok=True)
    document = {
        "config": {
            "seconds": args.seconds,
            "max_players": args.max_players,
            "server_workers": workers,
            "generator_procs": args.procs,
            "cpus": os.cpu_count(),
        },
        "stopped_by": stopped_by,
        "rows": rows,
    }
    (args.out / "sweep.json").write_text(json.dumps(document, indent=1))
    if rows:
        plot(rows, args.out / "sweep.png")
    print(f"wrote {args.out / 'sweep.json'} and {args.out / 'sweep.png'}")
    return 0 if rows else 1


if __name__ == "__main__":
    sys.exit(main())
