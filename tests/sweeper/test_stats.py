"""sweeper.stats against independent computations, and claims' verdicts on planted effects."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from sweeper import claims, stats

X = np.array([0.981, 0.984, 0.979, 0.983, 0.985])
Y = np.array([0.978, 0.982, 0.979, 0.980, 0.981])


def test_mean_interval_is_students_t_by_hand():
    est = stats.mean_interval(X)
    half = sp.t.ppf(0.975, len(X) - 1) * X.std(ddof=1) / math.sqrt(len(X))  # textbook formula
    assert est.mean == pytest.approx(X.mean()) and est.std == pytest.approx(X.std(ddof=1))
    assert (est.low, est.high) == pytest.approx((X.mean() - half, X.mean() + half))


def test_a_share_interval_stops_at_1_and_0_where_the_t_interval_goes_past():
    shares = np.array([0.52, 0.96, 1.0])
    low, high = sp.t.interval(0.95, 2, loc=shares.mean(), scale=sp.sem(shares))
    assert high > 1 and low > 0  # the t interval itself reaches past 1
    est = stats.mean_share(shares)
    assert (est.low, est.high) == pytest.approx((low, 1.0))
    assert stats.mean_share(1 - shares).low == 0.0
    inside = stats.mean_share(X)  # far from the bounds: the plain t interval
    assert (inside.low, inside.high) == (stats.mean_interval(X).low, stats.mean_interval(X).high)


def test_nearly_identical_seeds_give_their_interval_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        twin = np.nextafter(0.9747, 1.0)  # one float apart: scipy's "catastrophic cancellation" case
        est = stats.mean_interval([0.9747, 0.9747, twin], popmean=0.5)
        tost = stats.equivalence_p([0.9747, 0.9747, twin], 0.002)
    assert est.n == 3 and est.low <= est.mean <= est.high and est.p < 0.05 and tost > 0.05


def test_paired_matches_ttest_rel_and_the_interval_of_the_differences():
    est = stats.paired(X, Y)
    d = X - Y
    half = sp.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert est.p == pytest.approx(sp.ttest_rel(X, Y).pvalue)
    assert (est.low, est.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert est.p < 0.05  # this sample has an effect


def test_pairs_with_a_missing_side_are_dropped_and_a_constant_difference_is_certain():
    assert stats.paired([1.0, np.nan, 3.0], [0.0, 1.0, 2.0]).n == 2
    est = stats.paired([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert (est.mean, est.low, est.high, est.p) == (0.5, 0.5, 0.5, 0.0)
    assert math.isnan(stats.mean_interval([1.0]).low)


def test_equivalence_p_is_the_larger_of_two_one_sided_tests():
    d = X - Y
    expected = max(sp.ttest_1samp(d, -0.01, alternative="greater").pvalue,
                   sp.ttest_1samp(d, 0.01, alternative="less").pvalue)
    assert stats.equivalence_p(d, 0.01) == pytest.approx(expected)


def test_share_interval_is_clopper_pearson():
    low, high = stats.share_interval(3, 3)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 3))  # exact binomial bound for 3 of 3


def _measured(x_values, y_values, diverged=()) -> pd.DataFrame:
    rows = [dict(config=c, seed=s, diverged=(c, s) in diverged, test_accuracy=v)
            for c, values in (("x", x_values), ("y", y_values)) for s, v in enumerate(values)]
    return pd.DataFrame(rows)


def _claim(kind, **extra):
    return dict(text="t", kind=kind, section="s", x="x", y="y" if kind in ("higher", "lower", "similar") else None,
                metric=None if kind == "diverges" else "test_accuracy", value=extra.get("value"),
                margin=extra.get("margin"), epoch=None)


rng = np.random.default_rng(0)
BASE = 0.98 + rng.normal(0, 0.001, 5)
SEED_NOISE = rng.normal(0, 0.0002, 5)


@pytest.mark.parametrize("kind,y,expected", [
    ("higher", BASE - 0.003, "supported"),      # planted effect in the claimed direction
    ("higher", BASE + 0.003, "contradicted"),   # reversed
    ("higher", BASE + SEED_NOISE, "inconclusive"),  # no effect
    ("lower", BASE + 0.003, "supported"),
    ("similar", BASE + SEED_NOISE, "supported"),
    ("similar", BASE - 0.01, "contradicted"),
])
def test_paired_claims_on_planted_effects(kind, y, expected):
    claim = _claim(kind, margin=0.002)
    assert claims.evaluate(claim, _measured(BASE, y), 10)["verdict"] == expected


@pytest.mark.parametrize("kind,value,expected", [
    ("at_least", 0.97, "supported"), ("at_least", 0.99, "contradicted"), ("at_least", float(BASE.mean()), "inconclusive"),
    ("at_most", 0.99, "supported"), ("at_most", 0.97, "contradicted"),
])
def test_threshold_claims(kind, value, expected):
    assert claims.evaluate(_claim(kind, value=value), _measured(BASE, BASE), 10)["verdict"] == expected


def test_diverges_needs_every_seed_and_one_seed_is_never_enough_for_a_test():
    all_seeds = {("x", s) for s in range(5)}
    assert claims.evaluate(_claim("diverges"), _measured(BASE, BASE, all_seeds), 10)["verdict"] == "supported"
    assert claims.evaluate(_claim("diverges"), _measured(BASE, BASE), 10)["verdict"] == "contradicted"
    assert claims.evaluate(_claim("diverges"), _measured(BASE, BASE, {("x", 0)}), 10)["verdict"] == "inconclusive"
    shortened = claims.evaluate(_claim("diverges"), _measured(BASE, BASE), 10, full_epochs=150)
    assert shortened["verdict"] == "inconclusive" and "the post ran 150" in shortened["note"]
    assert claims.evaluate(_claim("diverges"), _measured(BASE, BASE, all_seeds), 10, 150)["verdict"] == "supported"
    row = claims.evaluate(_claim("higher"), _measured(BASE[:1], BASE[:1] - 0.01), 10)
    assert row["verdict"] == "inconclusive" and "2 seeds" in row["note"]
