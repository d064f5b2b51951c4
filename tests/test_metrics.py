"""/metrics in one process: families, bounded labels, Redis timings, readiness."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from engage.store import get_store
from tests.conftest import make_app, new_reader
from tests.redis_server import RedisServer


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def engage_series(samples: dict[Any, float]) -> list[Any]:
    return [key for key in samples if key[0].startswith("engage_")]


def test_families_are_exposed(client: FlaskClient) -> None:
    client.get("/healthz")
    samples = scrape(client)
    names = {name for name, _labels in samples}
    for expected in (
        "engage_http_requests_total", "engage_http_request_duration_seconds_bucket",
        "engage_http_requests_in_progress", "engage_votes_accepted_total",
        "engage_votes_rejected_total", "engage_link_events_total",
        "engage_redis_errors_total", "engage_build_info", "engage_redis_up",
        "engage_process_resident_memory_bytes", "engage_process_cpu_seconds_total",
        "engage_process_open_fds",
    ):
        assert expected in names, expected
    # The worker's families are the worker's alone.
    assert not any(name.startswith("engage_webhook_") for name in names)
    build = [labels for name, labels in samples if name == "engage_build_info"]
    assert dict(build[0])["version"]
    assert value(samples, "engage_redis_up") == 1.0
    assert not any(name.endswith("_created") for name in names)


def test_failure_series_exist_at_zero_before_any_failure(tmp_path: Path) -> None:
    """A fresh app's first scrape already has the Redis-error, rejected-vote and refused-
    link series, at zero, so rate() and the panels have something to work on; routes get
    theirs as they are answered, so a scrape stays small."""
    # Metrics live as long as the process: a fresh one, so no earlier test's failures count.
    first_scrape = (
        "import sys; from pathlib import Path; from tests.conftest import make_app; "
        "app = make_app(sys.argv[1], Path(sys.argv[2])); "
        "sys.stdout.write(app.test_client().get('/metrics').get_data(as_text=True))"
    )
    server = RedisServer(tmp_path / "redis").start()
    try:
        text = subprocess.run(
            [sys.executable, "-c", first_scrape, server.url, str(tmp_path)],
            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
            check=True, timeout=60,
        ).stdout
    finally:
        server.stop()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }
    errors = {(dict(labels)["op"], dict(labels)["kind"]): v for (name, labels), v in samples.items()
              if name == "engage_redis_errors_total"}
    assert errors == {("pipeline", kind): 0.0
                      for kind in ("connection", "timeout", "response", "other")}
    for kind in ("reaction", "poll"):
        for reason in ("duplicate", "throttled", "closed", "invalid", "unknown", "unavailable"):
            assert ("engage_votes_rejected_total",
                    (("kind", kind), ("reason", reason))) in samples, (kind, reason)
    assert value(samples, "engage_link_events_refused_total", reason="click_bot") == 0.0
    assert ("engage_link_events_refused_total", (("reason", "click_bot"),)) in samples
    assert not any(name == "engage_http_requests_total" and dict(labels)["route"] != "/metrics"
                   for name, labels in samples)


def test_route_labels_are_the_openapi_paths(app: Flask) -> None:
    """Every route the document names has the same label in the metrics."""
    from engage.metrics import route_label

    labels = {route_label(rule.rule) for rule in app.url_map.iter_rules()}
    assert not any("<" in label for label in labels)
    paths = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    assert {"/api/v1" + path if not path.startswith("/api") else path
            for path in paths} <= labels


def test_worker_registry_has_only_worker_families(client: FlaskClient) -> None:
    """The worker exports webhook, Redis, build and process families, never HTTP or
    vote families (at zero or otherwise), even in a process that also served requests."""
    from prometheus_client import generate_latest

    from engage import metrics

    client.get("/healthz")
    metrics.prime_worker()
    text = generate_latest(metrics.worker_registry()).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"engage_webhook_deliveries", "engage_webhook_dead_letters",
            "engage_webhook_retry_queue", "engage_redis_errors", "engage_build_info",
            "engage_process_resident_memory_bytes"} <= names
    assert not any(n.startswith(("engage_http_", "engage_votes_", "engage_link_"))
                   for n in names)
    # Primed: the series is there before any failure (the registry is the process's, so
    # deliveries made by earlier tests in this process may have counted some already).
    assert 'engage_webhook_deliveries_total{outcome="failed"} ' in text
    assert "engage_process_open_fds " in text  # its one process


def test_route_labels_use_the_openapi_path_style() -> None:
    from engage.metrics import route_label

    assert (route_label("/api/v1/polls/<eid:poll_id>/votes/mine")
            == "/api/v1/polls/{poll_id}/votes/mine")
    assert route_label("/static/<path:filename>") == "/static/{filename}"
    assert route_label("/r/<int(min=1):n>/<x>") == "/r/{n}/{x}"
    assert route_label("/metrics") == "/metrics"


def test_requests_are_counted_by_route_template(client: FlaskClient, article: str) -> None:
    route = "/api/v1/articles/{article_id}/reactions"
    before = scrape(client)
    client.get(f"/api/v1/articles/{article}/reactions")
    client.get("/api/v1/articles/no-such-article/reactions")
    client.get("/no/such/path/at-all")
    client.open("/healthz", method="BREW")
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("engage_http_requests_total", route=route, method="GET", status="2xx") == 1
    assert delta("engage_http_requests_total", route=route, method="GET", status="4xx") == 1
    assert delta("engage_http_requests_total", route="unmatched", method="GET", status="4xx") == 1
    assert delta("engage_http_requests_total", route="unmatched", method="other", status="4xx") == 1
    assert delta("engage_http_request_duration_seconds_count", route=route) == 2
    labels = {v for _name, pairs in after for _k, v in pairs}
    assert not any(article in v or "no-such" in v or "BREW" in v for v in labels)


def test_votes_accepted_and_rejected(client: FlaskClient, article: str) -> None:
    reader = new_reader(client)
    before = scrape(client)
    url = f"/api/v1/articles/{article}/reactions/mine"
    assert client.put(url, json={"choice": "yes"}, headers=reader).status_code == 200
    assert client.put(url, json={"choice": "yes"}, headers=reader).status_code == 200
    assert client.put("/api/v1/articles/nope/reactions/mine", json={"choice": "yes"},
                      headers=reader).status_code == 404
    assert client.put(url, json={"choice": "maybe"}, headers=reader).status_code == 422
    after = scrape(client)
    accepted = "engage_votes_accepted_total"
    rejected = "engage_votes_rejected_total"
    assert value(after, accepted, kind="reaction") - value(before, accepted, kind="reaction") == 1
    for reason in ("duplicate", "unknown", "invalid"):
        assert (value(after, rejected, kind="reaction", reason=reason)
                - value(before, rejected, kind="reaction", reason=reason)) == 1


def test_vote_endpoints_exist(app: Flask) -> None:
    """The endpoints metrics counts refusals for are the real vote views."""
    from engage.metrics import VOTE_ENDPOINTS

    assert set(VOTE_ENDPOINTS) <= set(app.view_functions)


def test_redis_operations_are_timed(client: FlaskClient, article: str) -> None:
    reader = new_reader(client)
    op = "script:vote_reaction"
    count = "engage_redis_commands_total"
    before = scrape(client)
    client.put(f"/api/v1/articles/{article}/reactions/mine", json={"choice": "no"}, headers=reader)
    samples = scrape(client)
    assert value(samples, count, op=op) == value(before, count, op=op) + 1
    assert value(samples, count, op="pipeline") >= 1
    ops = {dict(labels)["op"] for n, labels in samples if n == count}
    assert all(o.islower() or o.startswith("script:") for o in ops)


def test_each_kind_lands_in_its_bucket_and_each_op_in_its_counters(
        client: FlaskClient, store: Any) -> None:
    """The time histogram is by kind (3 label sets, whatever the install runs); the
    per-operation figures are two counters by op, operations and seconds."""
    histogram = "engage_redis_command_duration_seconds"
    count, seconds = "engage_redis_commands_total", "engage_redis_command_seconds_total"
    script = "script:claim_webhook_retries"
    retries = ["engage-test-retries"]
    # Loaded once first: a script's first call also loads it (one SCRIPT command).
    assert store.run("claim_webhook_retries", keys=retries, args=[0, 1, 10]) == []
    before = scrape(client)
    for _ in range(3):
        assert store.run("claim_webhook_retries", keys=retries, args=[0, 1, 10]) == []
    for _ in range(4):
        pipe = store.redis.pipeline(transaction=False)
        pipe.exists("engage-test-none")
        assert pipe.execute() == [0]
    for _ in range(5):  # GET: a cluster client sends EXISTS through a pipeline per slot
        assert store.redis.get("engage-test-none") is None
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Each kind's count, +Inf bucket and sum grew by at least what this test ran (a
    # scrape's own ping is a command; another test's background job may add a pipeline).
    for kind, made in (("script", 3), ("pipeline", 4), ("command", 5)):
        assert delta(histogram + "_count", kind=kind) >= made, kind
        assert delta(histogram + "_bucket", kind=kind, le="+Inf") >= made, kind
        assert delta(histogram + "_sum", kind=kind) > 0, kind
    assert delta(histogram + "_count", kind="command") < 5 + 3  # scripts are not commands
    kinds = {dict(labels)["kind"] for name, labels in after if name.startswith(histogram)}
    assert kinds == {"script", "pipeline", "command"}
    assert not any(dict(labels).get("op") for name, labels in after
                   if name.startswith(histogram))
    # The counters by op: exact for the script and the command, which nothing else runs.
    assert delta(count, op=script) == 3
    assert delta(count, op="get") == 5
    assert 4 <= delta(count, op="pipeline") < 10
    for op in (script, "pipeline", "get"):
        assert delta(seconds, op=op) > 0, op
    counted = {dict(labels)["op"] for name, labels in after if name == count}
    timed = {dict(labels)["op"] for name, labels in after if name == seconds}
    assert counted == timed
    assert all(o.islower() or o.startswith("script:") for o in counted)
    assert {script, "pipeline", "get"} <= counted


def test_a_pipeline_is_one_timed_operation(client: FlaskClient, store: Any) -> None:
    """Queued commands are not timed one by one: the pipeline's execute is, once, also
    when the pipeline is used as a context manager."""
    name = "engage_redis_commands_total"
    before = scrape(client)
    for _ in range(10):
        with store.redis.pipeline(transaction=False) as pipe:
            pipe.exists("engage-test-none")
            pipe.exists("engage-test-none")
            assert pipe.execute() == [0, 0]
        pipe = store.redis.pipeline(transaction=False)
        pipe.exists("engage-test-none")
        assert pipe.execute() == [0]
    after = scrape(client)
    # 20 executes, each timed once. The count is the process's: a background job of
    # another test's live server (an aggregator's pass) may add one or two meanwhile,
    # but not the 20 more that timing each execute twice would.
    assert 20 <= value(after, name, op="pipeline") - value(before, name, op="pipeline") < 30
    assert value(after, name, op="exists") == value(before, name, op="exists")
    histogram = "engage_redis_command_duration_seconds_count"
    assert 20 <= (value(after, histogram, kind="pipeline")
                  - value(before, histogram, kind="pipeline")) < 30


def test_redis_down(tmp_path: Path) -> None:
    """Errors are counted; /readyz and the up gauge say so at once; /healthz stays up."""
    server = RedisServer(tmp_path / "redis").start()
    app = make_app(server.url, tmp_path, REDIS_RETRIES=0)
    client = app.test_client()
    try:
        assert client.get("/readyz").status_code == 200
        errors = "engage_redis_errors_total"
        first = scrape(client)
        before = sum(v for (n, _l), v in first.items() if n == errors)
        server.pause()  # a hung Redis: the worst case, nothing answers
        started = time.monotonic()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["Retry-After"]
        assert time.monotonic() - started < 0.8
        assert client.get("/healthz").status_code == 200
        server.resume()
        server.kill()
        assert client.get("/api/v1/articles/any/reactions").status_code == 503
        unavailable = {"kind": "reaction", "reason": "unavailable"}
        votes_before = value(scrape(client), "engage_votes_rejected_total", **unavailable)
        voted = client.put("/api/v1/articles/any/reactions/mine", json={"choice": "yes"},
                           headers={"X-Engage-Reader": app.extensions["engage.identity"]
                                    .mint_reader()})
        assert voted.status_code == 503
        samples = scrape(client)
        assert value(samples, "engage_votes_rejected_total", **unavailable) == votes_before + 1
        assert value(samples, "engage_redis_up") == 0.0
        after = sum(v for (n, _l), v in samples.items() if n == errors)
        assert after > before
        # The registry is per process: judge only the errors this outage added.
        kinds = {
            dict(labels)["kind"]
            for (n, labels), v in samples.items()
            if n == errors and v > first.get((n, labels), 0.0)
        }
        assert kinds and kinds <= {"connection", "timeout"}
    finally:
        server.kill()


def vote_on_many_articles(redis_url: str, data_dir: str, count: int) -> str:
    """Register `count` articles, vote once on each over HTTP, return /metrics.

    Run in a fresh interpreter (see below): the default registry is per process, and
    other tests in a session would add their own routes' series to it.
    """
    app = make_app(redis_url, Path(data_dir), THROTTLE_VOTES=100_000)
    with app.app_context():
        store = get_store()
    ids = [f"tenk-{i:05d}" for i in range(count)]
    pipe = store.redis.pipeline(transaction=False)
    for article_id in ids:
        pipe.hset(store.keys.article(article_id), mapping={"title": article_id, "url": "x"})
        pipe.zadd(store.keys.articles, {article_id: 0})
    pipe.execute()
    reader = new_reader(app.test_client())

    def vote(article_id: str) -> int:
        response = app.test_client().put(f"/api/v1/articles/{article_id}/reactions/mine",
                                         json={"choice": "yes"}, headers=reader)
        return response.status_code

    # Threads overlap the Redis round trips; the app is thread-safe like under gthread.
    with ThreadPoolExecutor(8) as pool:
        statuses = set(pool.map(vote, ids))
    assert statuses == {200}, statuses
    return str(app.test_client().get("/metrics").get_data(as_text=True))


@pytest.mark.slow
def test_ten_thousand_articles_stay_out_of_labels(tmp_path: Path) -> None:
    """Votes on 10,000 articles: no label value names one, and fewer than 300 series."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        run = subprocess.run(
            [sys.executable, "-c",
             "import sys; from tests.test_metrics import vote_on_many_articles as v; "
             f"sys.stdout.write(v({server.url!r}, {str(tmp_path)!r}, 10_000))"],
            cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
            timeout=120,
        )
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout
    assert "tenk-" not in text
    series = [
        sample for family in text_string_to_metric_families(text)
        if family.name.startswith("engage_") for sample in family.samples
    ]
    assert len(series) < 300, len(series)
    accepted = [s.value for s in series
                if s.name == "engage_votes_accepted_total" and s.labels == {"kind": "reaction"}]
    assert accepted == [10_000]


def test_a_scrape_does_not_count_itself_in_progress(client: FlaskClient) -> None:
    """An idle server reads 0 requests in progress, not 1 for the scrape asking."""
    assert value(scrape(client), "engage_http_requests_in_progress") == 0.0
