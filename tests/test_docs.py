"""The user docs (README, BENCHMARKS.md, docs/, results/) hold together: every relative link
reaches a file of the repository and, with ``#anchor``, a heading of that file; no page cites an
issue number a reader cannot follow or a path outside the repository."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "BENCHMARKS.md",
                *(ROOT / "docs").glob("*.md"), *(ROOT / "results").glob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors (lower case, punctuation dropped, spaces to hyphens), plus
    explicit ``<a id=...>`` targets."""
    text = page.read_text(encoding="utf-8")
    in_code, found = False, set()
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found | set(re.findall(r'<a id="([^"]+)"', text))


def test_github_anchors_are_computed_as_github_does(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# The reference code's training: x, y\n```\n# not a heading\n```\n")
    assert anchors(page) == {"the-reference-codes-training-x-y"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # http(s), mailto
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.is_relative_to(ROOT) or not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_issue_numbers_or_paths_outside_the_repository(page):
    text = page.read_text(encoding="utf-8")
    assert re.findall(r"(?i)\bissue \d+|(?<![\w/])#\d+\b", text) == []
    assert re.findall(r"\.\./shared|/work/|/tmp/|/home/", text) == []
