"""Sites: the titles one engage serves, each with its origins, reaction set and settings.

Sites are kept in one global hash, written only by admin paths. With none stored, the
default site (ENGAGE_DEFAULT_SITE) is made of today's ENGAGE_* settings, and an article
with no `site` field belongs to it: data written before sites existed needs no migration.
Storing a site under the default's name (`updateSite`) takes over from the settings.

Every process keeps the listing, and the site of each article it was asked about, for
COUNTS_CACHE_SECONDS (CORS reads them on every cross-origin request), so a change reaches
the other processes within that time.
"""

from __future__ import annotations

import json
from typing import Any

from engage import errors
from engage.store import Store


def default_site(config: dict[str, Any]) -> dict[str, Any]:
    """The default site as the settings make it."""
    return {
        "name": config["DEFAULT_SITE"],
        "origins": [o.rstrip("/") for o in config["ALLOWED_ORIGINS"] if o != "null"],
        "locale": config["LOCALE"],
        "reactions": {
            "choices": list(config["CHOICES"]),
            "reason_choice": config["REASON_CHOICE"] or None,
            "reasons": list(config["REASONS"]),
        },
        "links_shown": int(config["LINKS_SHOWN"]),
        "cache_max_age": int(config["CACHE_MAX_AGE"]),
        "cache_stale": int(config["CACHE_STALE"]),
    }


def listing(store: Store) -> dict[str, dict[str, Any]]:
    """Name -> site, the default first, the others by name."""
    kept = store.sites_cache.get_many([""])
    if "" in kept:
        found: dict[str, dict[str, Any]] = kept[""]
        return found
    stored = {name: json.loads(raw) for name, raw in store.redis.hgetall(store.keys.sites).items()}
    default = default_site(store.config)
    found = {default["name"]: stored.pop(default["name"], default)}
    found.update(sorted(stored.items()))
    store.sites_cache.put_many({"": found})
    return found


def get(store: Store, name: str) -> dict[str, Any]:
    """The site, or UnknownSite."""
    site = listing(store).get(name)
    if site is None:
        raise errors.UnknownSite()
    return site


def create(store: Store, site: dict[str, Any]) -> dict[str, Any]:
    """Store a new site; IdTaken when the name is in use (the default's included)."""
    full = default_site(store.config) | site
    if full["name"] == store.config["DEFAULT_SITE"] or not store.redis.hsetnx(
            store.keys.sites, full["name"], json.dumps(full)):
        raise errors.IdTaken()
    store.sites_cache.pop("")
    return full


def update(store: Store, name: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Change some of a site's values (the others kept); UnknownSite for no such site."""
    site = get(store, name) | changes
    store.redis.hset(store.keys.sites, name, json.dumps(site))
    store.sites_cache.pop("")
    return site


def of_articles(store: Store, article_ids: list[str]) -> dict[str, str | None]:
    """Article id -> its site's name, None for an unknown article (never kept)."""
    kept: dict[str, str | None] = store.sites_cache.get_many(article_ids)
    missing = [aid for aid in article_ids if aid not in kept]
    if missing:
        pipe = store.redis.pipeline(transaction=False)
        for article_id in missing:
            pipe.hmget(store.keys.article(article_id), "title", "site")
        default = store.config["DEFAULT_SITE"]
        found = {aid: site or default for aid, (title, site) in zip(missing, pipe.execute(),
                                                                   strict=True) if title}
        store.sites_cache.put_many(found)
        kept.update(dict.fromkeys(missing) | found)
    return kept
