"""The arithmetic behind editors' figures and poll results: plain numbers in and out.

- approval: share of the first configured choice ("yes") among all reactions;
- score: the Wilson lower bound (95 %) of that share, so 5 of 5 ranks below 480 of 500;
- worst: the Wilson upper bound (95 %), lowest first: an article is listed among the least
  approved only when even the most its votes allow is low (confidently bad), so 0 of 1
  ranks above 40 of 500 there, and 5 of 5 is never near the bottom (the daily digest's
  bottom list too);
- trending: (recent + 1) / (baseline + 1), votes in the last hour against the hourly
  average before it (store/stats.py reads both); the +1s spare an article without
  history a division by zero;
- poll percentages: whole numbers that add up to exactly 100 (largest remainder).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def approval(positive: int, total: int) -> float | None:
    """Share of positive reactions; None without votes (not 0: nothing is known yet)."""
    return positive / total if total else None


def _wilson(positive: int, total: int, z: float, sign: int) -> float | None:
    if total <= 0:
        return None
    p = positive / total
    z2 = z * z
    centre = p + z2 / (2 * total)
    margin = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return min(1.0, max(0.0, (centre + sign * margin) / (1 + z2 / total)))


def wilson_lower(positive: int, total: int, z: float = Z95) -> float | None:
    """Lower bound of the Wilson score interval of positive/total; None without votes."""
    return _wilson(positive, total, z, -1)


def wilson_upper(positive: int, total: int, z: float = Z95) -> float | None:
    """Upper bound of that interval: the worst approved are those whose best case is low
    (the least approved lists), so 0 of 2 ranks above 0 of 200."""
    return _wilson(positive, total, z, 1)


# Ranking keys are whole numbers a Redis sorted set holds exactly (below 2**53): the
# Wilson bound kept to 1e-9, the vote total capped at 2**23 - 1. The aggregate scripts
# key the ranking sets with the same arithmetic in Lua (store/scripts.py, built from
# these constants); tests/test_aggregates.py runs both over the same counts.
SCORE_STEPS = 1_000_000_000
TOTAL_CAP = 2**23 - 1
VOTES_SHIFT = 2**30


def rank_keys(positive: int, total: int) -> tuple[int, int, int]:
    """(approval key, votes key, worst key), higher ranks first. Approval: the lower
    bound, then more votes; votes: more votes, then the lower bound; worst: the lowest
    upper bound, then more votes. Unrated: (-1, 0, -1), last."""
    score, upper = wilson_lower(positive, total), wilson_upper(positive, total)
    if score is None or upper is None:
        return -1, 0, -1
    steps, capped = math.floor(score * SCORE_STEPS), min(total, TOTAL_CAP)
    return (steps * (TOTAL_CAP + 1) + capped, capped * VOTES_SHIFT + steps,
            (SCORE_STEPS - math.floor(upper * SCORE_STEPS)) * (TOTAL_CAP + 1) + capped)


def trending_score(recent: float, baseline: float) -> float:
    return (recent + 1.0) / (baseline + 1.0)


def percentages(counts: dict[str, int]) -> dict[str, int]:
    """Whole percentages of the ticks that add up to 100 (largest remainder).

    Ties in the remainder go to the earlier option, so the answer is deterministic.
    All zero while nobody has voted.
    """
    ticks = sum(counts.values())
    if ticks <= 0:
        return {option: 0 for option in counts}
    shares: dict[str, int] = {}
    remainders: list[tuple[int, int, str]] = []
    for index, (option, n) in enumerate(counts.items()):
        whole, rest = divmod(100 * n, ticks)
        shares[option] = whole
        remainders.append((-rest, index, option))
    missing = 100 - sum(shares.values())
    for _, _, option in sorted(remainders)[:missing]:
        shares[option] += 1
    return shares
