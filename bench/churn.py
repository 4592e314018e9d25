"""`python -m bench.churn`: churn runs back to back, and the server's memory across them.

    python -m bench.churn [--runs 4] [--sessions 200] [--seconds 60] [--publishers 4] \\
        [--publisher-share 0.1] [--life 2 6] [--seed N] [--settle 5] [--json FILE] \\
        [--url http://127.0.0.1:8080 [--pid PID]]

Without --url it starts a server of this checkout on free loopback ports (bench.launcher) and
stops it at the end; with --url it churns that one, and reads its RSS when given its --pid.
Each run (bench.churning) prints joins, leaves, failures and packets received, the server's
`/api/v1/server` counts before it and `--settle` seconds after, and its RSS before, at its peak
and after (bench.churn_memory).
Exit status: 0 when the runs completed, whatever the numbers; 2 when the server was
unreachable or no long-lived publisher connected.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from bench.churn_memory import churn_runs
from bench.churning import ChurnConfig, ChurnError
from bench.launcher import start_server, stop_server
from bench.procstat import tree_rss_bytes

# The server started here: vanished sessions end after 3 s, as in the soak test, and every
# session comes from 127.0.0.1, so the per-address admission rate must allow the whole churn.
OWN_SERVER_ARGS = ("--session-timeout", "3", "--client-rate", "100", "--client-burst", "100")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.churn", description="Sessions joining and leaving LiteSFU."
    )
    parser.add_argument("--url", help="base URL of a running server (default: start one)")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid, to read its RSS")
    parser.add_argument("--runs", type=int, default=4, help="churn runs, one after another")
    parser.add_argument("--sessions", type=int, default=200, help="churning sessions")
    parser.add_argument("--seconds", type=float, default=60.0, help="period they start over")
    parser.add_argument("--publishers", type=int, default=4, help="long-lived publishers")
    parser.add_argument("--publisher-share", type=float, default=0.1)
    parser.add_argument("--life", type=float, nargs=2, default=(2.0, 6.0), metavar=("MIN", "MAX"))
    parser.add_argument("--prefix", default="live/churn", help="stream name prefix")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--settle",
        type=float,
        default=5.0,
        help="seconds to wait before reading the server's counts after each run (vanished "
        "sessions last until the server's --session-timeout)",
    )
    parser.add_argument("--json", type=Path, help="write each run's summary and outcomes here")
    args = parser.parse_args(argv)
    if args.publishers < 1 or args.sessions < 0 or args.seconds <= 0 or args.runs < 1:
        parser.error("need --publishers >= 1, --sessions >= 0, --seconds > 0, --runs >= 1")
    if args.pid is not None and args.url is None:
        parser.error("--pid names the server of --url")
    if not 0 < args.life[0] <= args.life[1]:
        parser.error("need 0 < --life MIN <= MAX")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.url is None:
            log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="churn-")))
            try:
                server = start_server(log_dir, *OWN_SERVER_ARGS)
            except RuntimeError as exc:
                print(f"bench.churn: cannot start a server: {exc}", file=sys.stderr)
                return 2
            stack.callback(stop_server, server)
            base_url, pid = server.http_url, server.pid
            print(f"bench.churn: started a server at {base_url} (pid {pid})", flush=True)
        else:
            base_url, pid = args.url.rstrip("/"), args.pid
        config = ChurnConfig(
            base_url,
            sessions=args.sessions,
            seconds=args.seconds,
            publishers=args.publishers,
            publisher_share=args.publisher_share,
            min_life=args.life[0],
            max_life=args.life[1],
            prefix=args.prefix,
            seed=args.seed,
        )
        rss = (lambda: tree_rss_bytes(pid)) if pid is not None else None
        try:
            results, memory = churn_runs(config, args.runs, args.settle, rss)
        except ChurnError as exc:
            print(f"bench.churn: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 130
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "config": asdict(config),
            "runs": [
                {
                    "summary": result.summary(),
                    "problems": result.problems(),
                    "server": result.server,
                    "outcomes": result.outcomes,
                    "publishers": result.publishers,
                }
                for result in results
            ],
            "rss": [asdict(m) for m in memory],
        }
        args.json.write_text(json.dumps(document, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
