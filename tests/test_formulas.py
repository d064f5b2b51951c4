"""The figures' arithmetic (engage/formulas.py): approval, Wilson bound, trending, poll
percentages. Plain functions, so no app and no Redis here."""

from __future__ import annotations

import ast
import math
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engage.formulas import approval, percentages, trending_score, wilson_lower

ENGAGE = Path(__file__).resolve().parent.parent / "engage"


@pytest.mark.parametrize("module", ["formulas.py", "timerange.py"])
def test_rule_modules_import_only_the_standard_library(module: str) -> None:
    tree = ast.parse((ENGAGE / module).read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names] if isinstance(node, ast.Import)
            else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        )
    }
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported


# -- approval and its Wilson lower bound ------------------------------------------------
def test_approval_is_the_share_of_the_first_choice() -> None:
    assert approval(3, 4) == 0.75
    assert approval(0, 5) == 0.0
    assert approval(0, 0) is None  # no votes: nothing known, not 0 %


@pytest.mark.parametrize(
    ("positive", "total", "lower"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion",
        # worked examples for the score (Wilson) interval at 95 %.
        (81, 263, 0.2553),
        (15, 148, 0.0624),
        (0, 20, 0.0),
        (1, 29, 0.0061),
        # All positive: the bound is n / (n + z^2).
        (10, 10, 10 / (10 + 1.959963984540054**2)),
        (50, 100, 0.4038),
    ],
)
def test_wilson_lower_bound_matches_published_values(
    positive: int, total: int, lower: float
) -> None:
    assert wilson_lower(positive, total) == pytest.approx(lower, abs=5e-5)


def test_wilson_lower_bound_prefers_evidence() -> None:
    assert wilson_lower(0, 0) is None
    bound_5_of_5, bound_480_of_500 = wilson_lower(5, 5), wilson_lower(480, 500)
    assert bound_5_of_5 is not None and bound_480_of_500 is not None
    assert bound_5_of_5 < bound_480_of_500


@given(st.integers(min_value=1, max_value=100_000).flatmap(
    lambda total: st.tuples(st.integers(min_value=0, max_value=total), st.just(total))))
def test_wilson_lower_bound_is_a_lower_bound(case: tuple[int, int]) -> None:
    positive, total = case
    bound = wilson_lower(positive, total)
    assert bound is not None
    assert 0.0 <= bound <= positive / total + 1e-12  # floating point, not the formula
    if positive < total:  # one more positive vote never lowers the bound
        better = wilson_lower(positive + 1, total)
        assert better is not None and better > bound


def test_trending_compares_the_last_hour_with_the_usual_hour() -> None:
    assert trending_score(0, 0) == 1.0  # no history, no votes: neutral
    assert trending_score(9, 0) == 10.0  # no history: no division by zero
    assert trending_score(3, 3) == 1.0
    assert trending_score(1, 3) == 0.5


# -- poll percentages -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"a": 1, "b": 1, "c": 1}, {"a": 34, "b": 33, "c": 33}),
        ({"a": 2, "b": 1}, {"a": 67, "b": 33}),
        ({"a": 0, "b": 0}, {"a": 0, "b": 0}),
        ({"a": 1, "b": 0}, {"a": 100, "b": 0}),
        ({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1, "f": 1, "g": 1},
         {"a": 15, "b": 15, "c": 14, "d": 14, "e": 14, "f": 14, "g": 14}),
        ({"a": 333, "b": 333, "c": 334}, {"a": 33, "b": 33, "c": 34}),
        ({}, {}),
    ],
)
def test_percentages_use_largest_remainder(
    counts: dict[str, int], expected: dict[str, int]
) -> None:
    assert percentages(counts) == expected


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=10))
def test_percentages_always_add_up_to_100(ticks: list[int]) -> None:
    counts = {f"o{n}": count for n, count in enumerate(ticks, 1)}
    shares = percentages(counts)
    assert list(shares) == list(counts)  # same options, same order
    total = sum(ticks)
    if total == 0:
        assert set(shares.values()) == {0}
        return
    assert sum(shares.values()) == 100
    for option, count in counts.items():
        exact = 100 * count / total
        assert shares[option] in (math.floor(exact), math.ceil(exact))
    # More votes never show a smaller share; equal votes favour the earlier option.
    options = list(counts)
    for i, first in enumerate(options):
        for second in options[i + 1 :]:
            if counts[first] >= counts[second]:
                assert shares[first] >= shares[second]
            else:
                assert shares[first] <= shares[second]
