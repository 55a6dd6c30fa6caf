"""The documentation's relative links point at files (and headings) that exist, and the docs the
code cites are in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def prose(text: str) -> str:
    """Markdown without code blocks and code spans (their brackets are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def relative_links(page: Path) -> list[str]:
    links = LINK.findall(prose(page.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link, re.I)]  # no http:, mailto:


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken_links(page: Path) -> list[str]:
    broken = []
    for link in relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no file {shown(target)})")
        elif anchor and target.suffix == ".md" and anchor.lower() not in anchors(target):
            broken.append(f"{link} (no heading #{anchor} in {shown(target)})")
    return broken


def test_the_link_checker_sees_links_and_headings(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n## How a study runs (decisions)\n## Notes\n## Notes\n")
    page.write_text("[a](other.md#how-a-study-runs-decisions) [b](other.md#notes-1) [c](https://x.org/y)\n"
                    "[d](missing.md) [e](other.md#nowhere) `[f](ignored.md)`\n```\n[g](ignored.md)\n```\n"
                    "![h](missing.png)\n")
    assert relative_links(page) == ["other.md#how-a-study-runs-decisions", "other.md#notes-1", "missing.md",
                                    "other.md#nowhere", "missing.png"]
    assert [b.split(" ")[0] for b in broken_links(page)] == ["missing.md", "other.md#nowhere", "missing.png"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_theory_page_is_linked_from_the_readme_and_metrics_page():
    for page in (ROOT / "README.md", ROOT / "docs" / "metrics.md"):
        assert any(link.partition("#")[0].endswith("theory.md") for link in relative_links(page)), page


def test_docs_cited_by_the_code_exist():
    """A ``docs/<name>.md`` named in a docstring or comment of src/, scripts/ or tests/ is a file
    of the repository (the code cites its own docs or the papers, nothing outside)."""
    missing = []
    for folder in ("src", "scripts", "tests", "benchmarks"):
        for source in sorted((ROOT / folder).rglob("*.py")):
            for cited in re.findall(r"docs/[\w./-]+\.md", source.read_text(encoding="utf-8")):
                if not (ROOT / cited).exists():
                    missing.append(f"{source.relative_to(ROOT)}: {cited}")
    assert missing == []
