"""The README says what the code does: its two commands, CI's command, the config table.

When a setting is added to engage/config.py, regenerate the table with
`.venv/bin/python -m tests.test_readme`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engage.config import ENV_PREFIX, SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def render_default(default: Any) -> str:
    if default is None:
        return "*(unset)*"
    if isinstance(default, bool):
        return "`1`" if default else "`0`"
    if isinstance(default, list):
        return f"`{','.join(default)}`" if default else "*(empty)*"
    text = str(default)
    if text.startswith(str(ROOT) + "/"):
        # Computed from the install location; show it relative to the checkout.
        return f"`<checkout>/{text[len(str(ROOT)) + 1:]}`"
    return f"`{text}`"


def config_table() -> str:
    rows = ["| variable | default | why |", "|---|---|---|"]
    for setting in SETTINGS:
        why = setting.why.replace("|", "\\|")
        rows.append(f"| `{ENV_PREFIX}{setting.name}` | {render_default(setting.default)} | {why} |")
    return "\n".join(rows)


def readme_table(text: str) -> str:
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip()


def shell_blocks(text: str) -> list[str]:
    return [m.strip() for m in re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S)]


def test_config_table_matches_settings() -> None:
    table = readme_table(README.read_text())
    assert table == config_table(), "run `.venv/bin/python -m tests.test_readme` to regenerate"
    names = re.findall(r"^\| `ENGAGE_([A-Z0-9_]+)`", table, re.M)
    assert names == [s.name for s in SETTINGS]


def test_first_two_commands() -> None:
    text = README.read_text()
    blocks = shell_blocks(text)
    assert len(blocks) >= 2
    serve, test = blocks[0], blocks[1]
    assert "\n" not in serve and "\n" not in test, "each is one command to paste"
    assert serve.startswith("python3 -m venv .venv && ")
    assert ".venv/bin/pip install -e . " in serve
    assert serve.endswith(".venv/bin/engage serve --demo")
    assert test.startswith("python3 -m venv .venv && ")
    assert ".venv/bin/pip install -e '.[test]'" in test
    assert test.endswith(".venv/bin/python -m pytest")
    # They come first: nothing but the intro precedes them.
    assert text.index(serve) < text.index("## What to open")


def test_ci_runs_the_readme_test_command() -> None:
    test = shell_blocks(README.read_text())[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert test in ci.splitlines()


def write_table() -> None:
    text = README.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    README.write_text(text[:start] + "\n" + config_table() + "\n" + text[end:])


if __name__ == "__main__":
    write_table()
