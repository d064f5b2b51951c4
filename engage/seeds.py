"""Demo fixtures from `seeds/`: articles, their links and polls, a few votes.

Loading is idempotent: articles are upserts, seed votes come from fixed seed readers
(so a second load changes nothing), links and polls are replaced by id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engage import schemas
from engage.store import Store, articles, links, reactions

_ARTICLE_FIELDS = set(schemas.ArticleInSchema().fields)


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
    for article_id, counts in read_json(seeds_dir, "reactions.json", {}).items():
        if article_id.startswith("_"):
            continue
        for choice, n in counts.items():
            for i in range(int(n)):
                reader = f"seed-{choice}-{i}"
                _, changed = reactions.vote(store, article_id, reader, reader, choice)
                summary["votes"] += int(changed)
    link_schema = schemas.LinkInSchema(many=True)
    for article_id, items in read_json(seeds_dir, "links.json", {}).items():
        summary["links"] = summary.get("links", 0) + len(
            links.set_links(store, article_id, link_schema.load(items))
        )
    summary["polls"] = _load_polls(store, seeds_dir)
    return summary


def _load_polls(store: Store, seeds_dir: str | Path) -> int:
    """Seed polls keep their fixed ids; one that exists already is left as it is."""
    from engage.store import polls
    from engage.store.exceptions import IdTaken

    created = 0
    schema = schemas.PollInSchema()
    for entry in read_json(seeds_dir, "polls.json", []):
        data = schema.load(entry)
        poll_id = data.pop("id")
        if polls.exists(store, poll_id):
            continue
        try:
            polls.create(store, data, poll_id=poll_id)
        except IdTaken:
            continue  # another process seeded it meanwhile
        created += 1
    return created
