"""CPU and memory of a process and its descendants, read from /proc (Linux only).

A server started with workers is a process tree, so the sampler sums the tree: CPU seconds from
/proc/PID/stat (utime + stime, all threads) and resident memory from /proc/PID/status (VmRSS).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MAX_PROCESSES = 100_000  # bound on the /proc scan


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads); 0 when it is gone."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 13:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """Resident set size of one process; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def descendants(root: int) -> list[int]:
    """root and every process below it, found through the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [root]
    for name in entries[:MAX_PROCESSES]:
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None and len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    tree = [root]
    for pid in tree:  # grows as it goes: breadth-first, bounded by the scan above
        tree.extend(children.get(pid, ()))
    return tree


class TreeSampler:
    """CPU % (100 = one core) and RSS of a process tree between successive samples."""

    def __init__(self, pids: list[int], *, include_children: bool = True) -> None:
        self.pids = pids
        self.include_children = include_children
        self._last = self._read()

    def _members(self) -> list[int]:
        if not self.include_children:
            return list(self.pids)
        members: list[int] = []
        for pid in self.pids:
            members.extend(descendants(pid))
        return members

    def _read(self) -> tuple[float, float, int]:
        members = self._members()
        cpu = sum(cpu_seconds(pid) for pid in members)
        rss = sum(rss_bytes(pid) for pid in members)
        return time.monotonic(), cpu, rss

    def sample(self) -> tuple[float, float, float]:
        """(CPU % since the last sample, CPU seconds since the last sample, RSS in MB now)."""
        then, cpu_then, _ = self._last
        self._last = now, cpu, rss = self._read()
        elapsed = now - then
        used = max(0.0, cpu - cpu_then)
        percent = 100.0 * used / elapsed if elapsed > 0 else 0.0
        return percent, used, rss / 1e6


def tree_rss_bytes(root: int) -> int:
    """Resident set size of a process and its descendants (a server with workers is a tree)."""
    return sum(rss_bytes(pid) for pid in descendants(root))
