"""The poll state of each site's feeds (engage/feeds.py): the validators of the last
answer (ETag, Last-Modified, a digest of the body), when to poll next and how many polls
failed in a row (the backoff), in one hash per site. A feed no longer in the site's
`feeds` loses its state the next time the site is looked at.

One worker polls a feed at a time: `take` sets a lease key that ends by itself after
FEED_LEASE seconds, so a worker killed mid-poll holds nothing for long, and a feed
polled twice registers nothing new the second time.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from engage.store import Store

FEED_LEASE = 300  # seconds: longer than a feed and its sitemaps take to fetch and register


def _lock(store: Store, site: str, url: str) -> str:
    digest = hashlib.sha256(url.encode()).hexdigest()[:32]
    return store.keys.registry(site, f"feedlock:{digest}")


def states(store: Store, site: str, urls: list[str]) -> dict[str, dict[str, Any]]:
    """URL -> its state ({} for a feed never polled); drops the state of feeds the site
    no longer lists."""
    key = store.keys.registry(site, "feeds")
    stored = store.redis.hgetall(key)
    gone = [url for url in stored if url not in urls]
    if gone:
        store.redis.hdel(key, *gone)
    return {url: json.loads(stored[url]) if url in stored else {} for url in urls}


def take(store: Store, site: str, url: str) -> bool:
    """The feed is this worker's to poll until `release` (or FEED_LEASE seconds)."""
    return bool(store.redis.set(_lock(store, site, url), "1", nx=True, ex=FEED_LEASE))


def release(store: Store, site: str, url: str) -> None:
    store.redis.delete(_lock(store, site, url))


def save(store: Store, site: str, url: str, state: dict[str, Any]) -> None:
    store.redis.hset(store.keys.registry(site, "feeds"), url, json.dumps(state))
