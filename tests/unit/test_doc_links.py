"""Every relative link in README.md, SECURITY.md and docs/ reaches a file, its #anchor a heading.

The README points to docs/ for everything it no longer holds, so a moved or renamed page must
fail here rather than leave a newcomer at a dead link.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(title) for title in HEADING.findall(text)}


def relative_links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text())
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def broken_links(docs: list[Path], root: Path) -> list[str]:
    broken = []
    for doc in docs:
        for target in relative_links(doc):
            name, _, anchor = target.partition("#")
            dest = (doc.parent / name).resolve() if name else doc
            if not dest.exists():
                broken.append(f"{doc.relative_to(root)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{doc.relative_to(root)}: {target} (no such heading)")
    return broken


def test_every_relative_link_resolves() -> None:
    assert broken_links(documents(), ROOT) == []


def test_the_checker_catches_a_dead_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n[ok](#title) [gone](missing.md) [bad](#nowhere)\n")
    assert anchors(page) == {"title"}
    assert relative_links(page) == ["#title", "missing.md", "#nowhere"]
    assert broken_links([page], tmp_path) == [
        "page.md: missing.md (no such file)",
        "page.md: #nowhere (no such heading)",
    ]


def test_slug_follows_github() -> None:
    assert slug("More than one machine: a cluster on Redis") == (
        "more-than-one-machine-a-cluster-on-redis"
    )
    assert slug("Publish from `OBS`") == "publish-from-obs"
