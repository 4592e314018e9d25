"""Network namespaces joined to ours by a veth pair, for browser tests that need a network
other than loopback: stock browsers gather no loopback candidate, and a link cap (tc) must
apply to one participant only. Addresses come from 198.18.0.0/15, the benchmarking range,
which no real network uses; nothing leaves the two ends of a pair.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BLOCK = ipaddress.ip_network("198.18.0.0/15")


@dataclass
class Namespace:
    """A network namespace joined to ours by a veth pair, one address at each end."""

    name: str
    inside: str  # the namespace's end
    outside: str  # our end
    device: str  # our end's interface: where a cap on what goes into the namespace sits

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


def run_ip(*args: str) -> None:
    """Run `ip ARGS`; a failure says which command and why."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def skip_or_fail(reason: str) -> None:
    """Locally a missing capability skips; in CI it must fail loudly."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure)")
    pytest.skip(f"{reason}; CI is not set")


def _remove_stale(prefix: str) -> None:
    """Drop namespaces left by a run that was killed before its clean-up (its pid is gone)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    for name, pid in re.findall(rf"^({prefix}-(\d+))\b", listed.stdout, re.MULTILINE):
        if not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@contextlib.contextmanager
def veth_namespace(prefix: str, short: str, slot: int) -> Iterator[Namespace]:
    """A fresh namespace `prefix`-PID, its /30 chosen by pid and `slot` (so two modules'
    namespaces never share one), removed afterwards even when a test or the set-up fails;
    `short` names the veth ends (interface names are at most 15 characters)."""
    with contextlib.suppress(OSError):
        _remove_stale(prefix)
    pid = os.getpid()
    quads = BLOCK.num_addresses // 4
    pair = BLOCK.network_address + 4 * ((pid * 4 + slot) % quads)
    ours, theirs = f"{short}{pid}o", f"{short}{pid}i"
    ns = Namespace(f"{prefix}-{pid}", inside=str(pair + 2), outside=str(pair + 1), device=ours)
    try:
        run_ip("netns", "add", ns.name)
    except OSError as err:
        skip_or_fail(f"cannot create a network namespace: {err}")
    try:
        run_ip("link", "add", ours, "type", "veth", "peer", "name", theirs, "netns", ns.name)
        run_ip("addr", "add", f"{ns.outside}/30", "dev", ours)
        run_ip("link", "set", ours, "up")
        run_ip("-n", ns.name, "link", "set", "lo", "up")
        run_ip("-n", ns.name, "addr", "add", f"{ns.inside}/30", "dev", theirs)
        run_ip("-n", ns.name, "link", "set", theirs, "up")
        yield ns
    finally:
        # Deleting the namespace deletes its veth end, and with it ours (and its qdisc).
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", ours], capture_output=True, timeout=10)
