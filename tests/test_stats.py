"""Editors' numbers, checked against figures recomputed here from the raw event streams.

Votes are cast through the real Lua script. To put votes into past hours the store's
clock (the `clock` fixture) is set per batch; the stream ids carry the real time, so
each batch's events are tagged with the batch's clock as they are read back.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from engage.store import reactions
from tests.conftest import Clock

CHOICES = ("yes", "no")


@pytest.fixture
def app_config() -> dict[str, Any]:
    return {"THROTTLE_VOTES": 100_000}


def put_article(client: FlaskClient, editor: dict[str, str], aid: str, section: str) -> None:
    body = {
        "title": f"Story {aid}",
        "url": f"https://news.example.com/{aid}",
        "section": section,
        "published_at": "2026-01-08T09:00:00Z",
    }
    response = client.put(f"/api/v1/articles/{aid}", json=body, headers=editor)
    assert response.status_code == 201, response.json


class Recorder:
    """Casts votes at a chosen clock and keeps every resulting raw event with that clock."""

    def __init__(self, store: Any, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.events: list[tuple[datetime, str, dict[str, str]]] = []
        self.last: dict[str, str] = {}

    def cast(self, when: datetime, aid: str, reader: str, choice: str | None,
             reason: str | None = None) -> None:
        self.clock.set(when)
        reactions.vote(self.store, aid, reader, "addr-" + reader, choice, reason)
        key = self.store.keys.article_events(aid)
        start = "(" + self.last[key] if key in self.last else "-"
        for entry_id, fields in self.store.redis.xrange(key, start, "+"):
            self.events.append((when, aid, fields))
            self.last[key] = entry_id

    # -- independent recomputation from the events ---------------------------------
    def bucket_fields(self, aid: str, fmt: str) -> dict[str, Counter[str]]:
        """Per bucket stamp: +choice / -choice / reason:r, replayed from the events."""
        out: dict[str, Counter[str]] = defaultdict(Counter)
        for when, event_aid, fields in self.events:
            if event_aid != aid or not fields["type"].startswith("reaction."):
                continue
            stamp = when.strftime(fmt)
            if fields["previous"]:
                out[stamp]["-" + fields["previous"]] += 1
            if fields["type"] in ("reaction.vote", "reaction.change"):
                out[stamp]["+" + fields["choice"]] += 1
                if fields["reason"]:
                    out[stamp]["reason:" + fields["reason"]] += 1
        return out

    def standings(self, aid: str) -> Counter[str]:
        """Current votes per choice: the last event of each reader decides."""
        last: dict[str, str] = {}
        for _, event_aid, fields in self.events:
            if event_aid == aid and fields["type"].startswith("reaction."):
                last[fields["reader"]] = fields["choice"]
        return Counter(choice for choice in last.values() if choice)


def wilson_reference(yes: int, n: int) -> float:
    """Wilson lower bound written as the root of the quadratic, not the closed form."""
    z = 1.959963984540054
    # (1 + z^2/n) p^2 - (2 phat + z^2/n) p + phat^2 = 0, smaller root
    phat = yes / n
    a = 1 + z * z / n
    b = -(2 * phat + z * z / n)
    c = phat * phat
    return (-b - math.sqrt(b * b - 4 * a * c)) / (2 * a)


def test_wilson_ranks_sample_size(
    client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock,
    catch_up: Any,
) -> None:
    now = clock()
    rec = Recorder(store, clock)
    plan = {"small-perfect": (5, 0), "large-good": (480, 20), "middling": (30, 20),
            "poor": (3, 9)}
    for aid, (yes, no) in plan.items():
        put_article(client, editor, aid, "News")
        for i in range(yes):
            rec.cast(now, aid, f"{aid}-y{i}", "yes")
        for i in range(no):
            rec.cast(now, aid, f"{aid}-n{i}", "no", "outdated" if i % 2 else None)
    # two readers change their mind and one withdraws: standings must follow
    rec.cast(now, "large-good", "large-good-y0", "no", "biased")
    rec.cast(now, "large-good", "large-good-n0", "yes")
    rec.cast(now, "poor", "poor-y0", None)
    put_article(client, editor, "silent", "News")

    catch_up()
    response = client.get("/api/v1/stats/articles?sort=approval&limit=50", headers=editor)
    assert response.status_code == 200, response.json
    body = response.json
    got = [a["id"] for a in body["articles"]]

    expected: dict[str, float] = {}
    for aid in plan:
        standing = rec.standings(aid)
        n = standing["yes"] + standing["no"]
        expected[aid] = wilson_reference(standing["yes"], n)
        row = next(a for a in body["articles"] if a["id"] == aid)
        assert row["counts"] == {"yes": standing["yes"], "no": standing["no"]}
        assert row["total"] == n
        assert row["approval"] == pytest.approx(standing["yes"] / n)
        assert row["score"] == pytest.approx(expected[aid], abs=1e-9)
    assert got == sorted(expected, key=expected.__getitem__, reverse=True) + ["silent"]
    assert got.index("large-good") < got.index("small-perfect")
    assert body["articles"][-1]["score"] is None

    by_votes = client.get("/api/v1/stats/articles?sort=votes", headers=editor).json
    totals = [a["total"] for a in by_votes["articles"]]
    assert totals == sorted(totals, reverse=True)


def test_pagination_and_section_sums(
    client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock,
    catch_up: Any,
) -> None:
    now = clock()
    rec = Recorder(store, clock)
    for index in range(7):
        aid = f"art-{index}"
        put_article(client, editor, aid, "Politics" if index % 2 else "Sport")
        for i in range(index + 1):
            rec.cast(now, aid, f"{aid}-r{i}", "yes" if i % 3 else "no")

    catch_up()
    first = client.get("/api/v1/stats/articles?sort=votes&limit=3", headers=editor).json
    second = client.get("/api/v1/stats/articles?sort=votes&limit=3&offset=3",
                        headers=editor).json
    assert first["total"] == second["total"] == 7
    ids = [a["id"] for a in first["articles"] + second["articles"]]
    assert ids == ["art-6", "art-5", "art-4", "art-3", "art-2", "art-1"]

    sport = client.get("/api/v1/stats/articles?section=Sport&limit=50", headers=editor).json
    assert {a["id"] for a in sport["articles"]} == {"art-0", "art-2", "art-4", "art-6"}

    response = client.get("/api/v1/stats/sections", headers=editor)
    assert response.status_code == 200, response.json
    rows = {row["section"]: row for row in response.json["sections"]}
    assert [r["section"] for r in response.json["sections"]] == ["Sport", "Politics"]
    for section, members in (("Sport", (0, 2, 4, 6)), ("Politics", (1, 3, 5))):
        yes = sum(rec.standings(f"art-{m}")["yes"] for m in members)
        no = sum(rec.standings(f"art-{m}")["no"] for m in members)
        assert rows[section]["counts"] == {"yes": yes, "no": no}
        assert rows[section]["articles"] == len(members)


def test_trending_against_raw_events(
    client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock,
    catch_up: Any,
) -> None:
    """Steady article vs. one that wakes up: trending puts the sudden one first."""
    now = clock().replace(minute=40, second=0, microsecond=0)
    hour = now.replace(minute=10)
    rec = Recorder(store, clock)
    for aid in ("steady", "sudden", "quiet"):
        put_article(client, editor, aid, "News")
    reader = 0
    for back in range(0, 26):
        for _ in range(6):  # six votes in every hour, including this one
            reader += 1
            rec.cast(hour - timedelta(hours=back), "steady", f"s{reader}", "yes")
    for back in (5, 17):
        reader += 1
        rec.cast(hour - timedelta(hours=back), "sudden", f"u{reader}", "no")
    for back in (0, 0, 0, 1, 1):
        reader += 1
        rec.cast(hour - timedelta(hours=back), "sudden", f"u{reader}", "yes")
    reader += 1
    rec.cast(hour - timedelta(hours=1), "sudden", f"u{reader - 1}", "no", "unclear")  # change

    def expected(aid: str) -> tuple[float, float, float]:
        cast = {stamp: sum(v for k, v in f.items() if k.startswith("+"))
                for stamp, f in rec.bucket_fields(aid, "%Y%m%d%H").items()}

        def at(back: int) -> int:
            return cast.get((now - timedelta(hours=back)).strftime("%Y%m%d%H"), 0)

        elapsed = (now.minute * 60 + now.second) / 3600
        recent = at(0) + at(1) * (1 - elapsed)
        baseline = sum(at(b) for b in range(2, 26)) / 24
        return (recent + 1) / (baseline + 1), recent, baseline

    clock.set(now)
    catch_up()
    body = client.get("/api/v1/stats/articles?sort=trending", headers=editor).json
    rows = {a["id"]: a for a in body["articles"]}
    for aid in ("steady", "sudden", "quiet"):
        score, recent, baseline = expected(aid)
        assert rows[aid]["trending"]["score"] == pytest.approx(score, abs=1e-4)
        assert rows[aid]["trending"]["last_hour"] == pytest.approx(recent, abs=0.01)
        assert rows[aid]["trending"]["hourly_average"] == pytest.approx(baseline, abs=0.001)
    order = sorted(rows, key=lambda a: expected(a)[0], reverse=True)
    assert [a["id"] for a in body["articles"]] == order
    assert order[0] == "sudden"


def test_time_buckets_against_raw_events(
    client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock
) -> None:
    now = clock().replace(minute=30, second=0, microsecond=0)
    rec = Recorder(store, clock)
    put_article(client, editor, "timeline", "News")
    put_article(client, editor, "elsewhere", "News")
    plan = [(0, 3, "yes"), (1, 2, "no"), (3, 4, "yes"), (30, 5, "no"), (60, 2, "yes")]
    reader = 0
    for back, n, choice in plan:
        for _ in range(n):
            reader += 1
            reason = "outdated" if choice == "no" and reader % 2 else None
            rec.cast(now - timedelta(hours=back), "timeline", f"t{reader}", choice, reason)
    rec.cast(now - timedelta(hours=1), "timeline", "t1", "no", "inaccurate")  # change
    rec.cast(now, "timeline", "t2", None)  # withdraw
    rec.cast(now, "elsewhere", "e1", "yes")  # must not leak into the timeline

    clock.set(now)
    since = (now - timedelta(hours=6)).isoformat().replace("+00:00", "Z")
    hourly = client.get(f"/api/v1/articles/timeline/stats?bucket=hour&since={since}",
                        headers=editor)
    daily = client.get("/api/v1/articles/timeline/stats?bucket=day&since="
                       + (now - timedelta(days=5)).isoformat().replace("+00:00", "Z"),
                       headers=editor)
    assert hourly.status_code == 200, hourly.json
    for response, fmt, count in ((hourly, "%Y%m%d%H", 7), (daily, "%Y%m%d", 6)):
        points = response.json["points"]
        assert len(points) == count
        expected = rec.bucket_fields("timeline", fmt)
        for point in points:
            start = datetime.fromisoformat(point["start"].replace("Z", "+00:00"))
            fields = expected.get(start.strftime(fmt), Counter())
            assert point["added"] == {c: fields["+" + c] for c in CHOICES}, point
            assert point["removed"] == {c: fields["-" + c] for c in CHOICES}, point
            assert point["reasons"] == {k[7:]: v for k, v in fields.items()
                                        if k.startswith("reason:")}
        covered = {datetime.fromisoformat(p["start"].replace("Z", "+00:00")).strftime(fmt)
                   for p in points}
        inside = {s for s in expected if s in covered}
        assert sum(sum(expected[s].values()) for s in inside) == sum(
            sum(p["added"].values()) + sum(p["removed"].values()) + sum(p["reasons"].values())
            for p in points
        )
    # yes votes cast 0 and 3 hours ago; the 30- and 60-hour-old ones are outside
    assert sum(p["added"]["yes"] for p in hourly.json["points"]) == 3 + 4


@pytest.mark.parametrize(
    "query",
    [
        "sort=best",
        "limit=0",
        "limit=1000",
        "offset=-1",
        "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        "since=yesterday",
        "since=2001-01-01T00:00:00Z",
    ],
)
def test_ranking_rejects_bad_queries(
    client: FlaskClient, editor: dict[str, str], query: str
) -> None:
    response = client.get(f"/api/v1/stats/articles?{query}", headers=editor)
    assert response.status_code == 422, (query, response.json)
    assert response.json["error"]["code"] == "validation_failed"
    assert response.json["error"]["fields"]


def test_series_rejects_bad_ranges(
    client: FlaskClient, editor: dict[str, str], article: str
) -> None:
    now = datetime.now(UTC)
    long_ago = (now - timedelta(days=20)).isoformat().replace("+00:00", "Z")
    for query in (
        "bucket=minute",
        f"bucket=hour&since={long_ago}",
        "bucket=day&since=2001-01-01T00:00:00Z",
        "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
    ):
        response = client.get(f"/api/v1/articles/{article}/stats?{query}", headers=editor)
        assert response.status_code == 422, (query, response.json)
    ok = client.get(f"/api/v1/articles/{article}/stats?bucket=day&since={long_ago}",
                    headers=editor)
    assert ok.status_code == 200
    assert len(ok.json["points"]) == 21
    missing = client.get("/api/v1/articles/no-such-story/stats", headers=editor)
    assert missing.status_code == 404
    assert missing.json["error"]["code"] == "unknown_article"


def test_ranged_counts_are_net_changes(
    client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock,
    catch_up: Any,
) -> None:
    now = clock()
    rec = Recorder(store, clock)
    put_article(client, editor, "ranged", "News")
    for i in range(4):
        rec.cast(now - timedelta(days=3), "ranged", f"old{i}", "yes")
    for i in range(3):
        rec.cast(now, "ranged", f"new{i}", "no")
    rec.cast(now, "ranged", "old0", "no")  # moved today: -1 yes, +1 no today
    since = (now - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    catch_up()
    body = client.get(f"/api/v1/stats/articles?since={since}", headers=editor).json
    assert body["bucket"] == "hour"
    row = body["articles"][0]
    assert row["counts"] == {"yes": 0, "no": 4}
    all_time = client.get("/api/v1/stats/articles", headers=editor).json["articles"][0]
    assert all_time["counts"] == {"yes": 3, "no": 4}


def test_week_range_mixes_day_and_hour_buckets_exactly(
    client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock,
    catch_up: Any,
) -> None:
    """A range of days sums whole days from day buckets and the ends from hour buckets;
    the result equals the raw events inside the range, to the hour."""
    now = clock().replace(minute=20, second=0, microsecond=0)
    rec = Recorder(store, clock)
    put_article(client, editor, "weekly", "News")
    reader = 0
    for back in range(0, 24 * 9, 5):  # a vote every five hours for nine days
        reader += 1
        when = now - timedelta(hours=back)
        rec.cast(when, "weekly", f"w{reader}", "yes" if reader % 3 else "no",
                 "unclear" if reader % 3 == 0 else None)
        if reader % 4 == 0:
            rec.cast(when, "weekly", f"w{reader - 1}", "no")  # a change, same hour
    since = now - timedelta(days=5, hours=7, minutes=50)
    clock.set(now)
    query = "since=" + since.isoformat().replace("+00:00", "Z")
    catch_up()
    body = client.get(f"/api/v1/stats/articles?{query}", headers=editor).json
    assert body["bucket"] == "hour+day"
    start = since.replace(minute=0)
    net: Counter[str] = Counter()
    for when, aid, fields in rec.events:
        if aid != "weekly" or not fields["type"].startswith("reaction.") or when < start:
            continue
        if fields["previous"]:
            net[fields["previous"]] -= 1
        if fields["choice"]:
            net[fields["choice"]] += 1
    row = body["articles"][0]
    assert row["counts"] == {c: max(0, net[c]) for c in CHOICES}
    assert row["total"] > 10


def test_series_poll_votes_and_links_against_raw_events(
    client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock
) -> None:
    from engage.store import links, polls

    now = clock().replace(minute=45, second=0, microsecond=0)
    put_article(client, editor, "linked", "News")
    made = client.put("/api/v1/articles/linked/links", headers=editor, json=[
        {"title": "One", "url": "https://news.example.com/one"},
        {"title": "Two", "url": "https://news.example.com/two"}])
    assert made.status_code == 200, made.json
    link_ids = [link["id"] for link in made.json["links"]]
    poll_ids = []
    for question in ("First?", "Second?"):
        created = client.post("/api/v1/polls", headers=editor, json={
            "question": question, "options": ["A", "B", "C"], "article": "linked"})
        assert created.status_code == 201, created.json
        poll_ids.append(created.json["id"])

    tagged: list[tuple[datetime, dict[str, str]]] = []
    seen: dict[str, str] = {}
    streams = [store.keys.article_events("linked")] + [
        store.keys.poll_part(p, "events") for p in poll_ids]

    def collect(when: datetime) -> None:
        for key in streams:
            start = "(" + seen[key] if key in seen else "-"
            for entry_id, fields in store.redis.xrange(key, start, "+"):
                tagged.append((when, fields))
                seen[key] = entry_id

    collect(now - timedelta(days=30))  # creation events, outside every window
    plan = [(0, 3), (1, 1), (2, 4), (5, 2)]
    reader = 0
    for back, n in plan:
        when = now - timedelta(hours=back)
        clock.set(when)
        for i in range(n):
            reader += 1
            poll_id = poll_ids[reader % 2]
            polls.vote(store, poll_id, f"p{reader}", f"addr{reader}", ["o1"], now=when)
            if i == 0:  # a change counts as a vote; a withdrawal does not
                polls.vote(store, poll_id, f"p{reader}", f"addr{reader}", ["o2"], now=when)
            if i == 1:
                polls.vote(store, poll_id, f"p{reader}", f"addr{reader}", None, now=when)
            links.impressions(store, "linked", f"addr{reader}", link_ids)
            if i % 2 == 0:
                links.click(store, link_ids[i % 2], f"addr{reader}")
        collect(when)

    clock.set(now)
    body = client.get("/api/v1/articles/linked/stats?bucket=hour", headers=editor).json
    assert len(body["points"]) == 49
    for point in body["points"]:
        stamp = point["start"][:13]
        events_here = [f for when, f in tagged if when.isoformat()[:13] == stamp]
        assert point["poll_votes"] == sum(f["type"] in ("poll.vote", "poll.change")
                                          for f in events_here), stamp
        assert point["clicks"] == sum(f["type"] == "link.click" for f in events_here)
        assert point["impressions"] == sum(f["type"] == "link.impression" for f in events_here)
    assert sum(p["poll_votes"] for p in body["points"]) == 10 + 4


def test_an_old_article_tops_all_time_and_ranges_hold_exactly_their_voters(
    client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock, catch_up: Any
) -> None:
    """Every article is ranked all time, however old; a range ranks exactly the
    articles that received votes in it."""
    now = clock()
    rec = Recorder(store, clock)
    old = (now - timedelta(days=300)).isoformat().replace("+00:00", "Z")
    for index in range(30):
        body = {"title": f"Story {index}", "url": f"https://news.example.com/s{index}",
                "section": "News", "published_at": old if index == 0 else
                (now - timedelta(hours=index)).isoformat().replace("+00:00", "Z")}
        assert client.put(f"/api/v1/articles/s{index}", json=body,
                          headers=editor).status_code == 201
    for i in range(60):  # the archive's best: 60 of 60, voted long ago
        rec.cast(now - timedelta(days=12), "s0", f"old{i}", "yes")
    for index in range(1, 30):
        for i in range(index):
            rec.cast(now - timedelta(days=index % 5), f"s{index}", f"r{index}-{i}",
                     "yes" if i % 4 else "no")
    clock.set(now)
    catch_up()
    body = client.get("/api/v1/stats/articles?sort=approval&limit=5", headers=editor).json
    assert body["total"] == 30
    assert body["articles"][0]["id"] == "s0"
    assert body["articles"][0]["published_at"].startswith(old[:10])

    since = (now - timedelta(days=2, hours=1)).isoformat().replace("+00:00", "Z")
    voted = {aid for when, aid, fields in rec.events
             if fields["type"].startswith("reaction.")
             and when >= now - timedelta(days=2, hours=1)}
    for sort in ("approval", "votes", "trending"):
        ranged = client.get(f"/api/v1/stats/articles?sort={sort}&since={since}&limit=200",
                            headers=editor).json
        assert {a["id"] for a in ranged["articles"]} == voted
        assert ranged["total"] == len(voted)
    assert "s0" not in voted


def test_rolling_windows_follow_the_clock_and_never_serve_a_stale_week(
    client: FlaskClient, editor: dict[str, str], store: Any, clock: Clock, catch_up: Any
) -> None:
    """The last 7 days are read from a rolling window the aggregator moves on each hour;
    until it has, the week is summed from the buckets, so no answer is ever stale."""
    from engage.store import stats, windows
    from engage.timerange import floor

    now = floor(clock(), "hour") + timedelta(minutes=30)
    first_hour = floor(now - timedelta(days=7), "hour")
    rec = Recorder(store, clock)
    for aid in ("leaving", "staying", "new"):
        put_article(client, editor, aid, "News")
    rec.cast(first_hour + timedelta(minutes=5), "leaving", "r1", "yes")
    rec.cast(now - timedelta(days=3), "staying", "r2", "no")
    clock.set(now)
    catch_up()

    def week() -> tuple[str | None, list[str]]:
        window = windows.current(store, clock())["7d"]
        since = (clock() - timedelta(days=7)).isoformat().replace("+00:00", "Z")
        body = client.get(f"/api/v1/stats/articles?sort=votes&since={since}",
                          headers=editor).json
        return windows.serving(store, window, clock()), [a["id"] for a in body["articles"]]

    served, ids = week()
    assert served == store.keys.agg("w:7d") and sorted(ids) == ["leaving", "staying"]

    rec.cast(now, "new", "r3", "yes")  # between rolls: added to the window as applied
    catch_up()
    served, ids = week()
    assert served and sorted(ids) == ["leaving", "new", "staying"]

    clock.set(now + timedelta(hours=1))  # "leaving"'s hour is now 7 days and 1 hour old
    served, ids = week()
    assert served is None and sorted(ids) == ["new", "staying"]
    catch_up()
    served, ids = week()
    assert served and sorted(ids) == ["new", "staying"]
    rows = stats.sections(store, windows.current(store, clock())["7d"], clock())
    assert [(r["section"], r["articles"], r["counts"]) for r in rows] == [
        ("News", 2, {"yes": 1, "no": 1})]


# -- least approved ------------------------------------------------------------------------
def _votes(store: Any, aid: str, yes: int, no: int) -> None:
    for n in range(yes + no):
        reactions.vote(store, aid, f"{aid}-r{n}", f"addr-{aid}-{n}", "yes" if n < yes else "no")


@pytest.mark.parametrize("span", [None, timedelta(days=7), timedelta(hours=3)])
def test_least_approved_lists_the_confidently_disliked(
        client: FlaskClient, editor: dict[str, str], store: Any, catch_up: Any,
        clock: Clock, span: timedelta | None) -> None:
    """The rule: "Least approved" ranks by the Wilson upper bound, lowest first, so an
    article with a few happy votes (5 of 5: the case seen) is never there, and no article
    above the median approval is listed while ten or more are rated, as here. All time,
    a rolling window's sets and a range's sums rank alike."""
    from engage.api.stats import resolve_window
    from engage.store import stats

    cases = {"happy-few": (5, 0), "one-no": (0, 1), "loved": (90, 10), "liked": (60, 20),
             "split": (40, 40), "cool": (25, 45), "disliked": (10, 60), "hated": (5, 95),
             "fine": (30, 10), "meh": (20, 25), "good": (45, 15), "bad": (8, 30)}
    for aid, (yes, no) in cases.items():
        put_article(client, editor, aid, "Testing")
        _votes(store, aid, yes, no)
    catch_up()
    now = clock()
    window = None if span is None else resolve_window(store, now - span, None)
    bottom = [a["id"] for a in stats.overview(store, window, now)["bottom"]]
    assert bottom == ["hated", "disliked", "bad", "cool", "meh"]
    shares = sorted(yes / (yes + no) for yes, no in cases.values())
    median = (shares[5] + shares[6]) / 2
    assert all(cases[a][0] / sum(cases[a]) <= median for a in bottom)
