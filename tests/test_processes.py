"""The end-of-run check (tests/processes.py) finds what a test run left running."""

from __future__ import annotations

import os
import subprocess
import time

import psutil

from tests import processes
from tests.conftest import RUN_MARK


def _daemonized_sleep() -> int:
    """A `sleep` whose parent exits at once, as a daemonized server's does. Returns its
    pid."""
    out = subprocess.run(["sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!"],
                         capture_output=True, text=True, check=True, timeout=10)
    return int(out.stdout.strip())


def test_the_run_finds_its_children_and_its_daemons_only() -> None:
    child = subprocess.Popen(["sleep", "30"])
    daemon = _daemonized_sleep()
    try:
        found = {p.pid for p in processes.started_by_run(RUN_MARK, os.getpid())}
        assert child.pid in found  # a child
        assert daemon in found  # an orphan, reparented to pytest (the subreaper)
        assert psutil.Process(daemon).ppid() == os.getpid()
        # Processes this run did not start: pytest's own parent, init, pytest itself.
        assert not {os.getppid(), 1, os.getpid()} & found
        lines = processes.leftovers(RUN_MARK, os.getpid(), grace=0)
        assert any(line.startswith(f"pid {daemon}: sleep 30") for line in lines), lines
    finally:
        for pid in (child.pid, daemon):
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        child.wait(10)
    # A killed orphan is a zombie of pytest's until pytest ends: not counted as running.
    deadline = time.monotonic() + 10
    while daemon in {p.pid for p in processes.started_by_run(RUN_MARK, os.getpid())}:
        assert time.monotonic() < deadline, "a killed process is still counted"
        time.sleep(0.05)
