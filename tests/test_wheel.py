"""engage installed from its wheel, as a user installs it: not from a checkout.

The wheel is built from a copy of the repository (so the build leaves nothing in it),
installed into a fresh virtualenv, and `engage serve --demo` runs from an empty
directory: the demo article and its widget bundle carry the seed counts.

Nothing here reaches the package index: the build uses the test environment's
setuptools (no build isolation), and the fresh virtualenv takes engage's dependencies
from the test environment's site-packages through a path file, which adds the directory
without running the path files in it (so the test environment's editable engage stays
out). `.ci/fresh-install` installs from the index, with the newest releases.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import free_port, stop_embedded

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("engage", "seeds"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "-w", str(dist), str(source)],
                   check=True, timeout=300)
    (found,) = dist.glob("engage-*.whl")
    return found


def test_wheel_carries_every_file_of_the_package_and_the_seeds(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "engage"
    expected = {
        path.relative_to(ROOT).as_posix() for path in package.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    expected |= {f"engage/fixtures/{path.name}" for path in (ROOT / "seeds").glob("*.json")}
    assert expected - names == set()
    assert "engage/fixtures/articles.json" in names
    assert not any(name.startswith(("seeds/", "tests/")) for name in names)


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=600, env=clean_env())
    (site,) = (venv / "lib").glob("python3.*/site-packages")
    (site / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def clean_env(**extra: str) -> dict[str, str]:
    """No trace of the checkout or of the test run's own settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENGAGE_", "PYTHON", "VIRTUAL_ENV", "PROMETHEUS_"))}
    env.update(extra)
    return env


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp"))  # the embedded Redis's socket lives here
    yield path
    stop_embedded(path / "data")
    shutil.rmtree(path, ignore_errors=True)


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_installed_wheel_serves_the_demo(installed: Path, short_dir: Path) -> None:
    empty = short_dir / "empty"
    empty.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(ENGAGE_DATA_DIR=str(short_dir / "data"))
    with open(short_dir / "stderr", "w") as stderr:
        process = subprocess.Popen(
            [str(installed / "bin" / "engage"), "serve", "--demo", "--bind",
             f"127.0.0.1:{port}", "--workers", "1"],
            cwd=empty, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
        try:
            deadline = time.monotonic() + 60
            status = 0
            while status != 200 and time.monotonic() < deadline:
                assert process.poll() is None, (short_dir / "stderr").read_text()
                try:
                    status, _ = get(base + "/readyz")
                except OSError:
                    time.sleep(0.2)
            assert status == 200

            status, page = get(base + "/demo/korea-china-reset")
            assert status == 200
            assert b"China and South Korea enter" in page
            status, script = get(base + "/widget.js")
            assert status == 200 and script
            status, raw = get(base + "/api/v1/widget?article=korea-china-reset")
            assert status == 200
            bundle = json.loads(raw)["articles"]["korea-china-reset"]
            seeded = json.loads((ROOT / "seeds" / "reactions.json").read_text())
            assert bundle["counts"] == seeded["korea-china-reset"]
            assert "Policy Link" in [link["title"] for link in bundle["links"]]
            assert len(bundle["polls"]) == 1
        finally:
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=30)
    articles = json.loads((ROOT / "seeds" / "articles.json").read_text())
    assert f"({len(articles)} articles loaded)" in out
    assert process.returncode == 0
    assert list(empty.iterdir()) == []
    # What ran was the wheel's engage, not the checkout's.
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import engage; print(engage.__file__)"],
        cwd=empty, env=env, capture_output=True, text=True, check=True,
    ).stdout
    assert Path(where.strip()).is_relative_to(installed)
