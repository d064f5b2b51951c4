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
replaces them whole.
"""

from __future__ import annotations

from datetime import datetime

from engage.store import Store
from engage.timerange import PRESETS, InvalidRange, Range, resolve

NAMES = tuple(name for name, (_, span) in PRESETS.items() if span is not None)


def base(store: Store, name: str) -> str:
    return store.keys.agg(f"w:{name}")


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
    """Rebuild every window whose first hour has moved on, then file its articles a
    batch at a time (also what an interrupted roll left); returns the names rebuilt."""
    windows = current(store, now)
    pipe = store.redis.pipeline(transaction=False)
    for name in windows:
        pipe.hget(base(store, name) + ":meta", "from")
        pipe.zcard(base(store, name) + ":pending")
    state = pipe.execute()
    rolled = []
    for index, (name, window) in enumerate(windows.items()):
        stored, pending = state[2 * index], state[2 * index + 1]
        if stored != first_hour(window):
            pending = start_roll(store, name, window)
            rolled.append(name)
        while pending:
            pending = file_pending(store, name, FILE_BATCH)
    return rolled


def start_roll(store: Store, name: str, window: Range) -> int:
    """Sum window `name` again over `window`'s buckets; returns how many articles wait
    to be filed."""
    key = base(store, name)
    return int(store.run("roll_window", keys=[key + ":meta"], args=[
        store.keys.agg_base, ",".join(store.config["CHOICES"]), key, first_hour(window),
        *segment_names(store, window)]))


def file_pending(store: Store, name: str, batch: int) -> int:
    """File up to `batch` of window `name`'s pending articles; returns how many remain."""
    key = base(store, name)
    return int(store.run("file_window", keys=[key + ":pending"], args=[
        store.keys.agg_base, ",".join(store.config["CHOICES"]), key, batch]))


def serving(store: Store, window: Range, now: datetime) -> str | None:
    """The key base of the rolling window that covers exactly `window`, if it is rolled
    up to `now` and filed; None otherwise (sum the range's buckets instead)."""
    for name, preset in current(store, now).items():
        if preset.segments() != window.segments():
            continue
        key = base(store, name)
        pipe = store.redis.pipeline(transaction=False)
        pipe.hget(key + ":meta", "from")
        pipe.exists(key + ":pending")
        stored, pending = pipe.execute()
        if stored == first_hour(preset) and not pending:
            return key
    return None
