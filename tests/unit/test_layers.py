"""The layer table of DESIGN.md, enforced by package on the import statements of the project.

Each package is a layer. A module may import its own package or a package of a lower rank,
never a higher one, and no two modules may import each other round a circle. The --workers
front loads no media-plane module. Every package says in its __init__ what it holds and what
it may import, and no source file grows past one idea (400 lines).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sfu", "signaling", "litesfu")

# Rank of each layer, lowest first; a module's layer is the longest entry its name starts with.
LAYERS: dict[str, int] = {
    # The media plane. config and media are the plain data contracts every layer shares.
    "sfu": 0,  # the package itself and `python -m sfu`, which imports nothing of the project
    "sfu.config": 0,
    "sfu.media": 0,
    "sfu.wire": 0,
    "sfu.protocol": 1,
    "sfu.session": 2,
    "sfu.routing": 3,
    "sfu.egress": 4,  # recording: a player whose media goes to files, not a socket
    "sfu.io": 5,
    "sfu.server": 5,  # a one-release alias of sfu.io.server
    # The control plane, above every media package it reads through routing's public API.
    "signaling.security": 6,  # tokens, admission, limits, hooks
    "signaling.serving": 7,  # what the front and a media server both serve with
    "signaling.sdp": 8,
    "signaling.observe": 9,
    "signaling.http": 10,  # a media server's public routes
    "signaling.workers": 11,  # the --workers front, and the worker side of its link
    "signaling.cluster": 12,
    "signaling.startup": 13,
    "signaling": 14,  # the `litesfu` command's dispatch and the one-release aliases
    "litesfu": 15,  # the program entry sits above both planes
}

FORBIDDEN_IN_SFU = ("aiohttp", "signaling", "redis")
FORBIDDEN_IN_SIGNALING = ("socket",)  # signaling never touches a socket or a packet

# (importer, imported): known violations, each with why it is there; the list only shrinks.
KNOWN_VIOLATIONS = {
    # The worker pool binds a TCP socket to pick a free HTTP port for each worker.
    ("signaling.workers.pool", "socket"),
}

# What the --workers front process runs: the command's dispatch and the front's start-up.
FRONT_ENTRIES = ("signaling.cli", "signaling.workers.serve", "litesfu.__main__")
MAX_LINES = 400
SOURCE_SUFFIXES = (".py", ".c", ".h", ".js", ".html", ".css")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _names(node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """`from pkg import mod` counts as pkg.mod when that is a module."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if not node.module or node.level:
        return set()
    found = set()
    for alias in node.names:
        candidate = f"{node.module}.{alias.name}"
        found.add(candidate if candidate in known else node.module)
    return found


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every module `path` imports, anywhere in it (functions and TYPE_CHECKING blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _names(node, known)
    return found


def _is_type_checking(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def loaded_imports_of(path: Path, known: set[str]) -> set[str]:
    """The modules importing `path` loads: its top-level imports, including those under
    try/if, but not those in function bodies or TYPE_CHECKING blocks."""
    found: set[str] = set()
    todo = list(ast.parse(path.read_text(), str(path)).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _names(node, known)
        elif isinstance(node, ast.If | ast.Try) and not _is_type_checking(node):
            for field in ("body", "orelse", "finalbody", "handlers"):
                todo.extend(getattr(node, field, []))
        elif isinstance(node, ast.ExceptHandler):
            todo.extend(node.body)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return ".".join(parts[:end])
    raise KeyError(f"{module} has no layer in LAYERS")


def rank(module: str) -> int:
    return LAYERS[layer(module)]


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(path, known) for name, path in modules.items()}


def breaks_layers(importer: str, target: str, known: set[str]) -> bool:
    """True when importing `target` from `importer` goes against the table."""
    top = target.split(".")[0]
    forbidden = FORBIDDEN_IN_SFU if importer.split(".")[0] == "sfu" else FORBIDDEN_IN_SIGNALING
    if top in forbidden and not (importer.startswith("litesfu") and top == "signaling"):
        return True
    return target in known and rank(target) > rank(importer)


def violations() -> set[tuple[str, str]]:
    edges = graph()
    return {
        (importer, target)
        for importer, targets in edges.items()
        for target in targets
        if breaks_layers(importer, target, set(edges))
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of `edges`, one path each (depth-first, three colours)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if target not in edges or target == node:
                continue
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def front_closure() -> set[str]:
    """Every project module the front process loads by importing its entries."""
    modules = project_modules()
    known = set(modules)
    seen: set[str] = set()
    todo = list(FRONT_ENTRIES)
    while todo:
        current = todo.pop()
        if current in seen or current not in modules:
            continue
        seen.add(current)
        parents = [".".join(current.split(".")[:i]) for i in range(1, current.count(".") + 1)]
        todo.extend(parents)  # importing a.b.c runs a and a.b first
        todo.extend(loaded_imports_of(modules[current], known))
    return seen


def test_every_module_has_a_layer():
    for name in project_modules():
        layer(name)


def test_no_new_layer_violations():
    new = violations() - KNOWN_VIOLATIONS
    assert not new, "imports against the layer table of DESIGN.md: " + ", ".join(
        f"{a} -> {b}" for a, b in sorted(new)
    )


def test_known_violations_are_still_real():
    gone = KNOWN_VIOLATIONS - violations()
    assert not gone, "fixed, so remove from KNOWN_VIOLATIONS: " + ", ".join(
        f"{a} -> {b}" for a, b in sorted(gone)
    )


def test_no_import_circles():
    found = cycles(graph())
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_front_loads_no_media_plane_module():
    loaded = front_closure()
    assert "signaling.workers.front" in loaded  # the closure really reaches the front
    media = sorted(m for m in loaded if m.split(".")[0] == "sfu")
    assert not media, f"the --workers front loads {media}"


def test_the_running_front_has_no_media_plane_module_loaded():
    """The same, as Python sees it: parse `--workers 2` and build the front's coroutine."""
    probe = (
        "import sys\n"
        "from signaling import cli\n"
        "cli.serving(cli.parse_args(['--workers', '2'])).close()\n"
        "assert 'signaling.workers.front' in sys.modules\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sfu'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_package_says_what_it_holds_and_may_import():
    for init in sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        if init.parent.name in PACKAGES:
            assert doc, f"{init} has no docstring"
            continue
        parts = [part for part in doc.split("\n\n") if part.strip()]
        assert len(parts) == 2, f"{init}: say what the package holds, then what it may import"


def test_no_source_file_is_past_one_idea():
    roots = (ROOT / "sfu", ROOT / "signaling", ROOT / "web")
    long = {
        str(p.relative_to(ROOT)): n
        for top in roots
        for p in top.rglob("*")
        if p.suffix in SOURCE_SUFFIXES and (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_the_checker_sees_an_upward_import_a_circle_and_a_lazy_import(tmp_path):
    """The parser resolves `from sfu.routing import router` to the module, so the rank check
    can bite; the circle finder finds a two-module circle; a function-level import is not
    loaded at import time."""
    source = tmp_path / "probe.py"
    source.write_text(
        "from sfu.routing import router\nimport aiohttp.web\n"
        "def later():\n    import sfu.io.server\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import sfu.session.peer\n"
    )
    known = {"sfu.routing.router", "sfu.io.server", "sfu.session.peer"}
    assert imports_of(source, known) == {
        "sfu.routing.router",
        "aiohttp.web",
        "sfu.io.server",
        "typing",
        "sfu.session.peer",
    }
    assert loaded_imports_of(source, known) == {"sfu.routing.router", "aiohttp.web", "typing"}
    assert rank("sfu.routing.router") > rank("sfu.session.peer")
    assert breaks_layers("sfu.session.peer", "sfu.routing.router", known)
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
