"""The docs' relative links resolve from the file they sit in: into the repository, or to
the shared contract beside it (``<repository>/../shared/``: SPEC.md, STYLE.md,
PERFORMANCE.md)."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
PAGES = [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def broken_links(text: str, folder: Path) -> list[str]:
    """The relative links of ``text``, a page in ``folder``, that lead nowhere."""
    broken = []
    for target in LINK.findall(text):
        path = target.split("#", 1)[0]
        if not path or re.match(r"[a-z]+:", path):
            continue  # an anchor of the page itself, or a URL
        resolved = Path(os.path.normpath(folder / path))
        if resolved.is_relative_to(ROOT):
            if not resolved.exists():
                broken.append(target)
        elif resolved.parent != SHARED or resolved.name not in (
            "SPEC.md",
            "STYLE.md",
            "PERFORMANCE.md",
        ):
            broken.append(target)
    return broken


def test_every_relative_link_of_the_docs_resolves() -> None:
    found = {
        page.relative_to(ROOT).as_posix(): broken_links(
            page.read_text(encoding="utf-8"), page.parent
        )
        for page in PAGES
    }

    assert {page: links for page, links in found.items() if links} == {}


def test_a_link_to_the_spec_counted_from_the_wrong_folder_is_caught() -> None:
    text = "[SPEC](../shared/SPEC.md), [api](api.md), [STYLE](../../shared/STYLE.md)"

    assert broken_links(text, ROOT / "docs") == ["../shared/SPEC.md"]
    assert broken_links(text, ROOT) == ["api.md", "../../shared/STYLE.md"]
