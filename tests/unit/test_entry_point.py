"""The program starts as `litesfu`, `python -m litesfu` and, for old scripts, `python -m sfu`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("litesfu")  # installed by pyproject's [project.scripts]


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "litesfu", "--help"],
        [sys.executable, "-m", "sfu", "--help"],
        pytest.param(
            [str(SCRIPT), "--help"],
            marks=pytest.mark.skipif(not SCRIPT.exists(), reason="not installed (pip -e .)"),
        ),
    ],
    ids=["python -m litesfu", "python -m sfu", "litesfu"],
)
def test_every_entry_reaches_the_cli(command: list[str]) -> None:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: litesfu ") and "--workers" in done.stdout


def test_python_m_sfu_passes_its_arguments_on() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sfu", "--no-such-flag"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "unrecognized arguments: --no-such-flag" in done.stderr
