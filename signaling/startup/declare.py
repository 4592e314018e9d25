"""How a flag is declared: its kind of value, its SFU_* variable, its default and one line of help.

`flag()` writes the variable and the default into the help text itself, so `--help` shows both
for every flag and no declaration can forget them. Defaults stay text, so argparse converts a
variable's value with the flag's own kind and a bad `SFU_UDP_PORT` is refused like a bad
`--udp-port`. The parser reports any mistake as one line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, `litesfu: --flag: reason`, no usage."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"^argument ([^:/ ]+)(?:/[^:]*)?: ", r"\1: ", message)
        self.exit(2, f"{self.prog}: {message}\n")


def variable_of(name: str) -> str:
    """The environment variable of a flag: --max-players → SFU_MAX_PLAYERS."""
    return "SFU_" + name.removeprefix("--").upper().replace("-", "_")


def env_list(variable: str) -> list[str] | None:
    """A comma-separated variable as a list, None when unset or empty."""
    items = [i.strip() for i in os.environ.get(variable, "").split(",") if i.strip()]
    return items or None


def env_switch(variable: str) -> bool | None:
    """True or False for a yes or no word, None when unset; anything else stops the start."""
    value = os.environ.get(variable, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    if value:
        words = ", ".join(TRUE_WORDS + FALSE_WORDS)
        print(f"litesfu: {variable}: {value!r} is not one of {words}", file=sys.stderr)
        sys.exit(2)
    return None


def flag(
    group: argparse._ActionsContainer,
    name: str,
    kind: Callable[[str], Any] | None,
    default: str | None,
    meaning: str,
    *,
    shown: str | None = None,
    variable: str | None = None,
    **options: Any,
) -> argparse.Action:
    """Declare one flag. `kind` checks and converts its value; `default` is its text unless
    the variable is set; `shown` is what the help calls the default when it is computed
    later or absent ("none" unless said); `variable` overrides the derived SFU_* name."""
    variable = variable or variable_of(name)
    action = options.get("action")
    if isinstance(action, type) and issubclass(action, argparse._AppendAction):
        value: Any = env_list(variable)
        note = f"{variable}, comma-separated"
    elif action in ("store_true", argparse.BooleanOptionalAction):
        value = env_switch(variable)
        value = bool(value) if action == "store_true" else value
        note = f"{variable}=1 or 0"
    else:
        value = os.environ.get(variable, default)
        note = variable
    said = shown if shown is not None else (default if default is not None else "none")
    help_text = f"{meaning} ({note}; default {said})"
    if kind is not None:
        options["type"] = kind
    return group.add_argument(name, default=value, help=help_text, **options)
