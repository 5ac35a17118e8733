"""Intervals and tests over seeds, all from scipy.stats: a mean's t interval, paired and one-sample t-tests,
an equivalence test (TOST), a binomial interval for shares."""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE


@dataclass(frozen=True)
class Estimate:
    """A mean (or a mean difference) over n seeds with its two-sided 95 % interval and a p-value."""

    n: int
    mean: float
    std: float
    low: float
    high: float
    p: float = math.nan


def finite(values) -> np.ndarray:
    """The finite values as float64 (a diverged seed has no figure)."""
    x = np.asarray(values, dtype=np.float64)
    return x[np.isfinite(x)]


def mean_interval(values, popmean: float = 0.0) -> Estimate:
    """The mean of the finite `values` with Student's t interval; p of a one-sample t-test against `popmean`.

    n < 2: no interval (nan). All values equal: the interval is the value itself, and p is 1 when it
    equals `popmean`, else 0 (no spread to test against: every seed says the same).
    """
    x = finite(values)
    n = len(x)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return Estimate(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    if std == 0.0:
        return Estimate(n, mean, 0.0, mean, mean, 1.0 if mean == popmean else 0.0)
    with _quiet():
        test = stats.ttest_1samp(x, popmean)
        ci = test.confidence_interval(CONFIDENCE)
    return Estimate(n, mean, std, float(ci.low) + 0.0, float(ci.high) + 0.0, float(test.pvalue))


def mean_share(values) -> Estimate:
    """`mean_interval` of shares (accuracies, errors) with the interval cut to [0, 1], where a share lies:
    with few seeds and a large spread the t interval can reach past 1 (or below 0)."""
    est = mean_interval(values)
    if not math.isfinite(est.low):
        return est
    return replace(est, low=max(est.low, 0.0), high=min(est.high, 1.0))


def shifted(values, by: float) -> Estimate:
    """`mean_interval` of values - by (the effect against a threshold), p against 0."""
    return mean_interval(finite(values) - by)


def paired(x, y) -> Estimate:
    """The mean of x - y over pairs (seed by seed) with its t interval, p of the paired t-test
    (scipy.stats.ttest_rel); pairs with a non-finite side are dropped."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    d = x - y
    if len(d) >= 2 and d.std(ddof=1) > 0:
        with _quiet():
            test = stats.ttest_rel(x, y)
            ci = test.confidence_interval(CONFIDENCE)
        return Estimate(len(d), float(d.mean()), float(d.std(ddof=1)), float(ci.low), float(ci.high),
                        float(test.pvalue))
    return mean_interval(d)


def equivalence_p(d, margin: float) -> float:
    """p of the two one-sided tests (TOST) that the mean of `d` lies inside (-margin, margin)."""
    d = finite(d)
    if len(d) < 2:
        return math.nan
    if d.std(ddof=1) == 0.0:
        return 0.0 if abs(d.mean()) < margin else 1.0
    with _quiet():
        above = stats.ttest_1samp(d, -margin, alternative="greater").pvalue
        below = stats.ttest_1samp(d, margin, alternative="less").pvalue
    return float(max(above, below))


def noninferiority_p(d, margin: float) -> float:
    """p of the one-sided test that the mean of `d` lies above -margin (x is not worse than y by the margin)."""
    d = finite(d)
    if len(d) < 2:
        return math.nan
    if d.std(ddof=1) == 0.0:
        return 0.0 if d.mean() > -margin else 1.0
    with _quiet():
        return float(stats.ttest_1samp(d, -margin, alternative="greater").pvalue)


def share_interval(k: int, n: int) -> tuple[float, float]:
    """The Clopper-Pearson 95 % interval of a share k / n (scipy.stats.binomtest)."""
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(CONFIDENCE)
    return float(ci.low), float(ci.high)



@contextlib.contextmanager
def _quiet():
    """scipy warns of precision loss when the seeds give nearly the same figure (common here: twin
    configurations, a saturated network); the figures it returns are still right for our use."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Precision loss occurred", category=RuntimeWarning)
        yield
