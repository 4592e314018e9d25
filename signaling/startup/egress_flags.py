"""The recording flags (sfu/egress): where files go, which streams, how long a file runs."""

from __future__ import annotations

import argparse
import os

from signaling.startup.declare import flag
from signaling.startup.settings import ReplacingAppend
from signaling.startup.values import text

MAX_PATTERNS = 32
MAX_PATTERN_LENGTH = 200
MAX_SEGMENT = 86400.0  # a day


def _segment(text: str) -> float:
    value = float(text)
    if not 0 <= value <= MAX_SEGMENT:
        raise argparse.ArgumentTypeError(f"must be 0 (one file per publish) to {MAX_SEGMENT:g}")
    return value


def add_egress_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("recording (on with --record-dir)")
    flag(
        group,
        "--record-dir",
        text,
        None,
        "folder recordings are written to, STREAM/YYYYmmdd-HHMMSS.webm or .mp4; turns "
        "recording on, by --record or POST /api/v1/recordings",
    )
    flag(
        group,
        "--record",
        text,
        None,
        "record every stream whose name matches this glob whenever it is live, e.g. "
        "'live/*'; repeatable",
        action=ReplacingAppend,
        metavar="PATTERN",
    )
    flag(group, "--record-segment", _segment, "0",
         "seconds after which a recording goes on in a new file, at a keyframe; 0: one "
         "file per publish")  # fmt: skip


def check_egress_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Patterns bounded and only with a folder; the folder made and writable at start-up."""
    args.record = list(args.record or ())
    if len(args.record) > MAX_PATTERNS:
        parser.error(f"--record: at most {MAX_PATTERNS} patterns")
    if any(not p.strip() or len(p) > MAX_PATTERN_LENGTH for p in args.record):
        parser.error(f"--record: each pattern 1 to {MAX_PATTERN_LENGTH} characters")
    if not args.record_dir:
        if args.record:
            parser.error("--record needs --record-dir")
        return
    if args.workers != 1:
        parser.error("--record-dir records in a single media process: use --workers 1")
    try:
        os.makedirs(args.record_dir, exist_ok=True)
    except OSError as exc:
        parser.error(f"--record-dir {args.record_dir}: {exc.strerror}")
    if not os.access(args.record_dir, os.W_OK | os.X_OK):
        parser.error(f"--record-dir {args.record_dir}: not writable")
