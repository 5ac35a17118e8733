"""Intervals and tests over seeds, from scipy.stats and statsmodels: a mean's t interval, paired and
one-sample t-tests, equivalence (TOST) and non-inferiority tests, a binomial interval for shares, the
probability that one configuration beats another, Holm's correction, the smallest detectable effect."""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
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


def mean_interval(values, popmean: float = 0.0, floor: float = 0.0) -> Estimate:
    """The mean of the finite `values` with Student's t interval; p of a one-sample t-test against `popmean`.

    n < 2: no interval (nan). `floor`: the least standard deviation the values are taken to have (the
    sampling error of the figures themselves), so that seeds agreeing more closely than that do not make
    the interval narrower. All values equal with no floor: the interval is the value itself, and p is 1
    when it equals `popmean`, else 0 (no spread to test against: every seed says the same).
    """
    x = finite(values)
    n = len(x)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n < 2:
        return Estimate(1, mean, math.nan, math.nan, math.nan)
    std = float(x.std(ddof=1))
    if std < floor:
        return floored(x, floor, popmean)
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


def shifted(values, by: float, floor: float = 0.0) -> Estimate:
    """`mean_interval` of values - by (the effect against a threshold), p against 0."""
    return mean_interval(finite(values) - by, floor=floor)


def paired(x, y, floor: float = 0.0) -> Estimate:
    """The mean of x - y over pairs (seed by seed) with its t interval, p of the paired t-test
    (scipy.stats.ttest_rel); pairs with a non-finite side are dropped. `floor`: the smallest standard
    deviation the differences are taken to have (the sampling error of the figures themselves): seeds
    that agree more closely than that do not make the interval narrower than it allows."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    d = x - y
    if len(d) >= 2 and d.std(ddof=1) > 0 and d.std(ddof=1) >= floor:
        with _quiet():
            test = stats.ttest_rel(x, y)
            ci = test.confidence_interval(CONFIDENCE)
        return Estimate(len(d), float(d.mean()), float(d.std(ddof=1)), float(ci.low), float(ci.high),
                        float(test.pvalue))
    return mean_interval(d, floor=floor)


def equivalence_p(d, margin: float, floor: float = 0.0) -> float:
    """p of the two one-sided tests (TOST) that the mean of `d` lies inside (-margin, margin)."""
    return max(one_sided(d, -margin, True, floor), one_sided(d, margin, False, floor))


def floored(d, sd: float, popmean: float = 0.0) -> Estimate:
    """The t interval and two-sided p of the mean of `d` (against `popmean`) with standard deviation `sd`
    in place of the sample's (n - 1 degrees of freedom)."""
    d = finite(d)
    n, mean = len(d), float(d.mean())
    se = sd / math.sqrt(n)
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * se
    p = float(2 * stats.t.sf(abs(mean - popmean) / se, n - 1))
    return Estimate(n, mean, sd, mean - half, mean + half, p)


def binomial_sd(share: float, n_images: float) -> float:
    """The sampling standard deviation of an accuracy (or error) `share` measured on `n_images` images."""
    if not (math.isfinite(share) and n_images and n_images > 0):
        return 0.0
    return math.sqrt(max(share * (1 - share), 0.0) / n_images)


def prob_better(d) -> tuple[float, float, float]:
    """(P(x > y), its 95 % Clopper-Pearson interval): the share of seeds on which x beat y, ties left out."""
    d = finite(d)
    wins, n = int((d > 0).sum()), int((d != 0).sum())
    if n == 0:
        return math.nan, math.nan, math.nan
    low, high = share_interval(wins, n)
    return wins / n, low, high


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment of p-values (statsmodels' multipletests); NaN entries stay NaN and
    are not counted in the family."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return out


RESAMPLES = 1000  # the standard error to about 2 % of itself


def bootstrap_se(per_image, resamples: int = RESAMPLES, seed: int = 0) -> float:
    """The standard error of the mean of a seeds x images table (each seed's figure on each test image:
    right 1 / wrong 0, or a pair's difference of them), by a bootstrap that redraws both the seeds and the
    images: what the mean would vary by over other seeds and another test set of the same size. The
    images are redrawn once per resample for every seed alike (the seeds share one test set)."""
    d = np.asarray(per_image, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] < 1:
        return math.nan
    n, m = d.shape
    rng = np.random.default_rng(seed)
    out = []
    for size in [500] * (resamples // 500) + ([resamples % 500] if resamples % 500 else []):
        images = rng.multinomial(m, np.full(m, 1.0 / m), size=size)  # how often each image is drawn
        seeds = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
        per_seed = d @ images.T / m  # (n, size): each seed's mean over the redrawn images
        out.append((seeds * per_seed.T).sum(axis=1) / n)
    return float(np.std(np.concatenate(out), ddof=1))


POWER = 0.8


def detectable(sd: float, n: int, df: float, power: float = POWER) -> float:
    """The smallest true mean (in the units of `sd`) that a two-sided t-test at ALPHA on `n` values of
    standard deviation `sd` (the t statistic with `df` degrees of freedom) finds with probability `power`
    (scipy's noncentral t)."""
    if not (n >= 1 and df >= 1 and sd > 0 and math.isfinite(sd)):
        return math.nan
    from scipy.optimize import brentq

    se, crit = sd / math.sqrt(n), float(stats.t.ppf(1 - ALPHA / 2, df))

    def shortfall(delta: float) -> float:  # P(T > crit) + P(T < -crit), the second as P(-T > crit) at -nc
        nc = delta / se
        far_side = float(stats.nct.sf(crit, df, -nc))  # scipy's nct.cdf gives NaN far out in the tail
        return float(stats.nct.sf(crit, df, nc)) + (0.0 if math.isnan(far_side) else far_side) - power

    high = se * (crit + 10)
    return float(brentq(shortfall, 0.0, high, xtol=se * 1e-9))


def pooled_sd(values, configs, seeds) -> tuple[float, int]:
    """(residual standard deviation, degrees of freedom) of the additive model value ~ configuration +
    seed over a configurations x seeds table (missing cells left out): the spread of one figure once each
    configuration's level and each seed's shared luck are removed. A paired difference between two
    configurations has sqrt(2) times it, on these degrees of freedom instead of n - 1."""
    frame = pd.DataFrame({"v": np.asarray(values, dtype=np.float64), "c": list(configs), "s": list(seeds)})
    frame = frame[np.isfinite(frame["v"])]
    table = frame.pivot_table(index="c", columns="s", values="v", aggfunc="mean").dropna(axis=1, how="any")
    k, n = table.shape
    if k < 2 or n < 2:
        return math.nan, 0
    resid = table.to_numpy() - table.mean(axis=1).to_numpy()[:, None] - table.mean(axis=0).to_numpy()[None, :] \
        + float(table.to_numpy().mean())
    df = (k - 1) * (n - 1)
    return math.sqrt(float((resid ** 2).sum()) / df), df


def one_sided(d, threshold: float, greater: bool, floor: float = 0.0) -> float:
    """p of the one-sided t-test that the mean of `d` lies above (`greater`) or below `threshold`, with the
    standard deviation at least `floor` (scipy's t distribution; n - 1 degrees of freedom)."""
    d = finite(d)
    n = len(d)
    if n < 2:
        return math.nan
    sd = max(float(d.std(ddof=1)), floor)
    if sd == 0.0:
        return 0.0 if (d.mean() > threshold if greater else d.mean() < threshold) else 1.0
    t = (float(d.mean()) - threshold) / (sd / math.sqrt(n))
    return float(stats.t.sf(t, n - 1) if greater else stats.t.cdf(t, n - 1))


def noninferiority_p(d, margin: float, floor: float = 0.0) -> float:
    """p of the one-sided test that the mean of `d` lies above -margin (x is not worse than y by the margin)."""
    return one_sided(d, -margin, True, floor)


def prediction_interval(values) -> tuple[float, float]:
    """The 95 % interval in which one more run's figure falls: mean +- t(0.975, n - 1) s sqrt(1 + 1/n)
    (what a single run of a post is compared with), cut to [0, 1] like a share."""
    x = finite(values)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf(1 - ALPHA / 2, n - 1)) * float(x.std(ddof=1)) * math.sqrt(1 + 1 / n)
    return max(float(x.mean()) - half, 0.0), min(float(x.mean()) + half, 1.0)


def binomtest(k: int, n: int, rate: float, alternative: str) -> float:
    """p of the exact binomial test of k successes in n against the share `rate` (scipy.stats.binomtest)."""
    return float(stats.binomtest(k, n, rate, alternative=alternative).pvalue)


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
