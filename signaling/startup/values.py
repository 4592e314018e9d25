"""What each flag's value may be: one checking converter per kind of value.

A flag names its kind as its argparse `type`, so the check lives in its declaration and a new
flag picks a kind (or adds one here) rather than a check somewhere after parsing. A converter
raises ArgumentTypeError with a reason that reads after the flag's name in one line:
`litesfu: --udp-port: 99999 is not a port (0-65535)`. Every text value is bounded in length.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import math
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from signaling.sdp.candidates import AUTO

SHOWN = 200  # characters of a bad value a message repeats
MAX_TEXT = 1024  # characters of any text flag: a token, a secret, a URL, a path
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){LABEL}(?:\.{LABEL})*\.?")
NODE_NAME = re.compile(r"[A-Za-z0-9_.~-]{1,64}")

Bad = argparse.ArgumentTypeError


def shown(value: str) -> str:
    """A value as the message names it: as typed when plain, quoted when empty or odd, cut
    when long, so the message stays one readable line."""
    cut = value if len(value) <= SHOWN else value[: SHOWN - 3] + "..."
    plain = cut and cut.isprintable() and " " not in cut and "'" not in cut
    return cut if plain else repr(cut)


def text(value: str) -> str:
    """Any non-empty text of bounded length without control characters."""
    if not value or len(value) > MAX_TEXT or any(ord(c) < 32 for c in value):
        raise Bad(f"{shown(value)} is not 1 to {MAX_TEXT} printable characters")
    return value


def whole(low: int, high: int | None = None, meaning: str = "") -> Callable[[str], int]:
    """A whole number from low to high (no upper bound when high is None)."""
    span = f"{low}-{high}" if high is not None else f"{low} or more"

    def convert(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            number = None
        if number is None or number < low or (high is not None and number > high):
            raise Bad(f"{shown(value)} is not {meaning or 'a whole number'} ({span})")
        return number

    convert.__name__ = meaning.replace(" ", "_") or f"whole_{low}"
    return convert


port = whole(0, 65535, "a port")
count = whole(0, None, "a count")  # 0 means none
positive = whole(1, None, "a count")


def seconds(value: str) -> float:
    """A duration in seconds: a finite number above 0."""
    number = _number(value)
    if number is None or number <= 0:
        raise Bad(f"{shown(value)} is not a number of seconds above 0")
    return number


def rate(value: str) -> float:
    """A rate per second: a finite number above 0."""
    number = _number(value)
    if number is None or number <= 0:
        raise Bad(f"{shown(value)} is not a rate above 0")
    return number


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def log_level(value: str) -> str:
    if value.strip().lower() not in LOG_LEVELS:
        raise Bad(f"{shown(value)} is not a log level ({', '.join(LOG_LEVELS)})")
    return value.strip().lower()


def ip_literal(value: str) -> str | None:
    """The address in canonical form when value is an IP literal, else None."""
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return None


def ipv4(value: str) -> str:
    address = ip_literal(value)
    if address is None or ":" in address:
        raise Bad(f"{shown(value)} is not an IPv4 address")
    return address


def resolve(name: str) -> str | None:
    """The first address a host name resolves to now (IPv4 first), or None. Through the
    event loop's resolver, as the control plane does all its networking; start-up runs
    before any loop, so it runs one for the look-up."""

    async def lookup() -> list[tuple]:
        return await asyncio.get_running_loop().getaddrinfo(name, None)

    try:
        found = [str(entry[4][0]) for entry in asyncio.run(lookup())]
    except (OSError, UnicodeError):
        return None
    return min(found, key=lambda address: ":" in address, default=None)


def bind_host(value: str) -> str:
    """An address of this machine to bind: an IP literal, or a name that resolves now."""
    if value in ("", "0.0.0.0", "::") or ip_literal(value) is not None:
        return value
    if not HOST_NAME.fullmatch(value) or resolve(value) is None:
        raise Bad(f"{shown(value)} is not an IP address or a host name that resolves")
    return value


class ResolvedCandidate(str):
    """A candidate address resolved from a host name at start; `name` says which name."""

    name: str

    def __new__(cls, address: str, name: str) -> ResolvedCandidate:
        made = super().__new__(cls, address)
        made.name = name
        return made


def candidate(value: str) -> str:
    """`auto`, an IP literal, or a host name resolved once, now, to the address advertised;
    a `stun:HOST:PORT` entry is left to the candidates' own check (split_stun)."""
    if isinstance(value, ResolvedCandidate):
        return value
    if value.strip().lower() == AUTO:
        return AUTO
    if value.strip().lower().startswith("stun:"):
        return text(value.strip())
    address = ip_literal(value)
    if address is not None:
        return address
    found = resolve(value) if HOST_NAME.fullmatch(value) else None
    if found is None:
        raise Bad(f"{shown(value)} is not an IP address, 'auto', or a host name that resolves")
    return ResolvedCandidate(found, value)


def http_url(value: str) -> str:
    """An absolute http:// or https:// URL with a host."""
    text(value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Bad(f"{shown(value)} is not an http:// or https:// URL")
    return value


def redis_url(value: str) -> str:
    text(value)
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise Bad(f"{shown(value)} must be a redis://, rediss:// or unix:// URL")
    return value


def node_name(value: str) -> str:
    if not NODE_NAME.fullmatch(value):
        raise Bad(f"{shown(value)} is not 1-64 of A-Z a-z 0-9 _ . ~ -")
    return value


def directory(value: str) -> Path:
    path = Path(text(value))
    if not path.is_dir():
        raise Bad(f"{shown(value)} is not a directory")
    return path


def readable_file(value: str) -> str:
    path = Path(text(value))
    if not path.is_file():
        raise Bad(f"{shown(value)} is not a file")
    return value
