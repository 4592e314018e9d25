"""The layer table of DESIGN.md, enforced on the import statements of sfu/ and signaling/.

A module may import modules of its own layer or of layers below it, never above. Today's known
violations are listed in KNOWN_VIOLATIONS, each with why it is there; a new one fails the test,
and removing one from the code without removing it here fails too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sfu", "signaling", "litesfu")

# Rank of each layer; imports point to an equal or lower rank. config and media are the plain
# data contracts every layer shares, so they sit at the bottom with the wire codecs.
LAYERS: dict[str, int] = {
    "sfu": 0,  # the empty package __init__
    **dict.fromkeys(
        [
            "sfu.wire.stun",
            "sfu.wire.rtp",
            "sfu.wire.demux",
            "sfu.wire.framing",
            "sfu.config",
            "sfu.media",
        ],
        0,
    ),
    **dict.fromkeys(
        [
            "sfu.protocol.ice",
            "sfu.protocol.dtls",
            "sfu.protocol.srtp",
            "sfu.protocol.receiver",
            "sfu.protocol.twcc",
            "sfu.protocol.keyframes",
        ],
        1,
    ),
    "sfu.routing.stats": 0,  # the frozen values the router's queries answer with: data contracts
    "sfu.protocol.simulcast": 1,  # layer order, choice and VP8 id continuity: pure values
    "sfu.protocol.bwe": 1,  # a player's bandwidth estimate from its feedback: pure values
    "sfu.protocol.probe": 1,  # padding packets and the probe schedule before an upgrade: pure values
    # The compiled fan-out (rewrite, SRTP, sendmmsg) is called by the tracks, so it sits with
    # the protocol state it builds on (DTLS keys) rather than with the socket adapters.
    "sfu.protocol.fastpath": 1,
    "sfu.session.peer": 2,
    **dict.fromkeys(
        [
            "sfu.routing.tracks",
            "sfu.routing.publisher",
            "sfu.routing.player",
            "sfu.routing.stream",
            "sfu.routing.router",
            "sfu.routing.relay",
        ],
        3,
    ),
    **dict.fromkeys(["sfu.io.udp", "sfu.io.tcp", "sfu.io.server"], 4),
    "signaling": 5,  # every signaling module not named here: control
    # `python -m sfu` execs `python -m litesfu`; it imports no project module at all.
    "sfu.__main__": 0,
    "litesfu": 6,  # the program entry sits above both
}

# The --workers front routes HTTP and must not load the media plane at all.
FRONT = {"signaling.workers.front", "signaling.workers.balancer", "signaling.workers.pool"}
FORBIDDEN_IN_SFU = ("aiohttp", "signaling", "redis")
FORBIDDEN_IN_SIGNALING = ("socket",)  # signaling never touches a socket or a packet

# (importer, imported): known violations, to be removed by later steps of issue 15.
KNOWN_VIOLATIONS = {
    # The worker pool binds a TCP socket to pick a free HTTP port for each worker.
    ("signaling.workers.pool", "socket"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).glob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Modules `path` imports; `from pkg import mod` counts as pkg.mod when that is a module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
    return found


def rank(module: str) -> int:
    if module in LAYERS:
        return LAYERS[module]
    return LAYERS[module.split(".")[0]]


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(path, known) for name, path in modules.items()}


def reaches_sfu(module: str, edges: dict[str, set[str]]) -> bool:
    """True when `module` imports sfu directly or through other project modules."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for target in edges.get(current, ()):
            if target.split(".")[0] == "sfu":
                return True
            todo.append(target)
    return False


def breaks_layers(importer: str, target: str, edges: dict[str, set[str]]) -> bool:
    """True when importing `target` from `importer` goes against the table."""
    top = target.split(".")[0]
    forbidden = FORBIDDEN_IN_SFU if importer.split(".")[0] == "sfu" else FORBIDDEN_IN_SIGNALING
    if top in forbidden:
        return True
    if target not in edges:
        return False  # the standard library or a third-party package
    if rank(target) > rank(importer):
        return True
    front_reaches_sfu = top == "sfu" or (target not in FRONT and reaches_sfu(target, edges))
    return importer in FRONT and front_reaches_sfu


def violations() -> set[tuple[str, str]]:
    edges = graph()
    return {
        (importer, target)
        for importer, targets in edges.items()
        for target in targets
        if breaks_layers(importer, target, edges)
    }


def test_every_module_has_a_layer():
    for name in project_modules():
        if name.startswith("sfu"):
            assert name in LAYERS, f"{name} has no row in LAYERS"


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


def test_the_checker_sees_an_upward_import(tmp_path):
    """The parser resolves `from sfu import router` to the module, so the rank check can bite."""
    source = tmp_path / "probe.py"
    source.write_text("from sfu import router\nimport aiohttp.web\n")
    assert imports_of(source, {"sfu.routing.router"}) == {"sfu.routing.router", "aiohttp.web"}
    assert rank("sfu.routing.router") > rank("sfu.session.peer")
