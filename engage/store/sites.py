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


def encode_set(reaction_set: dict[str, Any]) -> str:
    """A reaction set as the vote script reads it: `choices<TAB>reason choice<TAB>reasons`,
    lists comma-joined (no choice or reason holds a comma or a space: schemas.CHOICE)."""
    return "\t".join([",".join(reaction_set["choices"]), reaction_set["reason_choice"] or "",
                      ",".join(reaction_set["reasons"])])


def decode_set(line: str) -> dict[str, Any]:
    choices, reason_choice, reasons = line.split("\t")
    return {"choices": choices.split(","), "reason_choice": reason_choice or None,
            "reasons": reasons.split(",") if reasons else []}


def _kept(store: Store) -> tuple[dict[str, dict[str, Any]], str]:
    """The sites, and their reaction sets as the vote script reads them: a line per site
    (its name, a tab, its `encode_set`), the default's first, each line begun and ended
    by a newline."""
    kept = store.sites_cache.get_many([""])
    if "" in kept:
        found: tuple[dict[str, dict[str, Any]], str] = kept[""]
        return found
    stored = {name: json.loads(raw) for name, raw in store.redis.hgetall(store.keys.sites).items()}
    default = default_site(store.config)
    sites = {default["name"]: stored.pop(default["name"], default)}
    sites.update(sorted(stored.items()))
    table = "".join(f"\n{name}\t{encode_set(site['reactions'])}" for name, site in sites.items())
    store.sites_cache.put_many({"": (sites, table + "\n")})
    return sites, table + "\n"


def listing(store: Store) -> dict[str, dict[str, Any]]:
    """Name -> site, the default first, the others by name."""
    return _kept(store)[0]


def sets_table(store: Store) -> str:
    """Every site's reaction set for the vote script (`_kept`)."""
    return _kept(store)[1]


def reaction_set(store: Store, site: str | None, own: str | None) -> dict[str, Any]:
    """An article's reaction set: its own (`own`, encoded) or its site's; an article
    without a site, or whose site is unknown, is the default site's."""
    if own:
        return decode_set(own)
    return dict(site_or_default(store, site)["reactions"])


def site_or_default(store: Store, name: str | None) -> dict[str, Any]:
    """The named site; the default for none (an article stored before sites) or one
    unknown."""
    found = listing(store)
    return found.get(name or "") or found[store.config["DEFAULT_SITE"]]


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


def sites_of(store: Store, article_ids: list[str]) -> list[str]:
    """The sites of these articles (the known ones), each once, in the order met; with
    only one site, that one without looking any article up (reads stay as cheap as
    before sites for an install of one)."""
    found = listing(store)
    if len(found) == 1:
        return list(found)
    owners = of_articles(store, article_ids)
    return list(dict.fromkeys(site for aid in article_ids if (site := owners[aid])))


def owner(store: Store, article_id: str | None = None, poll_id: str | None = None
          ) -> str | None:
    """The site of an article, or of a poll (its article's; the default site's for a poll
    of no article); None when unknown."""
    if poll_id:
        meta = store.redis.hmget(store.keys.poll(poll_id), "question", "article")
        if meta[0] is None:
            return None
        if not meta[1]:
            return str(store.config["DEFAULT_SITE"])
        article_id = meta[1]
    return of_articles(store, [article_id])[article_id] if article_id else None


def articles_of(store: Store, names: list[str]) -> set[str]:
    """Every article of these sites, and `""` (what a poll of no article names) when the
    default site is one of them: one pipeline over the article index."""
    ids = list(store.redis.zrange(store.keys.articles, 0, -1))
    found = {aid for aid, site in of_articles(store, ids).items() if site in names}
    return found | ({""} if store.config["DEFAULT_SITE"] in names else set())
