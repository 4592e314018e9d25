"""A TOML config file beneath the flags: flag > environment > file > default.

It works over whatever actions the parser has, so a new flag is a config key with no more
code: `--max-players` is `max-players` or `max_players` in the file. Which defaults the
environment changed is found by building the parser a second time with an empty environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from unittest import mock

import tomllib

NOT_SETTINGS = frozenset({"help", "config", "print_config"})
SECRET_WORDS = ("secret", "token", "password", "credential")
MASK = "***"


class ReplacingAppend(argparse._AppendAction):
    """An append flag whose first use replaces a default list instead of adding to it."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        if getattr(namespace, self.dest, None) is self.default:
            setattr(namespace, self.dest, [])
        super().__call__(parser, namespace, values, option_string)


def settings(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's actions that a file may set, by key."""
    return {
        a.dest: a
        for a in parser._actions
        if a.dest not in NOT_SETTINGS and a.help is not argparse.SUPPRESS
    }


def read_file(path: Path) -> dict[str, object]:
    """The file's keys (dashes made underscores) and values; ValueError with a reason."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    return {key.replace("-", "_"): value for key, value in data.items()}


def checked(action: argparse.Action, key: str, value: object) -> object:
    """The value in the shape the flag takes, or ValueError naming the key."""
    if isinstance(
        action,
        (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction),
    ):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false")
        return value
    if isinstance(action, argparse._AppendAction):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError(f"{key} must be a string or a list of strings")
        try:
            return [action.type(i) if action.type else i for i in items]
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"{key}: {exc}") from exc
    if isinstance(value, (dict, list, bool)) and not isinstance(action.default, bool):
        raise ValueError(f"{key} must be a single value")
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{key} must be one of {', '.join(map(str, action.choices))}")
    return str(value) if action.type is not None else value


def parse(
    build: Callable[[], argparse.ArgumentParser], argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parse argv with the file named by --config (or SFU_CONFIG) beneath flags and variables."""
    parser = build()
    first, _ = parser.parse_known_args(argv)
    path = getattr(first, "config", None)
    if path is None:
        return parser.parse_args(argv)
    with mock.patch.dict(os.environ, clear=True):
        plain = {a.dest: a.default for a in settings(build()).values()}
    try:
        values = read_file(Path(path))
        actions = settings(parser)
        defaults = {}
        for key, value in values.items():
            if key not in actions:
                raise ValueError(f"{path}: unknown setting {key!r} (see --help for the names)")
            action = actions[key]
            value = checked(action, key, value)
            if action.default != plain[key]:
                continue  # its environment variable is set, and wins
            if isinstance(action, argparse._AppendAction):
                action.__class__ = ReplacingAppend
            defaults[key] = value
    except ValueError as exc:
        parser.error(str(exc))
    parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def is_secret(key: str) -> bool:
    return any(word in key for word in SECRET_WORDS)


def without_password(value: str) -> str:
    """A URL's password masked (redis://user:pw@host/0), anything else as it is."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^@/]*@", rf"\1:{MASK}@", value)


def render(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The effective settings as a TOML file would give them, secrets masked."""
    lines = []
    for key in settings(parser):
        value = getattr(args, key, None)
        name = key.replace("_", "-")
        if value is None or value == []:
            lines.append(f"# {name} is not set")
            continue
        if is_secret(key):
            value = [MASK] * len(value) if isinstance(value, list) else MASK
        elif isinstance(value, str):
            value = without_password(value)
        if isinstance(value, Path):
            value = str(value)
        text = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        lines.append(f"{name} = {text}")
    return "\n".join(lines) + "\n"
