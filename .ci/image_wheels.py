"""Every pin of requirements/image.txt has a wheel for CPython 3.11 on linux/amd64 and
linux/arm64 (the image's Debian bookworm base, glibc 2.36), and the pins need nothing
unpinned: what `pip install --only-binary :all: --no-deps` in the Dockerfile relies on.

It asks the package index, so it is not a test (the tests never reach the network):
.ci/run runs it, and so does .ci/lock after a refresh. Exit 1 names what is missing.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "requirements" / "image.txt"
GLIBC_MINOR = 36  # Debian bookworm's glibc 2.36: wheels for manylinux_2_17 .. 2_36 install


def pins() -> set[str]:
    names = set()
    for line in IMAGE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(canonicalize_name(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0]))
    return names


def problems(arch: str) -> list[str]:
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(17, GLIBC_MINOR + 1)]
    platforms.append(f"manylinux2014_{arch}")
    with tempfile.TemporaryDirectory() as dest:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
                   "--python-version", "3.11", "--implementation", "cp",
                   "--dest", dest, "-r", str(IMAGE)]
        for platform in platforms:
            command += ["--platform", platform]
        run = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            return [f"{arch}: pip download failed: {run.stdout}{run.stderr}"]
        wheels = sorted(path.name for path in Path(dest).iterdir())
    found = []
    downloaded = {canonicalize_name(name.split("-", 1)[0]) for name in wheels}
    if downloaded != pins():
        found.append(f"{arch}: pinned and downloaded differ: {sorted(downloaded ^ pins())}")
    for name in wheels:
        if not name.endswith(".whl"):
            found.append(f"{arch}: not a wheel: {name}")
        elif not name.endswith("-none-any.whl") and not name.endswith(f"_{arch}.whl"):
            found.append(f"{arch}: another platform's wheel: {name}")
    return found


def main() -> int:
    found = [problem for arch in ("x86_64", "aarch64") for problem in problems(arch)]
    for problem in found:
        print(f"image-wheels: {problem}", file=sys.stderr)
    print(f"image-wheels: {len(pins())} pins, wheels for both platforms: "
          f"{'no' if found else 'yes'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
