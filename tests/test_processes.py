"""The end-of-run check (tests/processes.py) finds what a test run left running."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import psutil

from tests import processes
from tests.conftest import RUN_MARK


def _daemonized_sleep(env: dict[str, str]) -> int:
    """A `sleep` whose parent exits at once, as a daemonized server's does: it is no
    longer a descendant of pytest. Returns its pid."""
    out = subprocess.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"], env=env,
                         capture_output=True, text=True, check=True, timeout=10)
    return int(out.stdout.strip())


def test_the_run_finds_its_children_and_its_daemons_only() -> None:
    child = subprocess.Popen(["sleep", "30"])
    daemon = _daemonized_sleep(dict(os.environ))
    stranger = _daemonized_sleep({**os.environ, processes.MARK: uuid.uuid4().hex})
    try:
        found = {p.pid for p in processes.started_by_run(RUN_MARK, os.getpid())}
        assert child.pid in found  # a descendant
        assert daemon in found  # reparented, but carries this run's mark
        assert stranger not in found  # another run's
        lines = processes.leftovers(RUN_MARK, os.getpid(), grace=0)
        assert any(line.startswith(f"pid {daemon}: sleep 30") for line in lines), lines
    finally:
        for pid in (child.pid, daemon, stranger):
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        child.wait(10)
    deadline = time.monotonic() + 10
    while daemon in {p.pid for p in processes.started_by_run(RUN_MARK, os.getpid())}:
        assert time.monotonic() < deadline, "a killed process is still counted"
        time.sleep(0.05)
