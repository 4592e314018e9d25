"""The `litesfu` command: parse the flags, set up logging, run one server or the --workers front.

The media plane is imported only when this process runs it, so the front loads none of it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Coroutine, Sequence

from signaling.observe.logs import setup_logging
from signaling.startup.flags import parse_args

log = logging.getLogger("litesfu")


def serving(args: argparse.Namespace) -> Coroutine[None, None, None]:
    """The coroutine this process runs: a media server, or the front of --workers N."""
    if args.workers == 1:
        from signaling.startup.serve import serve

        return serve(args)
    from signaling.workers.serve import serve_front

    return serve_front(args)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_format, args.worker_index)
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serving(args))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(1) from exc
