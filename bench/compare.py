"""Two checkouts side by side: this one against an earlier commit, alternately, same load.

    python -m bench.compare [--base REF] [--players 400 800] [--seconds 6] [--rounds 2]

The base defaults to the commit before the compiled fan-out landed (the parent of the first
commit that added the fan-out's C file). It is unpacked with `git archive` into a temporary
folder and run with this venv's interpreter and packages; a base that has the C file gets it
built in place first, so it forwards on the path it had (the default base has none: Python).
For every player count, each round runs one fresh server of each checkout in turn (the order
flips every round, so neither always has the warmer machine), with this checkout's load generator
(`bench.load`, 1 publisher at ~112 packets/s). It prints egress packets per server CPU-second,
p99 latency (as the players read the packets, and as the packets reached their sockets by the
kernel's stamp, which leaves out the load generator's own queueing), the server's peak RSS
and CPU for both, and the head/base ratio of the medians: over all runs, and over the runs
whose server was not saturated (under 90 % of its core). Numbers only: nothing here passes or
fails on them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.launcher import ROOT
from bench.sweep import fmt, run_step

# Server CPU (100 = one core) from which a run counts as saturated.
SATURATED_CPU = 90.0
# Flags that turn off what would stop one client address from opening hundreds of sessions;
# a checkout that predates a flag does not get it.
UNLIMITED = [
    ("--max-sessions", "0"),
    ("--client-rate", "0"),
    ("--client-pending", "0"),
    ("--client-connections", "0"),
]


# Where the fan-out's C source has lived: before and after the package restructure.
FANOUT_SOURCES = ("sfu/_fanout.c", "sfu/protocol/_fanout.c")


def default_base() -> str:
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", *FANOUT_SOURCES],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    if not added:
        raise SystemExit("compare: the fan-out's C file is in no commit; give --base")
    return f"{added[-1]}^"


def unpack(ref: str, into: Path) -> str:
    """`ref` unpacked into `into`; returns its commit id."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return commit


def build_extension(root: Path) -> str:
    """Build the compiled fan-out in place in a checkout that has one, so a base that already
    had it is measured on the path it would run; what was done, for the header line."""
    sources = [root / path for path in FANOUT_SOURCES if (root / path).exists()]
    if not sources:
        return "no extension (Python path)"
    built = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if built.returncode != 0 or not list(sources[0].parent.glob("_fanout*.so")):
        return "extension failed to build (Python path)"
    return "extension built"


def unlimited_flags(root: Path) -> list[str]:
    """The flags of UNLIMITED that the server at `root` knows."""
    helped = subprocess.run(
        [sys.executable, "-m", "sfu", "--help"],
        cwd=root, capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return [part for flag, value in UNLIMITED if flag in helped for part in (flag, value)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--base", help="the commit to compare against (default: see above)")
    parser.add_argument("--players", type=int, nargs="+", default=[400, 800])
    parser.add_argument("--seconds", type=int, default=6, help="load seconds per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each checkout per count")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.rounds < 1 or args.procs < 1 or min(args.players) < 1:
        parser.error("--seconds, --rounds, --procs and --players must be >= 1")
    return args


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def run_all(args: argparse.Namespace, roots: dict[str, Path], tmp: Path) -> dict:
    """Every run, alternating the checkouts: {(players, label): [load summaries]}."""
    extra = {label: unlimited_flags(root) for label, root in roots.items()}
    print(
        f"{'players':>7} {'run':>5} {'pkts/CPU-s':>10} {'p99 ms':>7} {'sock p99':>8} "
        f"{'RSS MB':>7} {'CPU %':>6}"
    )
    results: dict[tuple[int, str], list[dict]] = {}
    for players in args.players:
        for round_index in range(args.rounds):
            order = ["base", "head"] if round_index % 2 == 0 else ["head", "base"]
            for label in order:
                run_dir = tmp / f"{label}-{players}-{round_index}"
                run_dir.mkdir()
                summary = run_step(players, args, extra[label], run_dir, roots[label])
                if summary is None:
                    continue
                results.setdefault((players, label), []).append(summary)
                print(
                    f"{players:>7} {label:>5} "
                    f"{fmt(summary['egress_pps_per_cpu_second'], '.0f'):>10} "
                    f"{fmt(summary['latency_p99_ms'], '.1f'):>7} "
                    f"{fmt(summary.get('socket_latency_p99_ms'), '.1f'):>8} "
                    f"{fmt(summary['server_rss_mb_max'], '.0f'):>7} "
                    f"{fmt(summary['server_cpu_pct'], '.0f'):>6}"
                    f"{' saturated' if saturated(summary) else ''}"
                )
    return results


def saturated(summary: dict) -> bool:
    """A server that used (nearly) all of its core: it falls behind, its players lose packets
    and ask for them again, so what it does per packet is no longer what it costs per packet."""
    cpu = summary["server_cpu_pct"]
    return cpu is not None and cpu >= SATURATED_CPU


def median_rate(summaries: list[dict]) -> float | None:
    rates = [s["egress_pps_per_cpu_second"] for s in summaries]
    return median([rate for rate in rates if rate is not None])


def print_ratios(players_counts: list[int], results: dict) -> None:
    """The medians, and their ratio: over all runs, and over the runs whose server had CPU to
    spare (a saturated base makes the first ratio larger than the cost per packet says)."""
    print(
        f"\n{'players':>7} {'base pkts/CPU-s':>15} {'head pkts/CPU-s':>15} {'ratio':>6} "
        f"{'unsaturated runs':>16}"
    )
    for players in players_counts:
        base_runs, head_runs = (
            results.get((players, "base"), []),
            results.get((players, "head"), []),
        )
        base, head = median_rate(base_runs), median_rate(head_runs)
        ratio = head / base if base and head else None
        spare_base = median_rate([s for s in base_runs if not saturated(s)])
        spare_head = median_rate([s for s in head_runs if not saturated(s)])
        spare = spare_head / spare_base if spare_base and spare_head else None
        print(
            f"{players:>7} {fmt(base, '.0f'):>15} {fmt(head, '.0f'):>15} {fmt(ratio, '.2f'):>6} "
            f"{fmt(spare, '.2f'):>16}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="litesfu-compare-") as tmp:
        base_root = Path(tmp) / "base"
        commit = unpack(args.base or default_base(), base_root)
        print(
            f"compare: base {commit[:12]} ({build_extension(base_root)}) against this "
            f"checkout, {args.rounds} rounds, {args.seconds} s a run"
        )
        results = run_all(args, {"base": base_root, "head": ROOT}, Path(tmp))
        print_ratios(args.players, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
