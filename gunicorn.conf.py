"""gunicorn settings for engage (`engage serve` loads this file; so can gunicorn -c).

Metrics: every worker is a process with its own counters. prometheus_client's
multiprocess mode keeps each worker's values in files under PROMETHEUS_MULTIPROC_DIR
and /metrics sums them. The directory must be set before any process imports
prometheus_client, is emptied when the server starts (stale files would add old
counts), and a worker that exits is marked dead so live gauges drop its share while
its counters keep counting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# The directory this file made, removed when the server exits (None: it was given).
_made_dir: str | None = None


def _metrics_dir() -> str:
    global _made_dir
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = _made_dir = tempfile.mkdtemp(prefix="engage-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


_metrics_dir()

bind = os.environ.get("ENGAGE_BIND", "127.0.0.1:8000")
# Sync workers spend most of a request waiting on Redis; two per core keeps CPUs busy.
workers = int(os.environ.get("ENGAGE_WORKERS") or 2 * _cpu_count() + 1)
# gunicorn's sync worker, answering the requests gunicorn refuses (over the limits below,
# or not HTTP) with engage's JSON error instead of an HTML page. For threads, use
# `-k engage.server.ThreadWorker --threads N`: given --threads, gunicorn swaps any
# *SyncWorker for its own gthread worker.
worker_class = "engage.server.SyncWorker"
# A batch read takes up to 100 article ids; gunicorn's default request line (4094 bytes)
# refuses 100 ids over ~30 characters with a 414. 8190 is the most gunicorn allows.
limit_request_line = 8190
# gunicorn's defaults, which engage's own headers (tokens, cookies) stay far below.
limit_request_fields = 100
limit_request_field_size = 8190
timeout = 30
graceful_timeout = 20
keepalive = 5  # behind a load balancer that reuses connections
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat file off a possibly slow container disk
accesslog = None  # engage writes its own JSON line per request
# X-Forwarded-* is believed from ENGAGE_TRUSTED_PROXIES only. gunicorn's own list
# (loopback by default) would be a second one: it sets the scheme from X-Forwarded-Proto.
forwarded_allow_ips = os.environ.get("ENGAGE_TRUSTED_PROXIES", "")
# gunicorn's control socket defaults to one path in the user's home, shared by every
# server on the machine (a second engage would take over the first one's); not needed.
control_socket_disable = True


def on_starting(server: Any) -> None:
    path = _metrics_dir()
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _made_dir:
        shutil.rmtree(_made_dir, ignore_errors=True)
