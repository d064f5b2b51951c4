"""Write an embedded data directory and what engage answered from it, for upgrade tests.

    python tests/data/write_datadir.py tests/data/<name>

Runs the engage of the checkout it is in: the demo seed (articles, links, polls, their
past votes), then live activity through the API (votes, a changed and a withdrawn vote,
a reason, poll votes, link clicks and impressions), the aggregates caught up, and the
server stopped after an AOF rewrite plus a tail of more votes. `<name>/appendonlydir` is
the data; `<name>/expected.json` holds every answer tests/test_data_compat.py compares,
staff answers included, for questions whose answer does not depend on today's date
(all-time rankings, day buckets of an explicit range, the whole event export).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402

from engage import seeds  # noqa: E402
from engage.store import get_store  # noqa: E402
from engage.store.aggregates import Aggregator  # noqa: E402
from engage.store.embedded import AOF_DIR, EmbeddedRedis  # noqa: E402
from tests.conftest import make_app  # noqa: E402
from tests.test_data_compat import answers, staff_token  # noqa: E402


def catch_up(app: Flask) -> None:
    with app.app_context():
        aggregator = Aggregator(get_store())
        while aggregator.step():
            pass


def answer_paths(app: Flask, staff: dict[str, str], now: datetime) -> list[str]:
    """Every question the upgrade test asks again (ranges end now: later is the future)."""
    client = app.test_client()
    since = (now - timedelta(days=40)).strftime("%Y-%m-%dT00:00:00Z")
    until = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    paths = ["/api/v1/stats/articles?sort=approval&limit=100",
             "/api/v1/stats/articles?sort=votes&limit=100",
             "/api/v1/stats/sections", "/api/v1/polls", "/api/v1/events/export?format=ndjson"]
    article_ids = [a["id"] for a in client.get(paths[0], headers=staff).json["articles"]]
    for article_id in sorted(article_ids):
        base = f"/api/v1/articles/{article_id}"
        paths += [base, base + "/reactions", base + "/links", base + "/polls",
                  f"{base}/stats?bucket=day&since={since}&until={until}"]
    for poll in client.get("/api/v1/polls", headers=staff).json["polls"]:
        paths += [f"/api/v1/polls/{poll['id']}", f"/api/v1/polls/{poll['id']}/export.csv"]
    return paths


def reader(client: FlaskClient, address: str) -> dict[str, str]:
    made = client.post("/api/v1/readers", environ_base={"REMOTE_ADDR": address})
    assert made.status_code == 201, made.json
    return {"X-Engage-Reader": str(made.get_json()["reader"])}


def rewrite(redis: Any) -> None:
    redis.bgrewriteaof()
    deadline = time.monotonic() + 30
    while (redis.info("persistence")["aof_rewrite_in_progress"]
           or redis.info("persistence")["aof_rewrite_scheduled"]):
        assert time.monotonic() < deadline, "the AOF rewrite did not finish"
        time.sleep(0.05)


def live_activity(app: Flask, readers: range) -> None:
    client = app.test_client()
    article = "korea-china-reset"
    for n in readers:
        choice = ["yes", "yes", "no", "yes", "no", "yes"][n]
        address = f"198.51.100.{n + 1}"
        who = reader(client, address)
        body: dict[str, Any] = {"choice": choice}
        if choice == "no" and n == 2:
            body["reason"] = next(iter(app.config["REASONS"]))
        put = client.put(f"/api/v1/articles/{article}/reactions/mine", json=body,
                         headers=who, environ_base={"REMOTE_ADDR": address})
        assert put.status_code == 200, put.json
        if n == 3:  # a moved vote, then a withdrawn one
            assert client.put(f"/api/v1/articles/{article}/reactions/mine", headers=who,
                              json={"choice": "no"},
                              environ_base={"REMOTE_ADDR": address}).status_code == 200
        if n == 4:
            assert client.delete(f"/api/v1/articles/{article}/reactions/mine", headers=who,
                                 environ_base={"REMOTE_ADDR": address}).status_code == 200
        polls = client.get(f"/api/v1/articles/{article}/polls").json["polls"]
        for poll in polls:
            option = poll["options"][n % len(poll["options"])]["id"]
            assert client.put(f"/api/v1/polls/{poll['id']}/votes/mine", headers=who,
                              json={"options": [option]},
                              environ_base={"REMOTE_ADDR": address}).status_code == 200
        links = client.get(f"/api/v1/articles/{article}/links").json["links"]
        if links:
            client.post(f"/api/v1/articles/{article}/links/impressions", headers=who,
                        json={"links": [link["id"] for link in links]},
                        environ_base={"REMOTE_ADDR": address})
            click = client.get(f"/r/{links[n % len(links)]['id']}",
                               headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"},
                               environ_base={"REMOTE_ADDR": address})
            assert click.status_code == 302, click.status_code


def main() -> None:
    target = Path(sys.argv[1])
    work = Path(tempfile.mkdtemp(prefix="engw", dir="/tmp"))
    embedded = EmbeddedRedis(work)
    try:
        app = make_app(embedded.ensure_running(), work)
        with app.app_context():
            store = get_store()
            seeds.load(store, ROOT / "seeds")
        live_activity(app, range(4))
        catch_up(app)
        with app.app_context():
            rewrite(get_store().redis)
        live_activity(app, range(4, 6))  # the tail after the rewrite
        catch_up(app)
        now = datetime.now(UTC)
        staff = staff_token(app)
        found = answers(app, staff, answer_paths(app, staff, now))
        with app.app_context():
            get_store().close()
        embedded.stop()
        target.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target / AOF_DIR, ignore_errors=True)
        shutil.copytree(work / AOF_DIR, target / AOF_DIR)
        (target / "expected.json").write_text(
            json.dumps({"written": now.isoformat(), "answers": found}, indent=1,
                       sort_keys=True) + "\n")
    finally:
        embedded.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
