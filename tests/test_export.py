"""The event export: every stream merged in id order, filtered, streamed as CSV or NDJSON."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage.store import events, reactions, tokens
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"THROTTLE_VOTES": 100_000}


def put_article(client: FlaskClient, editor: dict[str, str], aid: str) -> None:
    body = {"title": aid, "url": f"https://news.example.com/{aid}", "section": "News",
            "published_at": "2026-01-08T09:00:00Z"}
    assert client.put(f"/api/v1/articles/{aid}", json=body, headers=editor).status_code == 201


@pytest.fixture
def busy(
    client: FlaskClient, editor: dict[str, str], store: Any
) -> list[tuple[str, dict[str, str]]]:
    """Three articles with interleaved votes, changes and withdrawals; every raw entry."""
    ids = ["alpha", "beta", "gamma"]
    for aid in ids:
        put_article(client, editor, aid)
    for i in range(40):
        aid = ids[i % 3]
        reactions.vote(store, aid, f"r{i}", "addr", "yes" if i % 4 else "no",
                       "outdated" if i % 4 == 0 else None)
        if i % 5 == 0:
            reactions.vote(store, aid, f"r{i}", "addr", "no" if i % 4 else "yes")
        if i % 7 == 0:
            reactions.vote(store, aid, f"r{i}", "addr", None)
    raw = []
    for aid in ids:
        raw.extend(store.redis.xrange(store.keys.article_events(aid)))
    raw.sort(key=lambda e: tuple(int(x) for x in e[0].split("-")))
    return raw


def test_ndjson_is_every_event_in_id_order(
    client: FlaskClient, editor: dict[str, str], busy: list[tuple[str, dict[str, str]]]
) -> None:
    response = client.get("/api/v1/events/export?format=ndjson", headers=editor)
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert "attachment" in response.headers["Content-Disposition"]
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [e["id"] for e in lines] == [entry_id for entry_id, _ in busy]
    for event, (entry_id, fields) in zip(lines, busy, strict=True):
        for name, value in fields.items():
            assert event[name] == value
        assert event["time"].endswith("Z")
        assert event["ts_ms"] == int(entry_id.split("-")[0])


def test_csv_has_header_and_same_rows(
    client: FlaskClient, editor: dict[str, str], busy: list[tuple[str, dict[str, str]]]
) -> None:
    response = client.get("/api/v1/events/export?format=csv", headers=editor)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["id"] for r in rows] == [entry_id for entry_id, _ in busy]
    assert {r["type"] for r in rows} == {f["type"] for _, f in busy}
    changes = [r for r in rows if r["type"] == "reaction.change"]
    assert changes and all(r["previous"] for r in changes)


def test_filters(
    client: FlaskClient, editor: dict[str, str], busy: list[tuple[str, dict[str, str]]]
) -> None:
    def ids(query: str) -> list[str]:
        response = client.get(f"/api/v1/events/export?{query}", headers=editor)
        assert response.status_code == 200, response.get_data(as_text=True)
        return [json.loads(x)["id"] for x in response.get_data(as_text=True).splitlines()]

    assert ids("type=reaction.withdraw") == [
        i for i, f in busy if f["type"] == "reaction.withdraw"
    ]
    assert ids("type=reaction") == [i for i, f in busy if f["type"].startswith("reaction.")]
    assert ids("type=article.created&type=reaction.change") == [
        i for i, f in busy if f["type"] in ("article.created", "reaction.change")
    ]
    assert ids("article=beta") == [i for i, f in busy if f["article"] == "beta"]
    assert ids("article=nobody") == []
    # a range by time: the middle third of the events' milliseconds
    stamps = sorted({int(i.split("-")[0]) for i, _ in busy})
    lo, hi = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]

    def iso(ms: int) -> str:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")

    assert ids(f"since={iso(lo)}&until={iso(hi)}") == [
        i for i, _ in busy if lo <= int(i.split("-")[0]) <= hi
    ]


@pytest.mark.parametrize("query", ["format=xml", "type=Bad%20Type", "article=-x",
                                   "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z"])
def test_bad_queries_are_422(client: FlaskClient, editor: dict[str, str], query: str) -> None:
    response = client.get(f"/api/v1/events/export?{query}", headers=editor)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"


def test_small_pages_merge_like_one_sort(
    app: Any, store: Any, busy: list[tuple[str, dict[str, str]]]
) -> None:
    """Page refills (page=2) across streams give the same order as sorting everything."""
    with app.app_context():
        merged = [e["id"] for e in events.iter_events(store, page=2)]
        single = [e["id"] for e in events.iter_events(store, page=1, article="gamma")]
    assert merged == [entry_id for entry_id, _ in busy]
    assert single == [i for i, f in busy if f["article"] == "gamma"]


# -- a million events, constant memory ---------------------------------------------------
FILL = """
-- KEYS[1] stream   ARGV[1] n   ARGV[2] article id
for i = 1, tonumber(ARGV[1]) do
  redis.call('XADD', KEYS[1], '*', 'type', 'reaction.vote', 'article', ARGV[2],
    'choice', 'yes', 'previous', '', 'reason', '', 'reader', 'rdr' .. i)
end
return 1
"""
MILLION = 1_000_000


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_export_of_a_million_events_stays_under_100_mb(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    engage: subprocess.Popen[bytes] | None = None
    try:
        from tests.conftest import make_app

        setup = make_app(server.url, tmp_path)
        with setup.app_context():
            from engage.schemas import ArticleInSchema
            from engage.store import articles, get_store

            store = get_store()
            ids = [f"bulk-{n}" for n in range(4)]
            for aid in ids:
                articles.upsert(store, aid, ArticleInSchema().load({
                    "title": aid, "url": "https://news.example.com/x", "section": "Bulk",
                    "published_at": "2026-01-01T00:00:00Z"}))
            token = tokens.create(store, "editor", "bulk")[0]
            fill = store.redis.register_script(FILL)
            # Small enough that one call stays well inside the client's 1 s socket
            # timeout on a busy machine (50,000 once took longer).
            per_call = 10_000
            for n in range(MILLION // per_call):
                aid = ids[n % len(ids)]
                fill(keys=[store.keys.article_events(aid)], args=[per_call, aid])
            stored = sum(store.redis.xlen(store.keys.article_events(a)) for a in ids)
            store.close()
        assert stored == MILLION + len(ids)  # plus each article's "created" event

        env = {**os.environ, "ENGAGE_REDIS_URL": server.url, "ENGAGE_LOG_JSON": "0",
               "ENGAGE_SECRET_KEY": "bulk-export-secret-key-0123456789",
               "ENGAGE_DATA_DIR": str(tmp_path)}
        # The child binds port 0 and prints the port it got: no race for a free port.
        code = ("import logging; from engage import create_app; "
                "from werkzeug.serving import make_server; "
                "logging.getLogger('werkzeug').setLevel(logging.ERROR); "
                "server = make_server('127.0.0.1', 0, create_app(), threaded=True); "
                "print(server.server_port, flush=True); server.serve_forever()")
        log = open(tmp_path / "engage.log", "wb")  # closed after the process ends
        engage = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=log)
        assert engage.stdout is not None
        port_line = engage.stdout.readline().strip()
        assert port_line, (tmp_path / "engage.log").read_text()
        base = f"http://127.0.0.1:{int(port_line)}"
        urllib.request.urlopen(base + "/healthz", timeout=10).read()
        pid = engage.pid
        rss_before = _status_kb(pid, "VmRSS")
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(_status_kb(pid, "VmRSS"))
                done.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        request = urllib.request.Request(base + "/api/v1/events/export?format=csv",
                                         headers={"Authorization": f"Bearer {token}"})
        lines = 0
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            while chunk := response.read(1 << 16):
                lines += chunk.count(b"\n")
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        peak = _status_kb(pid, "VmHWM")
        print(f"\nexport of {lines - 1} events: {elapsed:.1f}s, engage VmRSS before "
              f"{rss_before / 1024:.1f} MB, max sampled {max(samples) / 1024:.1f} MB, "
              f"VmHWM {peak / 1024:.1f} MB")
        # the CSV header + every event
        assert lines == 1 + MILLION + len(ids), (tmp_path / "engage.log").read_text()[-2000:]
        assert peak < 100 * 1024
    finally:
        if engage is not None:
            engage.terminate()
            engage.wait(10)
            if engage.stdout is not None:
                engage.stdout.close()
            log.close()
        server.stop()


def test_cli_export_writes_the_same_events(
    app: Any, busy: list[tuple[str, dict[str, str]]], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from engage.cli import main

    env = {"ENGAGE_REDIS_URL": app.config["REDIS_URL"], "ENGAGE_DATA_DIR": str(tmp_path),
           "ENGAGE_SECRET_KEY": "cli-export-secret-key-0123456789", "ENGAGE_LOG_JSON": "0"}
    result = CliRunner().invoke(main, ["export", "--format", "csv", "--type", "reaction"],
                                env=env)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == [i for i, f in busy if f["type"].startswith("reaction.")]
    bad = CliRunner().invoke(main, ["export", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "ISO 8601" in bad.output
