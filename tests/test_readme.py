"""The README is short and starts with the two commands; no page links to a missing file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

SERVE = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/engage serve --demo"
TEST = ("python3 -m venv .venv && .venv/bin/pip install -c requirements/test.txt -e '.[test]' "
        "&& .venv/bin/python -m pytest")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def code_blocks(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"```[a-z]*\n(.*?)```", text, re.S)]


def slug(heading: str) -> str:
    """The anchor a Markdown renderer such as GitHub's gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail to docs/"


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text()
    assert code_blocks(text)[:2] == [SERVE, TEST]
    # Nothing but the title, the intro and "Start here" comes before them.
    before = text[:text.index(SERVE)]
    assert re.findall(r"^## .+$", before, re.M) == ["## Start here"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert TEST in ci.splitlines()


def test_relative_links_point_to_existing_files() -> None:
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.is_file():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken
