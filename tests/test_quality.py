"""Lint and types are part of the tests, and so are the test dependencies."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def requirement_name(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group()).lower()


def test_every_test_import_is_a_declared_dependency() -> None:
    """A fresh `pip install -e '.[test]'` must give the tests everything they import."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {requirement_name(r) for r in project["dependencies"]}
    declared |= {requirement_name(r) for r in project["optional-dependencies"]["test"]}
    providers = importlib.metadata.packages_distributions()
    missing = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top in sys.stdlib_module_names or top in ("engage", "tests", "__future__"):
                    continue
                dists = {requirement_name(d) for d in providers.get(top, [top])}
                if not dists & declared:
                    missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert not missing, f"imported by tests, not declared in pyproject.toml: {sorted(missing)}"


def _is_schema(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name.endswith("Schema")


def test_api_schemas_are_built_once() -> None:
    """No view builds a marshmallow schema per request: `@blp.arguments` gets an
    instance (given a class, webargs builds one for every request) and no function
    body constructs one."""
    found = []
    for path in sorted((ROOT / "engage" / "api").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                        and decorator.func.attr == "arguments" and decorator.args
                        and not isinstance(decorator.args[0], ast.Call)):
                    found.append(f"{where}: @arguments given a class")
            for statement in node.body:
                for inner in ast.walk(statement):
                    if isinstance(inner, ast.Call) and _is_schema(inner):
                        found.append(f"{where}: builds {ast.unparse(inner.func)}")
    assert not found, found
