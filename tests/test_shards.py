"""Viral-article sharding: exact counts under concurrency, one vote per reader, and a
safe switch while votes arrive; on one Redis and on a local cluster."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.crc import key_slot

from engage import errors
from engage.config import load_config
from engage.store import Store, articles, events, make_client, reactions, shards, stats
from engage.store.keys import Keys
from tests.cluster import LocalCluster
from tests.redis_server import RedisServer

ARTICLE = {
    "title": "A story everyone reads",
    "url": "https://news.example.com/viral",
    "section": "World",
    "published_at": datetime(2026, 1, 8, 9, tzinfo=UTC),
    "tags": [],
}


@pytest.fixture(scope="module", params=["single", "cluster"])
def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    if request.param == "cluster":
        cluster = LocalCluster().start()
        yield cluster.url
        cluster.stop()
    else:
        server = RedisServer(tmp_path_factory.mktemp("shards")).start()
        yield server.url
        server.stop()


def make_store(url: str, **overrides: Any) -> Store:
    config = load_config(environ={}, overrides={
        "REDIS_URL": url, "TESTING": True, "THROTTLE_VOTES": 10**9,
        "REDIS_MAX_CONNECTIONS": 200, **overrides})
    return Store(make_client(url, config), config)


@pytest.fixture
def store(backend_url: str) -> Iterator[Store]:
    store = make_store(backend_url)
    store.redis.flushall()
    yield store
    store.close()


def counts_of(store: Store, article: str) -> dict[str, int]:
    result = reactions.read(store, article)
    assert result is not None
    return result.counts


def expected(final: dict[str, str | None]) -> dict[str, int]:
    tally = Counter(choice for choice in final.values() if choice)
    return {"yes": tally["yes"], "no": tally["no"]}


def run_all(jobs: list[Any], workers: int = 16) -> None:
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


@pytest.mark.slow
def test_ten_thousand_concurrent_votes_on_a_sharded_article_are_exact(store: Store) -> None:
    articles.upsert(store, "viral", ARTICLE)
    final: dict[str, str | None] = {}
    rng = random.Random(7)
    # Readers who voted before sharding keep exactly one vote after it.
    legacy = [f"legacy-{i}" for i in range(300)]
    for reader in legacy:
        final[reader] = rng.choice(("yes", "no"))
        reactions.vote(store, "viral", reader, "addr", final[reader])
    assert shards.enable(store, "viral", 8) == 8
    assert counts_of(store, "viral") == expected(final)

    readers = [f"reader-{i}" for i in range(10_000)]
    choices = {r: rng.choice(("yes", "no")) for r in readers}
    final.update(choices)
    run_all([lambda r=r: reactions.vote(store, "viral", r, "addr", choices[r]) for r in readers])
    assert counts_of(store, "viral") == expected(final)

    # Repeats change nothing; changes and withdrawals move the one vote (legacy too).
    movers = rng.sample(readers, 500) + legacy[:100]
    repeaters = rng.sample(readers, 500) + legacy[100:200]
    withdrawers = legacy[200:250] + readers[:50]
    jobs: list[Any] = []
    for reader in movers:
        current = final[reader]
        final[reader] = "no" if current == "yes" else "yes"
        jobs.append(lambda r=reader, c=final[reader]: reactions.vote(store, "viral", r, "a", c))
    for reader in repeaters:
        if reader not in movers:
            jobs.append(lambda r=reader, c=final[reader]: reactions.vote(store, "viral", r, "a", c))
    for reader in withdrawers:
        if reader not in movers:
            final[reader] = None
            jobs.append(lambda r=reader: reactions.vote(store, "viral", r, "a", None))
    run_all(jobs)
    counts = counts_of(store, "viral")
    print(f"\nsharded article: {sum(counts.values())} votes held, counts {counts}")
    assert counts == expected(final)
    for reader in rng.sample(sorted(final), 200):
        seen = reactions.read(store, "viral", reader)
        assert seen is not None and seen.mine == final[reader], reader
    # Every read path sums the shards.
    many = reactions.read_many(store, ["viral"])["viral"]
    assert many is not None and many.counts == expected(final)
    _, raw = articles.get_with_counts(store, "viral")
    assert {k: int(v) for k, v in raw.items()} == expected(final)


def test_switching_on_while_votes_arrive_loses_and_doubles_nothing(store: Store) -> None:
    articles.upsert(store, "hot", ARTICLE)
    readers = [f"r{i}" for i in range(3000)]
    final: dict[str, str | None] = {}
    lock = threading.Lock()
    rng = random.Random(11)

    def voter(chunk: list[str]) -> None:
        local = random.Random(chunk[0])
        for reader in chunk:
            for _ in range(local.randint(1, 3)):  # vote, maybe change, maybe withdraw
                choice = local.choice(("yes", "no", None))
                reactions.vote(store, "hot", reader, "addr", choice)
                with lock:
                    final[reader] = choice

    chunks = [readers[i::8] for i in range(8)]
    threads = [threading.Thread(target=voter, args=(c,)) for c in chunks]
    for thread in threads:
        thread.start()
    while len(final) < 600:  # switch mid-stream, with voters recorded already
        threading.Event().wait(0.005)
    shards.enable(store, "hot", 5)
    for thread in threads:
        thread.join()
    assert store.redis.hget(store.keys.article("hot"), "shards") == "5"
    assert counts_of(store, "hot") == expected(final)
    for reader in rng.sample(readers, 300):
        seen = reactions.read(store, "hot", reader)
        assert seen is not None and seen.mine == final[reader]


def test_reasons_and_events_live_in_the_readers_shard(store: Store) -> None:
    articles.upsert(store, "why", ARTICLE)
    reactions.vote(store, "why", "early", "addr", "no", "outdated")
    shards.enable(store, "why", 4)
    reactions.vote(store, "why", "late", "addr", "no", "biased")
    reactions.vote(store, "why", "early", "addr", "no", "unclear")  # moves its reason
    assert reactions.reasons(store, "why") == {"biased": 1, "unclear": 1}
    keys = store.keys
    shard = keys.shard_id("why", shards.shard_of("late", 4))
    entries = store.redis.xrange(keys.article_events(shard))
    assert [e[1]["article"] for e in entries if e[1]["reader"] == "late"] == ["why"]
    assert shards.sharded_articles(store) == {"why": 4}


def test_enable_is_idempotent_and_keeps_its_count(store: Store) -> None:
    articles.upsert(store, "once", ARTICLE)
    assert shards.enable(store, "once", 4) == 4
    assert shards.enable(store, "once", 16) == 4
    with pytest.raises(errors.UnknownArticle):
        shards.enable(store, "nope", 4)
    with pytest.raises(ValueError):
        shards.enable(store, "once", 1)


def test_an_interrupted_switch_is_finished_by_the_next_vote(store: Store) -> None:
    articles.upsert(store, "stuck", ARTICLE)
    reactions.vote(store, "stuck", "before", "addr", "yes")
    # A copier that died after step 1: votes wait, find no lease, and finish the copy.
    store.run("shard_begin", keys=shards.state_keys(store.keys, "stuck"), args=[4])
    other = make_store(store.config["REDIS_URL"])
    try:
        reactions.vote(other, "stuck", "someone", "addr", "yes")
    finally:
        other.close()
    assert shards.count(store, "stuck") == 4
    reactions.vote(store, "stuck", "before", "addr", "yes")  # a repeat: still one vote
    assert counts_of(store, "stuck") == {"yes": 2, "no": 0}


def test_a_live_copier_makes_votes_wait_then_answer_503(store: Store) -> None:
    articles.upsert(store, "busy", ARTICLE)
    store.run("shard_begin", keys=shards.state_keys(store.keys, "busy"), args=[4])
    store.redis.set(store.keys.article_part("busy", "shardlock"), "someone", ex=30)
    with pytest.raises(errors.StorageUnavailable):
        reactions.vote(store, "busy", "reader", "addr", "yes")
    store.redis.delete(store.keys.article_part("busy", "shardlock"))
    assert shards.enable(store, "busy") == 4
    reactions.vote(store, "busy", "reader", "addr", "yes")
    assert counts_of(store, "busy") == {"yes": 1, "no": 0}


def test_hot_articles_shard_themselves(backend_url: str) -> None:
    store = make_store(backend_url, SHARD_AUTO_RATE=20, SHARDS=4)
    try:
        store.redis.flushall()
        articles.upsert(store, "auto", ARTICLE)
        articles.upsert(store, "calm", ARTICLE)
        reactions.vote(store, "calm", "one", "addr", "yes")
        for i in range(200):
            reactions.vote(store, "auto", f"x{i}", "addr", "yes")
        assert store.redis.hget(store.keys.article("auto"), "shards") == "4"
        assert store.redis.hget(store.keys.article("calm"), "shards") is None
        assert counts_of(store, "auto") == {"yes": 200, "no": 0}
    finally:
        store.close()


def test_shards_of_an_article_spread_over_primaries() -> None:
    k = Keys("engage")
    thirds = {key_slot(k.article(k.shard_id("korea-china-reset", i)).encode()) * 3 // 16384
              for i in range(8)}
    assert thirds == {0, 1, 2}  # 8 shards reach all three primaries of a 3-way split


def test_the_event_log_includes_every_shards_stream(store: Store) -> None:
    articles.upsert(store, "logged", ARTICLE)
    articles.upsert(store, "plain", ARTICLE)
    reactions.vote(store, "logged", "before", "addr", "yes")
    shards.enable(store, "logged", 3)
    readers = [f"after-{i}" for i in range(12)]
    for reader in readers:
        reactions.vote(store, "logged", reader, "addr", "no")
    reactions.vote(store, "plain", "someone", "addr", "yes")
    streams = events.stream_keys(store)
    for i in range(3):
        assert store.keys.article_events(store.keys.shard_id("logged", i)) in streams
    votes = [e for e in events.iter_events(store, article="logged", types=["reaction"])]
    assert sorted(e["reader"] for e in votes) == sorted(["before", *readers])
    assert [e["id"] for e in votes] == sorted(
        (e["id"] for e in votes), key=lambda i: tuple(int(x) for x in i.split("-")))
    everything = list(events.iter_events(store, types=["reaction"]))
    assert len(everything) == len(readers) + 2


def test_editors_figures_add_up_the_shards(store: Store) -> None:
    articles.upsert(store, "counted", ARTICLE)
    reactions.vote(store, "counted", "before", "addr", "no", "outdated")
    shards.enable(store, "counted", 4)
    for i in range(20):
        reactions.vote(store, "counted", f"after-{i}", "addr", "yes")
    reactions.vote(store, "counted", "before", "addr", "yes")  # a legacy reader moves
    figures = stats.article_figures(store, ["counted"])["counted"]
    assert figures["counts"] == {"yes": 21, "no": 0} and figures["total"] == 21
    now = store.now()
    window = stats.Range(now - timedelta(days=1), now + timedelta(hours=1), "hour")
    series = stats.article_series(store, "counted", window)
    assert series is not None
    added = sum(p["added"]["yes"] for p in series["points"])
    removed = sum(p["removed"]["no"] for p in series["points"])
    assert (added, removed) == (21, 1)
    assert sum(p["reasons"].get("outdated", 0) for p in series["points"]) == 1


def test_the_hot_article_bench_runs_and_checks_its_counts(
        capsys: pytest.CaptureFixture[str]) -> None:
    """bench/hot_article.py (numbers in docs/scaling.md) on a tiny load: exact counts."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "bench" / "hot_article.py"
    spec = importlib.util.spec_from_file_location("hot_article", path)
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--votes", "400", "--procs", "1", "--threads", "4",
                       "--shards", "4", "--backend", "single"]) == 0
    out = capsys.readouterr().out
    print(out)
    rows = [line.split() for line in out.splitlines() if line.startswith("single")]
    assert [r[1] for r in rows] == ["off", "4"] and all(r[-4] == "yes" for r in rows)


def test_a_shard_count_outside_the_range_is_refused_at_start() -> None:
    from engage.config import ConfigError

    for bad in ("1", "0", "5000"):
        with pytest.raises(ConfigError, match="ENGAGE_SHARDS"):
            load_config(environ={"ENGAGE_SHARDS": bad})
    assert load_config(environ={"ENGAGE_SHARDS": "16"})["SHARDS"] == 16
