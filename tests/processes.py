"""Which processes a test run started, so the run can fail when one outlives it.

conftest.py puts a mark in the environment of the pytest process before any test runs;
every process a test starts inherits it (a daemonized server too, though it is no
longer pytest's child), unless the test hands it an environment of its own, and then it
is still pytest's descendant while its parent lives. At the end of the run, whatever
carries the mark or descends from pytest, other than pytest itself, outlived the test
that started it.
"""

from __future__ import annotations

import os
import time
import uuid

import psutil

MARK = "PYTEST_ENGAGE_RUN"  # not ENGAGE_: tests strip those from the environments they build


def mark_this_run() -> str:
    """The mark of this run; a nested pytest (a test that runs pytest) gets its own."""
    os.environ[MARK] = uuid.uuid4().hex
    return os.environ[MARK]


def started_by_run(mark: str, pytest_pid: int) -> list[psutil.Process]:
    me = psutil.Process(pytest_pid)
    found = {p.pid: p for p in me.children(recursive=True)}
    for process in psutil.process_iter():
        if process.pid == pytest_pid or process.pid in found:
            continue
        try:
            if process.environ().get(MARK) == mark:
                found[process.pid] = process
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return [p for p in found.values() if _running(p)]


def leftovers(mark: str, pytest_pid: int, grace: float = 5.0) -> list[str]:
    """What still runs after `grace` seconds (a server just told to stop may still be
    writing its last AOF): one line per process, its pid and command line."""
    deadline = time.monotonic() + grace
    while (alive := started_by_run(mark, pytest_pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = []
    for process in alive:
        try:
            lines.append(f"pid {process.pid}: {' '.join(process.cmdline())[:300]}")
        except psutil.Error:
            continue
    return lines


def kill_all(mark: str, pytest_pid: int) -> None:
    for process in started_by_run(mark, pytest_pid):
        try:
            process.resume()  # a paused one would hold the signal
            process.kill()
        except psutil.Error:
            continue


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
