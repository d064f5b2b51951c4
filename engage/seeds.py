"""Demo fixtures from `seeds/`: articles, their links and polls, and their votes.

The votes of `reactions.json` (and each seed poll's `demo_votes`) are cast over the
last HISTORY_DAYS days, through the same store functions a reader's vote goes through,
by a store whose clock is set to each vote's moment: the time buckets, the rankings,
trending and the charts then show a newsroom's month instead of one spike now. When
each vote falls is drawn from a generator seeded by the article's id, so the history
has the same shape on every load (relative to the time of loading).

Loading is idempotent: articles are upserts, seed votes come from fixed seed readers
whose choice never depends on the time (so a second load changes nothing), links and
polls are replaced by id.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engage import schemas
from engage.errors import IdTaken, PollClosed
from engage.store import Store, articles, links, polls, reactions
from engage.timerange import DAY, HOUR, floor

_ARTICLE_FIELDS = set(schemas.ArticleInSchema().fields)
HISTORY_DAYS = 30
# Share of the day's readers in each UTC hour: quiet nights, a broad daytime hump.
_DAYTIME = [0.12 + max(0.0, math.sin(math.pi * (hour - 5) / 18)) for hour in range(24)]


def read_json(seeds_dir: str | Path, name: str, default: Any) -> Any:
    path = Path(seeds_dir) / name
    if not path.exists():
        return default
    return json.loads(path.read_text(encoding="utf-8"))


def demo_article(seeds_dir: str | Path, article_id: str) -> dict[str, Any] | None:
    """The seed entry of one article, with the prose the demo page shows."""
    for entry in read_json(seeds_dir, "articles.json", []):
        if entry["id"] == article_id:
            return dict(entry)
    return None


def load(store: Store, seeds_dir: str | Path) -> dict[str, int]:
    summary = {"articles": 0, "votes": 0}
    schema = schemas.ArticleInSchema()
    for entry in read_json(seeds_dir, "articles.json", []):
        data = schema.load({k: v for k, v in entry.items() if k in _ARTICLE_FIELDS})
        articles.upsert(store, entry["id"], data)
        summary["articles"] += 1
    past = Replay(store.now())
    history = Store(store.redis, store.config, clock=past)
    for article_id, counts in read_json(seeds_dir, "reactions.json", {}).items():
        if article_id.startswith("_"):
            continue
        for when, reader, choice, reason in vote_plan(store.config, article_id, counts,
                                                       past.start):
            past.at = when
            _, changed = reactions.vote(history, article_id, reader, reader, choice, reason)
            summary["votes"] += int(changed)
    link_schema = schemas.LinkInSchema(many=True)
    for article_id, items in read_json(seeds_dir, "links.json", {}).items():
        summary["links"] = summary.get("links", 0) + len(
            links.set_links(store, article_id, link_schema.load(items))
        )
    summary["polls"] = _load_polls(store, seeds_dir)
    summary["poll votes"] = _load_poll_votes(history, past, seeds_dir)
    return summary


@dataclass
class Replay:
    """The clock of the store that writes the demo's past: it reads what it is set to."""

    start: datetime
    at: datetime | None = None

    def __call__(self) -> datetime:
        return self.at or self.start


def moments(rng: random.Random, now: datetime, count: int) -> list[datetime]:
    """`count` moments in the last HISTORY_DAYS days, oldest first, shaped like a story's
    readership: a background trickle, a peak on one day that fades, quieter weekends."""
    peak = rng.randrange(HISTORY_DAYS)  # days before today
    slots: list[datetime] = []
    weights: list[float] = []
    today = floor(now, "day")
    for back in range(HISTORY_DAYS):
        day = today - DAY * back
        story = 0.15 + (math.exp(-(peak - back) / 3.0) if back <= peak else 0.0)
        weekday = 0.6 if day.weekday() >= 5 else 1.0
        for hour in range(24):
            start = day + HOUR * hour
            if start <= now:
                slots.append(start)
                weights.append(story * weekday * _DAYTIME[hour])
    picks = rng.choices(slots, weights, k=count)
    return sorted(min(now, start + timedelta(seconds=rng.randrange(3600))) for start in picks)


def vote_plan(
    config: dict[str, Any], article_id: str, counts: dict[str, int], now: datetime
) -> list[tuple[datetime, str, str, str | None]]:
    """(moment, reader, choice, reason) of each seed vote of one article, oldest first.

    Who votes what comes from its own generator, independent of `now`, so loading again
    later finds every seed reader's vote unchanged.
    """
    who = random.Random(f"engage-demo:{article_id}:votes")
    reasons = list(config["REASONS"])
    leaning = [who.random() ** 2 for _ in reasons]  # each article's own mix of reasons
    votes: list[tuple[str, str, str | None]] = []
    for choice, n in counts.items():
        for i in range(int(n)):
            reason = None
            if choice == config["REASON_CHOICE"] and reasons and who.random() < 0.7:
                reason = who.choices(reasons, leaning)[0]
            votes.append((f"seed-{choice}-{i}", choice, reason))
    who.shuffle(votes)
    when = moments(random.Random(f"engage-demo:{article_id}:times"), now, len(votes))
    return [(at, *vote) for at, vote in zip(when, votes, strict=True)]


def _load_poll_votes(history: Store, past: Replay, seeds_dir: str | Path) -> int:
    """Each seed poll's `demo_votes` (a count per option), cast like the reactions."""
    cast = 0
    for entry in read_json(seeds_dir, "polls.json", []):
        poll = polls.get(history, entry["id"])
        if poll is None or not entry.get("demo_votes"):
            continue
        choices = [option["id"]
                   for option, n in zip(poll.options, entry["demo_votes"], strict=True)
                   for _ in range(int(n))]
        random.Random(f"engage-demo:{entry['id']}:votes").shuffle(choices)
        when = moments(random.Random(f"engage-demo:{entry['id']}:times"), past.start,
                       len(choices))
        for i, (at, option) in enumerate(zip(when, choices, strict=True)):
            past.at = at
            reader = f"seed-poll-{i}"
            try:
                _, changed = polls.vote(history, entry["id"], reader, reader, [option], now=at)
            except PollClosed:
                break  # an editor closed the demo poll: its votes stay as they are
            cast += int(changed)
    return cast


def _load_polls(store: Store, seeds_dir: str | Path) -> int:
    """Seed polls keep their fixed ids; one that exists already is left as it is."""
    created = 0
    schema = schemas.PollInSchema()
    for entry in read_json(seeds_dir, "polls.json", []):
        data = schema.load({k: v for k, v in entry.items() if k != "demo_votes"})
        try:
            polls.create(store, data, poll_id=data.pop("id"))
        except IdTaken:
            continue  # seeded before (by an earlier load, or another process meanwhile)
        created += 1
    return created
