"""Rolling windows: the dashboard's preset ranges (last 24 hours, 7 days, 30 days) kept
ready, so a ranked page, the sections and the overview of such a range read the sets
under the window's key base exactly as all time reads its own (`store/stats.py`)
instead of merging the range's hour and day sets on each request.

Why they are kept: measured. With them removed (bench/dashboard.py, 10,000 articles,
2026-12-05), every 7-day read got 2 to 5 times slower, 9 to 18 ms a call: a ranked page
3.7 -> 19 ms, the sections 7.4 -> 24 ms, the overview 18 -> 36 ms. Their price is this
module, the window parts of the `aggregate` script, the `roll_window` and `file_window`
scripts, a roll each hour (0.1 to 0.7 s of short scripts at 10,000 articles) and about
half again the aggregates' memory.

A window covers every hour from its first (`from`, in its meta hash) to now. The
aggregator rolls it (`roll`) when the first hour moves on, which is once an hour (once a
day for a range served from day sets): the `roll_window` script sums it again from the
hour and day sets, then `file_window` files its articles under their sections and
rankings a batch at a time. Between rolls the `aggregate` script adds each applied entry
to every window that covers the entry's hour. A reader uses a window only when it
covers exactly the range asked for and is filed (`serving`); any other range, or a
window being rolled, is summed from the hour and day sets.

Their keys (`P:x:{stats}:w:<name>:...`) are in the key map of `store/keys.py`; each roll
replaces them whole. Each site has its own windows under its aggregates' key base
(`keys.agg_site`).
"""

from __future__ import annotations

from datetime import datetime

from engage.store import Store, sites
from engage.timerange import PRESETS, InvalidRange, Range, resolve

NAMES = tuple(name for name, (_, span) in PRESETS.items() if span is not None)


def base(store: Store, name: str, site_base: str | None = None) -> str:
    return f"{site_base or store.keys.agg_base}:w:{name}"


def site_bases(store: Store) -> dict[str, str]:
    """Site name -> its aggregates' key base, the default site first."""
    default = store.config["DEFAULT_SITE"]
    return {name: store.keys.agg_site(name, default) for name in sites.listing(store)}


def site_choices(store: Store, site: str) -> list[str]:
    """The choices a site's articles are counted by: its set's, then those of its
    articles' own sets."""
    own = store.redis.hvals(store.keys.agg_site(site, store.config["DEFAULT_SITE"]) + ":own")
    return list(dict.fromkeys(sites.site_or_default(store, site)["reactions"]["choices"]
                              + [c for line in own for c in line.split(",")]))


def current(store: Store, now: datetime) -> dict[str, Range]:
    """Each preset range as it stands at `now` (those the buckets keep long enough)."""
    out = {}
    for name in NAMES:
        span = PRESETS[name][1]
        assert span is not None
        try:
            out[name] = resolve(now - span, None, now=now,
                                hour_days=int(store.config["HOUR_BUCKET_DAYS"]),
                                day_days=int(store.config["DAY_BUCKET_DAYS"]))
        except InvalidRange:
            continue
    return out


def first_hour(window: Range) -> str:
    return window.segments()[0][1].strftime("%Y%m%d%H")


def segment_names(store: Store, window: Range) -> list[str]:
    """The range's buckets as the aggregate sets name them: `h:<hour>` or `d:<day>`."""
    keys = store.keys
    return [f"h:{keys.hour_stamp(start)}" if kind == "hour" else f"d:{keys.day_stamp(start)}"
            for kind, start in window.segments()]


FILE_BATCH = 500  # articles filed per script call: keeps each call short


def roll(store: Store, now: datetime) -> list[str]:
    """Rebuild every site's window whose first hour has moved on, then file its articles
    a batch at a time (also what an interrupted roll left); returns the names rebuilt
    (`<site>:<window>` but the default site's)."""
    windows = current(store, now)
    bases = site_bases(store)
    pipe = store.redis.pipeline(transaction=False)
    for site_base in bases.values():
        for name in windows:
            pipe.hget(base(store, name, site_base) + ":meta", "from")
            pipe.zcard(base(store, name, site_base) + ":pending")
    state = iter(pipe.execute())
    rolled = []
    for site, site_base in bases.items():
        for name, window in windows.items():
            stored, pending = next(state), next(state)
            if stored != first_hour(window):
                pending = start_roll(store, name, window, site)
                rolled.append(name if site_base == store.keys.agg_base else f"{site}:{name}")
            while pending:
                pending = file_pending(store, name, FILE_BATCH, site)
    return rolled


def start_roll(store: Store, name: str, window: Range, site: str | None = None) -> int:
    """Sum window `name` of `site` (default: the default site) again over `window`'s
    buckets; returns how many articles wait to be filed."""
    site = site or store.config["DEFAULT_SITE"]
    site_base = store.keys.agg_site(site, store.config["DEFAULT_SITE"])
    key = base(store, name, site_base)
    return int(store.run("roll_window", keys=[key + ":meta"], args=[
        site_base, ",".join(site_choices(store, site)), key, first_hour(window),
        *segment_names(store, window)]))


def file_pending(store: Store, name: str, batch: int, site: str | None = None) -> int:
    """File up to `batch` of window `name`'s pending articles; returns how many remain."""
    site = site or store.config["DEFAULT_SITE"]
    site_base = store.keys.agg_site(site, store.config["DEFAULT_SITE"])
    key = base(store, name, site_base)
    return int(store.run("file_window", keys=[key + ":pending"], args=[
        site_base, ",".join(sites.site_or_default(store, site)["reactions"]["choices"]), key,
        batch]))


def serving(store: Store, window: Range, now: datetime, site_base: str | None = None
            ) -> str | None:
    """The key base of the site's rolling window that covers exactly `window`, if it is
    rolled up to `now` and filed; None otherwise (sum the range's buckets instead)."""
    for name, preset in current(store, now).items():
        if preset.segments() != window.segments():
            continue
        key = base(store, name, site_base)
        pipe = store.redis.pipeline(transaction=False)
        pipe.hget(key + ":meta", "from")
        pipe.exists(key + ":pending")
        stored, pending = pipe.execute()
        if stored == first_hour(preset) and not pending:
            return key
    return None
