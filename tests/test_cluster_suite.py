"""The API test suite, a second time, against a local Redis Cluster.

A subprocess runs pytest with `ENGAGE_TEST_REDIS=cluster`: the session `redis_server`
fixture then starts tests/cluster.py's cluster (three primaries, three replicas) and
every app in those tests talks to it through `redis+cluster://`. Files are picked by
glob, so new API test files join automatically; only these stay out:
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EXCLUDED = {
    "test_quality.py": "ruff and mypy; no Redis",
    "test_privacy.py": "reads one server's raw memory by its port",
    "test_deploy.py": "runs the deployment stack with its own single Redis",
    "test_server.py": "`engage serve` processes against their own single Redis",
    "test_outage.py": "stops and pauses its own single Redis",
    "test_cluster.py": "starts its own clusters",
    "test_shards.py": "runs on one Redis and on its own cluster already",
    "test_nearcache.py": "the near cache is off on a cluster (test_cluster.py checks that)",
    "test_slots.py": "pure key arithmetic; no Redis",
    "test_cluster_suite.py": "this file",
}
# Not globbed at all: tests/browser (a real browser), tests/faults (kills and pauses a
# single Redis), bench/. Tests marked slow (load tests) run once, on one Redis; the
# cluster's own load tests are in test_cluster.py and test_shards.py.


def suite_files() -> list[str]:
    return sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob("test_*.py")
        if path.name not in EXCLUDED
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_api_suite_passes_against_a_cluster() -> None:
    files = suite_files()
    assert "tests/test_reactions.py" in files and "tests/test_articles.py" in files
    env = {**os.environ, "ENGAGE_TEST_REDIS": "cluster"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *files, "-q", "-m", "not slow",
         "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=540,
    )
    tail = "\n".join(done.stdout.strip().splitlines()[-15:])
    print(f"\ncluster run of {len(files)} files:\n{tail}")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", tail)
    assert passed and int(passed.group(1)) >= 100, tail
