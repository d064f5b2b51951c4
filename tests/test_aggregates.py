"""The cross-article aggregates against a recomputation from the raw events.

A state machine votes, moves, withdraws, edits articles (section, publication date),
votes in a poll, clicks and views links, and moves the store's clock across hours,
days and past the hourly retention. Every event is read back from the streams as it
is written; after the aggregator catches up, every ranking (each sort, all time and
ranges, each section, pages at any offset) and every section and site total equals
the same figures recomputed here from those events alone.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from engage import formulas, timerange
from engage.store import Store, aggregates, articles, links, polls, reactions, stats, windows
from engage.store.aggregates import Aggregator
from engage.store.scripts import LUA_RANKING

CHOICES = ["yes", "no"]
ARTICLES = [f"a{n}" for n in range(5)]
SECTIONS = ["News", "Sport", "Arts"]
READERS = [f"r{n}" for n in range(6)]
_prefixes = itertools.count()


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"THROTTLE_VOTES": 1_000_000}


def article_data(section: str, published: datetime) -> dict[str, Any]:
    return {"title": "T", "url": "https://news.example.com/x", "section": section,
            "published_at": published}


class Oracle:
    """Figures recomputed from the raw events only (and the articles' current section)."""

    def __init__(self, events: list[dict[str, str]], sections: dict[str, str],
                 now: datetime) -> None:
        self.events = events
        self.sections = sections
        self.now = now
        self.cast: dict[str, Counter[str]] = defaultdict(Counter)  # article -> hour -> n
        for e in events:
            if e["type"] in ("reaction.vote", "reaction.change"):
                self.cast[e["article"]][e["hour"]] += 1

    def trend(self, aid: str) -> tuple[float, float]:
        hour = timerange.floor(self.now, "hour")

        def at(back: int) -> int:
            return self.cast[aid][(hour - timedelta(hours=back)).strftime("%Y%m%d%H")]

        elapsed = (self.now - hour).total_seconds() / 3600
        return at(0) + at(1) * (1 - elapsed), sum(at(b) for b in range(2, 26)) / 24

    def figure(self, aid: str, hours: set[str] | None) -> dict[str, Any]:
        net: Counter[str] = Counter()
        clicks = imps = 0
        for e in self.events:
            if e.get("article") != aid or (hours is not None and e.get("hour") not in hours):
                continue
            if e["type"].startswith("reaction."):
                if e["previous"]:
                    net[e["previous"]] -= 1
                if e["choice"]:
                    net[e["choice"]] += 1
            clicks += e["type"] == "link.click"
            imps += e["type"] == "link.impression"
        counts = {c: max(0, net[c]) for c in CHOICES}
        total = sum(counts.values())
        recent, baseline = self.trend(aid)
        return {
            "id": aid, "section": self.sections[aid], "counts": counts, "total": total,
            "score": formulas.wilson_lower(counts["yes"], total),
            "trending": {"score": round(formulas.trending_score(recent, baseline), 4),
                         "last_hour": round(recent, 2), "hourly_average": round(baseline, 3)},
            "clicks": clicks, "impressions": imps,
        }

    def scope(self, hours: set[str] | None) -> list[str]:
        if hours is None:
            return sorted(self.sections)
        return sorted({e["article"] for e in self.events
                       if e["type"].startswith("reaction.") and e["hour"] in hours})

    def ranking(self, sort: str, section: str | None, hours: set[str] | None) -> list[Any]:
        figures = [self.figure(a, hours) for a in self.scope(hours)
                   if section is None or self.sections[a] == section]
        if sort == "approval":
            figures.sort(key=lambda f: (-formulas.rank_keys(f["counts"]["yes"], f["total"])[0],
                                        f["id"]))
        elif sort == "votes":
            figures.sort(key=lambda f: (-formulas.rank_keys(f["counts"]["yes"], f["total"])[1],
                                        f["id"]))
        else:
            figures.sort(key=lambda f: (-f["trending"]["score"], -f["trending"]["last_hour"],
                                        f["id"]))
        return figures

    def sections_rows(self, hours: set[str] | None) -> dict[str, Any]:
        rows: dict[str, dict[str, Any]] = {}
        for aid in self.scope(hours):
            fig = self.figure(aid, hours)
            row = rows.setdefault(fig["section"], {"articles": 0, "counts": Counter(),
                                                   "clicks": 0, "impressions": 0})
            row["articles"] += 1
            row["counts"].update(fig["counts"])
        for aid in self.sections:  # link figures count every article's
            if hours is None and aid not in self.scope(hours):
                continue
            fig = self.figure(aid, hours)
            if hours is not None and not (fig["clicks"] or fig["impressions"]) \
                    and aid not in self.scope(hours):
                continue
            row = rows.setdefault(fig["section"], {"articles": 0, "counts": Counter(),
                                                   "clicks": 0, "impressions": 0})
            row["clicks"] += fig["clicks"]
            row["impressions"] += fig["impressions"]
        return {
            name: {"articles": r["articles"], "counts": {c: r["counts"][c] for c in CHOICES},
                   "clicks": r["clicks"], "impressions": r["impressions"],
                   "last_hour": round(sum(round(self.trend(a)[0], 2) for a in self.sections
                                          if self.sections[a] == name), 2)}
            for name, r in rows.items()
        }


def covered_hours(window: timerange.Range) -> set[str]:
    hours: set[str] = set()
    for kind, start in window.segments():
        if kind == "hour":
            hours.add(start.strftime("%Y%m%d%H"))
        else:
            hours.update((start + timedelta(hours=h)).strftime("%Y%m%d%H") for h in range(24))
    return hours


def compact(figure: dict[str, Any]) -> tuple[Any, ...]:
    return (figure["id"], figure["section"], tuple(figure["counts"].items()), figure["total"],
            figure["trending"]["score"], figure["trending"]["last_hour"],
            figure["trending"]["hourly_average"], figure["clicks"], figure["impressions"])


class AggregatesModel(RuleBasedStateMachine):
    client: Any = None
    config: dict[str, Any] = {}
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def __init__(self) -> None:
        super().__init__()
        self.now = self.start
        config = {**self.config, "REDIS_PREFIX": f"agg{next(_prefixes)}",
                  "HOUR_BUCKET_DAYS": 2, "DAY_BUCKET_DAYS": 30, "EVENT_RETENTION_DAYS": 400}
        self.store = Store(self.client, config, clock=lambda: self.now)
        self.aggregator = Aggregator(self.store)
        self.events: list[dict[str, str]] = []
        self.last: dict[str, str] = {}
        self.sections: dict[str, str] = {}
        self.visitors = 0
        for index, aid in enumerate(ARTICLES[:3]):
            self._upsert(aid, SECTIONS[index % 2], self.now - timedelta(days=index))
        self.link_ids = [link["id"] for link in links.set_links(
            self.store, "a0", [{"title": "L", "url": "https://news.example.com/l"}])]
        poll = polls.create(self.store, {"question": "Q?", "options": ["A", "B"],
                                         "article": "a1", "multiple": False},
                            poll_id=f"{config['REDIS_PREFIX']}-poll", now=self.now)
        self.poll_id = poll.id
        self._collect()

    # -- recording the raw events -------------------------------------------------
    def _collect(self) -> None:
        keys = [self.store.keys.article_events(a) for a in self.sections]
        keys.append(self.store.keys.poll_events(self.poll_id))
        for key in keys:
            start = "(" + self.last[key] if key in self.last else "-"
            for entry_id, fields in self.store.redis.xrange(key, start, "+"):
                self.events.append(fields)
                self.last[key] = entry_id

    def _upsert(self, aid: str, section: str, published: datetime) -> None:
        articles.upsert(self.store, aid, article_data(section, published))
        self.sections[aid] = section

    # -- rules ----------------------------------------------------------------------
    @rule(aid=st.sampled_from(ARTICLES[:3]), reader=st.sampled_from(READERS),
          choice=st.sampled_from([*CHOICES, None]), reason=st.sampled_from([None, "biased"]))
    def vote(self, aid: str, reader: str, choice: str | None, reason: str | None) -> None:
        reactions.vote(self.store, aid, reader, "addr-" + reader, choice,
                       reason if choice == "no" else None)
        self._collect()

    @rule(aid=st.sampled_from(ARTICLES), section=st.sampled_from(SECTIONS),
          days_back=st.integers(0, 400))
    def edit_article(self, aid: str, section: str, days_back: int) -> None:
        self._upsert(aid, section, self.now - timedelta(days=days_back))
        self._collect()

    @rule(reader=st.sampled_from(READERS), option=st.sampled_from(["o1", "o2", None]))
    def poll_vote(self, reader: str, option: str | None) -> None:
        polls.vote(self.store, self.poll_id, reader, "addr-" + reader,
                   [option] if option else None, now=self.now)
        self._collect()

    @rule(count=st.booleans())
    def click_or_view(self, count: bool) -> None:
        # A new address group each time, so clicks are not refused as repeats.
        self.visitors += 1
        address = f"visitor-{self.visitors}"
        if count:
            links.click(self.store, self.link_ids[0], address)
        else:
            links.impressions(self.store, "a0", address, self.link_ids)
        self._collect()

    @rule(hours=st.sampled_from([1, 5, 11, 23, 24, 30, 24 * 3, 24 * 9]),
          minutes=st.integers(0, 59))
    def time_passes(self, hours: int, minutes: int) -> None:
        self.now += timedelta(hours=hours, minutes=minutes)

    @rule(name=st.sampled_from(windows.NAMES), filed=st.integers(0, 2))
    def roll_interrupted(self, name: str, filed: int) -> None:
        # A roll under way: the window is summed again but some articles wait to be
        # filed while entries keep being applied (and articles change section).
        window = windows.current(self.store, self.now).get(name)
        if window is not None:
            pending = windows.start_roll(self.store, name, window)
            if filed:
                pending = windows.file_pending(self.store, name, filed)
            assert (windows.serving(self.store, window, self.now) is None) == (pending > 0)

    @rule()
    def catch_up_and_check(self) -> None:
        while self.aggregator.step():
            pass
        self.check()

    def teardown(self) -> None:
        while self.aggregator.step():
            pass
        self.check()

    # -- the comparison -------------------------------------------------------------
    def check(self) -> None:
        store, now = self.store, self.now
        oracle = Oracle(self.events, self.sections, now)
        ranges: list[timerange.Range | None] = [None]
        # 1 and 7 days are rolling windows the aggregator keeps; 3 days is summed from
        # the buckets when asked.
        for days in (1, 3, 7):
            ranges.append(timerange.resolve(
                now - timedelta(days=days), None, now=now,
                hour_days=store.config["HOUR_BUCKET_DAYS"],
                day_days=store.config["DAY_BUCKET_DAYS"]))
        assert [windows.serving(store, r, now) is not None for r in ranges[1:]] == [
            True, False, True]
        for window in ranges:
            hours = covered_hours(window) if window else None
            for sort in ("approval", "votes", "trending"):
                for section in (None, *SECTIONS):
                    expected = oracle.ranking(sort, section, hours)
                    total, got = stats.ranked_page(store, sort, section, window, 0, 50, now)
                    assert total == len(expected), (sort, section, window)
                    assert [compact(f) for f in got] == [compact(f) for f in expected], (
                        sort, section, window)
                    _, page = stats.ranked_page(store, sort, section, window, 1, 2, now)
                    assert [f["id"] for f in page] == [f["id"] for f in expected[1:3]]
            rows = {r["section"]: r for r in stats.sections(store, window, now)}
            want = oracle.sections_rows(hours)
            assert set(rows) == set(want), window
            for name, row in want.items():
                assert {k: rows[name][k] for k in row} == row, (name, window)
            site = stats.site_totals(list(rows.values()), CHOICES)
            assert site["counts"] == {c: sum(r["counts"][c] for r in want.values())
                                      for c in CHOICES}


def test_aggregates_equal_a_recomputation_from_the_events(app: Any, store: Any) -> None:
    AggregatesModel.client = store.redis
    AggregatesModel.config = dict(store.config)
    run_state_machine_as_test(AggregatesModel, settings=settings(
        max_examples=15, stateful_step_count=25, deadline=None,
        suppress_health_check=list(HealthCheck)))


# -- the ranking keys --------------------------------------------------------------------
def test_the_ranking_sets_hold_the_keys_of_formulas(store: Store) -> None:
    """The aggregate scripts key the ranking sets in Lua, as they change the counts;
    formulas.rank_keys keys a range's sums in Python. Both give the same exact keys, near
    the ties, the rounding of the bound and the vote cap too."""
    cases = [[yes, no] for yes in range(40) for no in range(40)]
    cases += [[yes, no] for yes in (0, 1, 4_194_303, formulas.TOTAL_CAP, 10**7)
              for no in (0, 1, 7, formulas.TOTAL_CAP, 10**7)]
    base = store.keys.agg("rank-test")
    # The sets it writes are declared, so a cluster client sends it to their slot's node.
    store.redis.eval(LUA_RANKING + """
for i, counts in ipairs(cjson.decode(ARGV[2])) do rank_into(ARGV[1], tostring(i), '', counts) end
""", 3, f"{base}:rank:approval", f"{base}:rank:votes", f"{base}:rank:worst", base,
                      json.dumps(cases))
    for pick, sort in enumerate(("approval", "votes", "worst")):
        stored = dict(store.redis.zrange(f"{base}:rank:{sort}", 0, -1, withscores=True))
        assert {i: -int(stored[str(i)]) for i in range(1, len(cases) + 1)} == {
            i: formulas.rank_keys(yes, yes + no)[pick] for i, (yes, no) in enumerate(cases, 1)}


# -- rebuild, concurrency ---------------------------------------------------------------
def _figures(store: Any) -> Any:
    return (stats.ranked_page(store, "approval", limit=200),
            stats.sections(store), stats.ranked_page(store, "trending", limit=200))


def test_rebuild_is_idempotent_and_two_aggregators_never_double_count(
    app: Any, store: Any, clock: Any
) -> None:
    now = clock()
    for index in range(6):
        articles.upsert(store, f"s{index}", article_data(SECTIONS[index % 3], now))
        for reader in range(index + 1):
            clock.set(now - timedelta(hours=reader * 7))
            reactions.vote(store, f"s{index}", f"r{reader}", f"x{reader}",
                           "yes" if reader % 3 else "no")
    clock.set(now)
    first, second = Aggregator(store), Aggregator(store)
    first.step()
    second.step()  # finds every position taken: applies nothing twice
    first.step()
    expected = _figures(store)
    assert expected[0][0] == 6 and sum(a["total"] for a in expected[0][1]) == 21

    runner = CliRunner()
    from engage.cli import main

    env: dict[str, str | None] = {name: None for name in os.environ
                                  if name.startswith("ENGAGE_")}
    env.update({"ENGAGE_REDIS_URL": app.config["REDIS_URL_RESOLVED"],
                "ENGAGE_SECRET_KEY": "cli-test-secret-long-enough",
                "ENGAGE_DATA_DIR": app.config["DATA_DIR"], "ENGAGE_LOG_JSON": "0"})
    for _ in range(2):
        result = runner.invoke(main, ["stats", "rebuild"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "rebuilt" in result.output
        got = _figures(store)
        assert got[0] == expected[0] and got[1] == expected[1]
    # a running aggregator follows the rebuilt positions instead of re-applying
    reactions.vote(store, "s0", "late", "late", "yes")
    first.step()
    by_votes = {a["id"]: a["total"] for a in stats.ranked_page(store, "votes", limit=200)[1]}
    assert by_votes["s0"] == 2 and by_votes["s5"] == 6


def test_a_passed_deadline_records_poll_closed_once(store: Any, clock: Any) -> None:
    now = clock()
    poll = polls.create(store, {"question": "Q?", "options": ["A", "B"], "article": None,
                                "multiple": False, "closes_at": now + timedelta(minutes=5)},
                        now=now)

    def closed_events() -> list[dict[str, str]]:
        return [f for _, f in store.redis.xrange(store.keys.poll_events(poll.id))
                if f["type"] == "poll.closed"]

    assert polls.close_due(store) == 0
    clock.advance(301)
    assert polls.close_due(store) == 1
    assert polls.close_due(store) == 0
    assert len(closed_events()) == 1 and closed_events()[0]["status"] == "closed"
    # reopened with a new deadline: that deadline passing is recorded again, once
    polls.patch(store, poll.id, {"status": "open", "closes_at": clock() + timedelta(hours=1)})
    clock.advance(3601)
    assert [polls.close_due(store) for _ in range(3)] == [1, 0, 0]
    assert len(closed_events()) == 2
    # an editor's close is its own event; no deadline event follows it
    other = polls.create(store, {"question": "R?", "options": ["A", "B"], "article": None,
                                 "multiple": False, "closes_at": clock() + timedelta(minutes=1)})
    polls.patch(store, other.id, {"status": "closed"})
    clock.advance(120)
    assert polls.close_due(store) == 0


def test_the_poll_list_is_paged(
    client: Any, editor: dict[str, str], store: Any, clock: Any
) -> None:
    made = []
    for n in range(7):
        made.append(polls.create(store, {"question": f"Q{n}?", "options": ["A", "B"],
                                         "article": None, "multiple": False}).id)
        clock.advance(1)
    first = client.get("/api/v1/polls?limit=3", headers=editor).json
    assert [p["id"] for p in first["polls"]] == made[::-1][:3]
    assert first["next_offset"] == 3
    rest = client.get("/api/v1/polls?limit=3&offset=6", headers=editor).json
    assert [p["id"] for p in rest["polls"]] == made[:1] and rest["next_offset"] is None
    assert client.get("/api/v1/polls?limit=500", headers=editor).status_code == 422


def test_feed_cursor_survives_a_bad_value(store: Any) -> None:
    assert aggregates.feed_since(store, "not-an-id", 5) == []


def test_the_aggregator_thread_shows_a_vote_within_five_seconds(store: Any) -> None:
    """What `engage serve` and `engage worker` start: a vote reaches the rankings and
    the live feed within the documented lag, and the thread stops when asked."""
    import time

    from engage.worker import start_aggregates

    articles.upsert(store, "fresh", article_data("News", datetime.now(UTC)))
    thread, stop = start_aggregates(store)
    try:
        reactions.vote(store, "fresh", "reader", "addr", "yes")
        cast = time.monotonic()
        while time.monotonic() - cast < 5:
            _, page = stats.ranked_page(store, "votes", limit=1)
            if page and page[0]["total"] == 1:
                break
            time.sleep(0.05)
        assert page and page[0]["id"] == "fresh" and page[0]["total"] == 1
        feed = aggregates.feed_since(store, None, 5)
        assert feed[0][1]["type"] == "reaction.vote"
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
