"""Every Lua script's keys land in one Redis Cluster slot, for 10,000 random ids.

Each script in `scripts.ALL` needs a key-list builder below that builds its KEYS the way
the store does (from the store's own key functions where it has them). A script with
no builder fails the test, so a new write path cannot skip this check.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis.crc import key_slot

from engage.store import scripts
from engage.store.budgets import budget_keys
from engage.store.keys import Keys
from engage.store.reactions import vote_keys

ID_FIRST = string.ascii_letters + string.digits
ID_REST = ID_FIRST + "._:-"
SAMPLES = 10_000

Builder = Callable[[Keys, random.Random], list[str]]


def random_id(rng: random.Random) -> str:
    length = rng.choice((1, 2, 8, 16, 36, 64, 128))
    return rng.choice(ID_FIRST) + "".join(rng.choice(ID_REST) for _ in range(length - 1))


def random_hash(rng: random.Random) -> str:
    return format(rng.getrandbits(128), "032x")


def random_time(rng: random.Random) -> datetime:
    return datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10 * 365 * 86400))


def random_networks(rng: random.Random) -> dict[str, str]:
    """The wider networks' hashes of an address: none (a unix socket), IPv4's or IPv6's."""
    names = rng.choice(([], ["v4_24"], ["v6_56", "v6_48"]))
    return {name: random_hash(rng) for name in names}


def _vote_reaction(k: Keys, rng: random.Random) -> list[str]:
    return vote_keys(k, random_id(rng), random_hash(rng), random_time(rng),
                     random_networks(rng))


def _spend_budget(k: Keys, rng: random.Random) -> list[str]:
    return budget_keys(k, rng.choice(("mint", "imp")), random_hash(rng), random_networks(rng))


def _article_owned(*parts: str, buckets: bool = False, owner_first: bool = True) -> Builder:
    def build(k: Keys, rng: random.Random) -> list[str]:
        article, now = random_id(rng), random_time(rng)
        owner = k.article(article)
        out = [owner] if owner_first else []
        out += [k.article_part(article, p) for p in parts if p != "events"]
        if buckets:
            out += [k.hour_bucket(owner, now), k.day_bucket(owner, now)]
        if "events" in parts:
            out.append(k.article_events(article))
        return out
    return build


def _poll(k: Keys, rng: random.Random) -> tuple[str, str, datetime]:
    return random_id(rng), random_hash(rng), random_time(rng)


def _vote_poll(k: Keys, rng: random.Random) -> list[str]:
    poll, address, now = _poll(k, rng)
    owner = k.poll(poll)
    return [owner, k.poll_counts(poll), k.poll_voters(poll), k.poll_throttle(poll, address),
            k.poll_events(poll), k.hour_bucket(owner, now), k.day_bucket(owner, now),
            *(k.poll_throttle(poll, h) for h in random_networks(rng).values())]


def _poll_parts(*parts: str) -> Builder:
    def build(k: Keys, rng: random.Random) -> list[str]:
        poll = random_id(rng)
        return [k.poll(poll)] + [k.poll_part(poll, p) for p in parts]
    return build


def _click_link(k: Keys, rng: random.Random) -> list[str]:
    article, now, link = random_id(rng), random_time(rng), random_id(rng)
    owner = k.article(article)
    return [k.article_links(article), k.article_linkstats(article), k.hour_bucket(owner, now),
            k.day_bucket(owner, now), k.article_events(article), k.article_credits(article),
            k.article_click_seen(article, random_hash(rng), link),
            *(k.article_click_seen(article, h, link) for h in random_networks(rng).values())]


def _count_impressions(k: Keys, rng: random.Random) -> list[str]:
    article, now = random_id(rng), random_time(rng)
    owner = k.article(article)
    return [owner, k.article_links(article), k.article_linkstats(article),
            k.hour_bucket(owner, now), k.day_bucket(owner, now), k.article_events(article),
            k.article_impressions_seen(article, random_hash(rng))]


BUILDERS: dict[str, Builder] = {
    "vote_reaction": _vote_reaction,
    "spend_budget": _spend_budget,
    "upsert_article": _article_owned("events"),
    "set_links": _article_owned("links"),
    "click_link": _click_link,
    "count_impressions": _count_impressions,
    "create_poll": _poll_parts("counts", "voters", "events"),
    "vote_poll": _vote_poll,
    "patch_poll": _poll_parts("events"),
    "delete_poll": _poll_parts("counts", "voters", "events"),
    "claim_webhook_retries": lambda k, rng: [k.webhook_retry],
    "enqueue_pending": lambda k, rng: [k.registry(s := rng.choice(["default", "b-2"]), "pending"),
                                       k.registry(s, "urls"), k.registry(s, "failed")],
    "claim_pending": lambda k, rng: [k.registry(s := rng.choice(["default", "b-2"]), "pending"),
                                     k.registry(s, "urls")],
    "note_failure": lambda k, rng: [k.registry(s := rng.choice(["default", "b-2"]), "failed"),
                                    k.registry(s, "failures")],
    "close_at_deadline": _poll_parts("events"),
    "aggregate": lambda k, rng: [k.agg("seen")],
    "roll_window": lambda k, rng: [k.agg(f"w:{rng.choice(['24h', '7d', '30d'])}:meta")],
    "file_window": lambda k, rng: [k.agg(f"w:{rng.choice(['24h', '7d', '30d'])}:pending")],
    "alert_transition": lambda k, rng: [k.alerts("state"), k.alerts("pending"), k.alerts("due")],
}


def keys_used(source: str) -> tuple[int, bool]:
    """The KEYS a script names one by one, and whether a list of more follows them
    (a header line `KEYS[n..]`)."""
    named = max((int(n) for n in re.findall(r"KEYS\[(\d+)\]", source)), default=0)
    return named, f"KEYS[{named + 1}..]" in source


@pytest.mark.parametrize("name", sorted(scripts.ALL))
def test_every_script_keeps_its_keys_in_one_slot(name: str) -> None:
    assert name in BUILDERS, (
        f"script {name!r} has no key-list builder in tests/test_slots.py: add one that "
        "builds its KEYS like the store does, so its single slot is checked")
    build = BUILDERS[name]
    rng = random.Random(f"slots-{name}")
    for prefix in ("engage", "site:b"):
        k = Keys(prefix)
        for _ in range(SAMPLES // 2):
            keys = build(k, rng)
            named, more = keys_used(scripts.ALL[name])
            assert len(keys) == named or (more and len(keys) > named), (name, keys)
            slots = {key_slot(key.encode()) for key in keys}
            assert len(slots) == 1, (name, keys, slots)


def test_builders_cover_only_real_scripts() -> None:
    assert set(BUILDERS) <= set(scripts.ALL)



def test_aggregate_keys_share_the_slot_of_their_declared_key() -> None:
    """The aggregate script builds its other keys from the base: all in one slot, so a
    range merges there with ZUNION on a cluster too."""
    rng = random.Random("slots-aggregates")
    for prefix in ("engage", "site:b"):
        k = Keys(prefix)
        home = key_slot(k.agg("seen").encode())
        for _ in range(SAMPLES // 10):
            section = random_id(rng)
            when = random_time(rng)
            built = [
                k.agg(f"rank:approval:s:{section}"), k.agg(f"ids:s:{section}"),
                k.agg(f"h:{k.hour_stamp(when)}:n:yes"), k.agg(f"d:{k.day_stamp(when)}:cast"),
                k.agg("sectot"), k.agg("feed"), f"{k.agg_base}:n:{random_id(rng)}",
                f"{k.agg_base}:w:7d:rank:votes:s:{section}", f"{k.agg_base}:w:30d:sectot",
            ]
            # Another site's figures: under its own base, in the same slot.
            site = k.agg_site(rng.choice(["magazine", "regional-2", "x"]), "default")
            assert site != k.agg_base and k.agg_site("default", "default") == k.agg_base
            built += [f"{site}:rank:worst:s:{section}", f"{site}:own", f"{site}:sectot",
                      f"{site}:h:{k.hour_stamp(when)}:cast", f"{site}:w:24h:ids"]
            assert {key_slot(key.encode()) for key in built} == {home}, built
