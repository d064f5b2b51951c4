"""Which processes a test run started, so the run can fail when one outlives it.

conftest.py makes the pytest process a child subreaper (Linux's prctl), so a daemonized
server, whose parent exits at once, is reparented to pytest instead of to init and stays
its descendant; and it puts a mark in pytest's environment, which every process a test
starts inherits unless the test hands it an environment of its own (a Valkey server
overwrites its environment with its process title, so the mark alone would miss it). At
the end of the run, whatever descends from pytest or carries the mark, other than
pytest itself, outlived the test that started it.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
import uuid

import psutil

MARK = "PYTEST_ENGAGE_RUN"  # not ENGAGE_: tests strip those from the environments they build


# prctl(2): PR_SET_CHILD_SUBREAPER.
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphans among this process's descendants come back to it (Linux 3.4+). Their exit
    leaves a zombie until pytest ends, which every liveness check here treats as gone."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


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


def serving_workers(pid: int, exclude_names: tuple[str, ...] = ("redis-server",)) -> list[int]:
    """The live workers of the server process `pid`: its children but zombies, the
    embedded Redis (`exclude_names`) and multiprocessing's resource tracker, which runs
    beside workers started as fresh interpreters (engage.server)."""
    workers = []
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            if (child.status() == psutil.STATUS_ZOMBIE or child.name() in exclude_names
                    or "multiprocessing.resource_tracker" in " ".join(child.cmdline())):
                continue
        except psutil.NoSuchProcess:
            continue
        workers.append(child.pid)
    return sorted(workers)
