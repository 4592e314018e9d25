"""The recording flags: defaults, bounds, and a one-line reason for each bad value."""

from __future__ import annotations

import pytest

from signaling.startup.flags import parse_args


def test_recording_is_off_by_default():
    args = parse_args([])
    assert args.record_dir is None and args.record == [] and args.record_segment == 0


def test_recording_flags_are_taken(tmp_path):
    args = parse_args(["--record-dir", str(tmp_path / "r"), "--record", "live/*", "--record",
                       "show", "--record-segment", "600"])  # fmt: skip
    assert args.record == ["live/*", "show"]
    assert args.record_segment == 600.0
    assert (tmp_path / "r").is_dir()  # made at start-up


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--record", "live/*"], "--record needs --record-dir"),
        (["--record-segment", "-1"], "must be 0 (one file per publish)"),
        (["--record-segment", "100000"], "must be 0 (one file per publish)"),
        (["--record-dir", "/proc/version/x"], "--record-dir /proc/version/x"),
        (["--record-dir", "{tmp}", "--workers", "2"], "single media process"),
        (["--record-dir", "{tmp}", "--record", "x" * 201], "each pattern 1 to 200"),
        (["--record-dir", "{tmp}", *["--record", "a"] * 33], "at most 32 patterns"),
    ],
)
def test_bad_recording_flags_exit_with_a_reason(argv, reason, capsys, tmp_path):
    with pytest.raises(SystemExit) as exited:
        parse_args([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    assert exited.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert reason in error
