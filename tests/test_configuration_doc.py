"""docs/configuration.md lists every setting of engage/config.py, in order, with its default.

The table is generated. After adding, changing or removing a setting, regenerate it with
`.venv/bin/python -m tests.test_configuration_doc`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from engage.config import ENV_PREFIX, SETTINGS

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "configuration.md"
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


def page_table(text: str) -> str:
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip()


def test_config_table_matches_settings() -> None:
    table = page_table(PAGE.read_text())
    assert table == config_table(), (
        "run `.venv/bin/python -m tests.test_configuration_doc` to regenerate")
    names = re.findall(r"^\| `ENGAGE_([A-Z0-9_]+)`", table, re.M)
    assert names == [s.name for s in SETTINGS]


def test_page_names_the_regeneration_command() -> None:
    assert "python -m tests.test_configuration_doc" in PAGE.read_text()


def write_table() -> None:
    text = PAGE.read_text()
    start, end = text.index(START) + len(START), text.index(END)
    PAGE.write_text(text[:start] + "\n" + config_table() + "\n" + text[end:])


if __name__ == "__main__":
    write_table()
