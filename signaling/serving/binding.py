"""A port the server could not take, said in one line: which protocol, address and port, and
what to do about it, instead of `[Errno 98] Address already in use`."""

from __future__ import annotations

import errno
import os
import sys

ADVICE = {
    errno.EADDRINUSE: "another process holds it: stop that process or choose another {flag}",
    errno.EACCES: "ports below 1024 need root or CAP_NET_BIND_SERVICE: choose another {flag}",
    errno.EADDRNOTAVAIL: "this machine has no such address: choose one it has, or 0.0.0.0",
}


def bind_failure(protocol: str, host: str, port: int, flag: str, exc: OSError) -> str:
    """The line that says which bind failed and why, with advice for the common causes."""
    reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
    advice = ADVICE.get(exc.errno or 0, "").format(flag=flag)
    where = f"[{host}]" if ":" in host else host or "*"
    line = f"litesfu: cannot bind {protocol} {where}:{port} ({flag}): {reason}"
    return f"{line}; {advice}" if advice else line


def refuse_bind(protocol: str, host: str, port: int, flag: str, exc: OSError) -> SystemExit:
    """Print the bind failure on stderr and give the SystemExit (status 1) to raise."""
    print(bind_failure(protocol, host, port, flag, exc), file=sys.stderr)
    return SystemExit(1)
