"""sweeper.stats against independent computations, and claims' verdicts on planted effects."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from storage.contract.errors import BadInput
from sweeper import claims, evidence, stats

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
    return dict(text="t", kind=kind, section="s", x="x", y="y" if kind in evidence.PAIRED else None,
                metric=None if kind == "diverges" else "test_accuracy", value=extra.get("value"),
                margin=extra.get("margin"), tolerance=extra.get("tolerance"), epoch=None,
                untestable=extra.get("untestable", ""))


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
    ("at_least", 0.97, "supported"), ("at_least", 0.99, "contradicted"),
    ("at_least", float(BASE.mean()), "inconclusive"),
    ("at_most", 0.99, "supported"), ("at_most", 0.97, "contradicted"),
])
def test_threshold_claims(kind, value, expected):
    assert claims.evaluate(_claim(kind, value=value), _measured(BASE, BASE), 10)["verdict"] == expected


def test_diverges_is_decided_by_its_clopper_pearson_interval_against_the_stated_rate():
    ten = np.full(10, 0.98)
    every = {("x", s) for s in range(10)}
    row = claims.evaluate(_claim("diverges"), _measured(ten, ten, every), 10)
    assert row["verdict"] == "supported" and row["effect_low"] == pytest.approx(0.025 ** (1 / 10))  # 10 of 10
    assert row["p_value"] == pytest.approx(2 * sp.binomtest(10, 10, 0.5, alternative="greater").pvalue)
    assert claims.evaluate(_claim("diverges"), _measured(ten, ten), 10)["verdict"] == "contradicted"  # 0 of 10
    # 3 of 3 or 0 of 3 says little: the interval of 0 of 3 reaches 0.71, of 3 of 3 down to 0.29
    three = {("x", s) for s in range(3)}
    assert claims.evaluate(_claim("diverges"), _measured(BASE[:3], BASE[:3], three), 10)["verdict"] == "inconclusive"
    assert claims.evaluate(_claim("diverges"), _measured(BASE[:3], BASE[:3]), 10)["verdict"] == "inconclusive"
    low_rate = dict(_claim("diverges"), rate=0.2)  # "it diverges at all, now and then"
    assert claims.evaluate(low_rate, _measured(BASE[:3], BASE[:3], three), 10)["verdict"] == "supported"
    shortened = claims.evaluate(_claim("diverges"), _measured(ten, ten), 10, shortened=True)
    assert shortened["verdict"] == "inconclusive" and "shorter than the post's" in shortened["note"]
    row = claims.evaluate(_claim("higher"), _measured(BASE[:1], BASE[:1] - 0.01), 10)
    assert row["verdict"] == "inconclusive" and "2 seeds" in row["note"]


def test_noninferiority_p_is_scipys_one_sided_test():
    d = X - Y - 0.004
    assert stats.noninferiority_p(d, 0.002) == pytest.approx(sp.ttest_1samp(d, -0.002, alternative="greater").pvalue)


@pytest.mark.parametrize("kind,y,expected", [
    ("not_lower", BASE + SEED_NOISE, "supported"),     # no difference: x is not worse by the margin
    ("not_lower", BASE - 0.004, "supported"),          # x better
    ("not_lower", BASE + 0.01, "contradicted"),        # x worse by more than the margin
    ("not_lower", BASE + 0.002 + SEED_NOISE, "inconclusive"),  # worse by about the margin
    ("not_higher", BASE + SEED_NOISE, "supported"),
    ("not_higher", BASE - 0.01, "contradicted"),
])
def test_non_inferiority_claims_on_planted_effects(kind, y, expected):
    assert claims.evaluate(_claim(kind, margin=0.002), _measured(BASE, y), 10)["verdict"] == expected


@pytest.mark.parametrize("value,tolerance,expected", [
    (0.98, 0.005, "supported"), (0.90, 0.02, "contradicted"), (float(BASE.mean()) + 0.005, 0.005, "inconclusive"),
])
def test_a_near_claim_is_an_equivalence_test_around_the_posts_figure(value, tolerance, expected):
    row = claims.evaluate(_claim("near", value=value, tolerance=tolerance), _measured(BASE, BASE), 10)
    assert row["verdict"] == expected and row["target"] == f"{value:g} +- {tolerance:g}"
    outside = 2 * min(sp.ttest_1samp(BASE - value, tolerance, alternative="greater").pvalue,
                      sp.ttest_1samp(BASE - value, -tolerance, alternative="less").pvalue)
    assert row["p_value"] == pytest.approx(min(stats.equivalence_p(BASE - value, tolerance), outside))


def test_an_untestable_claim_gets_no_verdict_and_its_reason():
    row = claims.evaluate(_claim("untestable", untestable="the post gives no rate"), _measured(BASE, BASE), 10)
    assert row["verdict"] == "untestable" and row["note"] == "the post gives no rate"


def _trials(**columns) -> pd.DataFrame:
    return pd.DataFrame({"trial": [0], "state": ["COMPLETE"], **columns})


def test_conditions_keep_verdicts_out_of_the_headline_for_the_right_claims():
    from sweeper import toml_spec

    data = {"study": {"name": "c", "dataset": "digits", "epochs": 2, "repeats": 2, "post_train_images": 55_000},
            "params": {"width": 8}, "point": [{"name": "a", "l2": 0.0}, {"name": "b", "l2": 1e-4}],
            "condition": [{"setting": "batch", "post": "100", "ours": "100", "match": True}]}
    spec = toml_spec.parse(data)
    assert claims.conditions(spec, _trials(train_images=[55_000])) == {"all": [], "absolute": []}
    smaller = claims.conditions(spec, _trials(train_images=[19_000]))
    assert smaller == {"all": [], "absolute": ["19,000 training images against the post's 55,000"]}
    data["condition"] += [{"setting": "penalty form", "post": "half", "ours": "sum", "match": False,
                           "changes": "verdicts", "why": "twice as strong"}]
    spec = toml_spec.parse(data)
    assert claims.conditions(spec, _trials(train_images=[55_000]))["all"] == ["penalty form differs from the post's"]
    data["claim"] = [{"post": "tf-hyperparameters", "origin": "post", "text": t, "kind": "higher",
                      "metric": "test_accuracy", "x": "a", "y": "b"} for t in ("one", "two")]
    data["condition"][-1]["claims"] = [2]  # the difference touches the second claim only
    spec = toml_spec.parse(data)
    found = [claims.conditions(spec, _trials(), n)["all"] for n in (1, 2)]
    assert found == [[], ["penalty form differs from the post's"]]
    data["condition"][-1]["claims"] = [3]
    with pytest.raises(BadInput, match=r"claims = \[3\]: list the numbers of the \[\[claim\]\] entries"):
        toml_spec.parse(data)
    del data["condition"][-1]["claims"]
    cut = toml_spec.parse(data, post_length="20 epochs")
    assert "another length (2 epochs, the post's 20 epochs)" in claims.conditions(cut, _trials())["all"]


def test_measures_of_the_loss_curve_and_of_a_step_by_hand():
    """mean_train_loss, loss_rises, epochs_to and the figures at a step against loops over the rows."""
    from storage.contract.spec import Spec
    from sweeper.manager import Handle
    from sweeper.measures import measures

    spec = Spec(name="m", model="mlp", dataset="digits", n_trials=2, epochs=6, sampler={"name": "grid"},
                space={"seed": __import__("optuna").distributions.CategoricalDistribution([0, 1])})
    losses = {0: [2.0, 1.0, 1.5, 0.8, 0.9, 0.5], 1: [1.0, 1.2, 1.1, 1.3, 0.4, 0.3]}
    errors = {0: [0.5, 0.3, 0.2, 0.15, 0.09, 0.05], 1: [0.4, 0.4, 0.3, 0.3, 0.3, 0.2]}
    epochs = pd.DataFrame([dict(trial=t, epoch=e + 1, train_loss=losses[t][e], train_error=0.1,
                                valid_error=errors[t][e]) for t in (0, 1) for e in range(6)])
    trials = pd.DataFrame(dict(trial=[0, 1], state="COMPLETE", reason=None, seed=[0, 1], valid_error=[0.05, 0.2],
                               test_error=[0.06, 0.21], epochs_run=[6, 6], steps_per_epoch=[190, 190],
                               confident_precision=[0.97, 0.9], near_zero=[0.25, 0.0], valid_images=5000,
                               test_images=10_000, train_error_clean=[0.01, 0.15]))
    handle = Handle(None, spec, None, "")
    m = measures(handle, trials, epochs, below=0.1).set_index("trial")
    for t in (0, 1):
        assert m.loc[t, "mean_train_loss"] == pytest.approx(np.mean(losses[t]))
        rises = [b > a for a, b in zip(losses[t], losses[t][1:])]
        assert m.loc[t, "loss_rises"] == pytest.approx(sum(rises) / len(rises))
    assert m.loc[0, "epochs_to"] == 5 and m.loc[1, "epochs_to"] == 7  # never below 0.1: its length + 1
    assert m["confident_precision"].tolist() == [0.97, 0.9] and m["near_zero"].tolist() == [0.25, 0.0]
    assert m["clean_gap"].tolist() == pytest.approx([0.05 - 0.01, 0.2 - 0.15])
    at = measures(handle, trials, epochs, step=500).set_index("trial")  # step 500 ends in epoch 3 (steps 381-570)
    assert at.loc[0, "train_loss"] == 1.5 and at.loc[1, "valid_error"] == 0.3


def test_holm_is_the_step_down_by_hand_and_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan, 0.2])
    ours = stats.holm(p)
    finite = p[~np.isnan(p)]
    order = np.argsort(finite)
    by_hand = np.empty_like(finite)
    running = 0.0
    for rank, i in enumerate(order):  # (m - rank) * p, made non-decreasing, capped at 1
        running = max(running, min(1.0, (len(finite) - rank) * finite[i]))
        by_hand[i] = running
    assert np.isnan(ours[4])
    assert np.delete(ours, 4) == pytest.approx(by_hand)
    assert np.delete(ours, 4) == pytest.approx(multipletests(finite, method="holm")[1])


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_detectable_effect_is_statsmodels_and_is_found_at_80_percent_power(n):
    from statsmodels.stats.power import TTestPower

    sd = 0.001
    mde = stats.detectable(sd, n, n - 1)
    assert mde == pytest.approx(TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8) * sd, rel=1e-6)
    rng = np.random.default_rng(n)
    d = rng.normal(mde, sd, size=(20_000, n))
    found = sp.ttest_1samp(d, 0.0, axis=1).pvalue < 0.05
    assert found.mean() == pytest.approx(0.8, abs=0.015)
    # a pooled spread on more degrees of freedom sees a smaller effect than n - 1 would
    assert stats.detectable(sd, n, 8 * (n - 1)) < mde


def test_the_pooled_spread_is_the_residual_of_statsmodels_ols_on_configurations_and_seeds():
    import statsmodels.api as sm

    rng = np.random.default_rng(5)
    configs, seeds = np.repeat(["a", "b", "c", "d"], 3), np.tile([0, 1, 2], 4)
    level = {"a": 0.97, "b": 0.975, "c": 0.98, "d": 0.96}
    luck = {0: 0.001, 1: -0.002, 2: 0.0}
    values = np.array([level[c] + luck[s] for c, s in zip(configs, seeds)]) + rng.normal(0, 0.0005, 12)
    design = sm.add_constant(pd.get_dummies(pd.DataFrame({"c": configs, "s": seeds.astype(str)}),
                                            drop_first=True).astype(float))
    fit = sm.OLS(values, design).fit()
    sd, df = stats.pooled_sd(values, configs, seeds)
    assert df == fit.df_resid == 6 and sd == pytest.approx(math.sqrt(fit.mse_resid))


def test_the_probability_that_x_beats_y_on_planted_differences():
    share, low, high = stats.prob_better([0.002, 0.001, -0.001, 0.003, 0.0])  # 3 wins in 4, one tie left out
    assert share == 0.75 and (low, high) == pytest.approx(tuple(sp.binomtest(3, 4).proportion_ci(0.95)))
    rng = np.random.default_rng(9)
    d = rng.normal(0.0, 1.0, 4000) + 0.5  # P(d > 0) = Phi(0.5)
    share, low, high = stats.prob_better(d)
    assert low < sp.norm.cdf(0.5) < high


def test_seeds_that_agree_exactly_still_leave_the_sampling_error_of_the_test_set():
    """Three identical differences on a 10,000-image test set: not a zero-width interval but at least the
    binomial error of the two accuracies."""
    x, y = np.full(3, 0.9843), np.full(3, 0.9831)
    measured = pd.DataFrame([dict(config=c, seed=s, diverged=False, test_accuracy=v, test_images=10_000)
                             for c, values in (("x", x), ("y", y)) for s, v in enumerate(values)])
    row = claims.evaluate(_claim("higher"), measured, 10)
    sd = math.hypot(math.sqrt(0.9843 * 0.0157 / 10_000), math.sqrt(0.9831 * 0.0169 / 10_000))
    half = sp.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert (row["effect_low"], row["effect_high"]) == pytest.approx((0.0012 - half, 0.0012 + half))
    assert row["verdict"] == "inconclusive"  # 0.0012 is inside the test set's own noise with 3 seeds


def test_intervals_cover_and_holm_keeps_the_family_wise_error_of_a_report_at_5_percent():
    """By simulation from known distributions: the paired t interval covers the true difference about
    95 % of the time, and a report of 20 claims with no real effect supports or contradicts any of them
    in at most 5 % of reports once Holm adjusts (about 64 % without)."""
    rng = np.random.default_rng(11)
    reports, claims_per, n = 1500, 20, 3
    d = rng.normal(0.0, 0.001, size=(reports, claims_per, n))
    p = sp.ttest_1samp(d, 0.0, axis=2).pvalue
    low, high = sp.ttest_1samp(d[:, 0, :], 0.0, axis=1).confidence_interval(0.95)
    assert ((low < 0) & (high > 0)).mean() == pytest.approx(0.95, abs=0.015)
    raw = (p < 0.05).any(axis=1).mean()
    # Holm rejects anything iff its first step does (the smallest p below 0.05 / 20): checked on 5 reports
    # where it does and 5 where it does not (statsmodels' multipletests runs a garbage collection per call,
    # slow in a process that holds compiled networks), then counted on all
    first = p.min(axis=1) < 0.05 / claims_per
    for row in np.concatenate([p[first][:5], p[~first][:5]]):
        assert (stats.holm(row) < 0.05).any() == (row.min() < 0.05 / claims_per)
    adjusted = first.mean()
    assert raw > 0.5 and adjusted <= 0.05 + 0.012


def test_a_report_adjusts_the_counted_claims_only():
    frame = pd.DataFrame(dict(p_value=[0.01, 0.02, 0.03, 0.001], leans=["supported", "contradicted", "supported",
                                                                        "supported"],
                              counted=[True, True, True, False], verdict=["supported", "contradicted", "supported",
                                                                          "supported"]))
    out = claims.adjust(frame)
    assert out["p_adjusted"].tolist()[:3] == pytest.approx([0.03, 0.04, 0.04]) and math.isnan(out["p_adjusted"][3])
    assert out["verdict"].tolist() == ["supported", "contradicted", "supported", "supported"]
    out = claims.adjust(frame.assign(p_value=[0.01, 0.04, 0.03, 0.001]))
    assert out["verdict"].tolist() == ["supported", "inconclusive", "inconclusive", "supported"]


def test_a_posts_single_run_is_held_against_the_prediction_interval_of_one_run():
    low, high = stats.prediction_interval(X)
    half = sp.t.ppf(0.975, len(X) - 1) * X.std(ddof=1) * math.sqrt(1 + 1 / len(X))  # one new draw
    assert (low, high) == pytest.approx((X.mean() - half, X.mean() + half))
    ci = stats.mean_interval(X)
    assert low < ci.low and high > ci.high  # wider than the mean's interval
    rng = np.random.default_rng(2)  # by simulation: a new run falls inside about 95 % of the time
    runs = rng.normal(0.98, 0.001, size=(4000, 4))
    inside = [lo <= new <= hi for (lo, hi), new in zip(map(stats.prediction_interval, runs[:, :3]), runs[:, 3])]
    assert np.mean(inside) == pytest.approx(0.95, abs=0.015)


def test_the_paired_bootstrap_is_the_direct_resampling_of_seeds_and_images():
    """bootstrap_se against a plain loop that redraws seeds and images on a fixed sample, and against the
    closed forms at its two ends: one seed (images only: sd / sqrt(images)) and one image per seed
    (seeds only: the population sd / sqrt(seeds))."""
    rng = np.random.default_rng(5)
    d = (rng.random((4, 300)) < 0.1).astype(float) - (rng.random((4, 300)) < 0.2) + rng.normal(0, 0.05, (4, 1))
    direct = []
    for _ in range(4000):
        seeds, images = rng.integers(0, 4, 4), rng.integers(0, 300, 300)
        direct.append(d[np.ix_(seeds, images)].mean())
    assert stats.bootstrap_se(d, resamples=4000) == pytest.approx(np.std(direct, ddof=1), rel=0.05)
    one = d[:1]
    assert stats.bootstrap_se(one, resamples=4000) == pytest.approx(one.std(ddof=1) / math.sqrt(300), rel=0.05)
    column = rng.normal(0, 1, (6, 1))
    assert stats.bootstrap_se(column, resamples=4000) == pytest.approx(column.std() / math.sqrt(6), rel=0.05)


def test_a_test_set_claim_takes_its_spread_from_the_bootstrap_over_its_own_images():
    """Two configurations that err on nearly the same test images: their paired difference varies far less
    than two independent binomial errors say, and the verdict uses the bootstrap's spread; without the
    flags it falls back to the binomial one."""
    rng = np.random.default_rng(2)
    hard = rng.random(10_000) < 0.02  # images both get wrong
    flags, rows = {}, []
    for seed in range(3):
        x = ~hard & ~(rng.random(10_000) < 0.001)
        y = x & ~(rng.random(10_000) < 0.003)  # y errs on x's images and on 0.3 % more
        flags[2 * seed], flags[2 * seed + 1] = x, y
        rows += [dict(config="x", seed=seed, trial=2 * seed, diverged=False, test_accuracy=x.mean(),
                      test_images=10_000),
                 dict(config="y", seed=seed, trial=2 * seed + 1, diverged=False, test_accuracy=y.mean(),
                      test_images=10_000)]
    measured = pd.DataFrame(rows)
    row = claims.evaluate(_claim("higher"), measured, 10, flags=flags)
    d = np.vstack([flags[2 * s].astype(float) - flags[2 * s + 1] for s in range(3)])
    sd = max(stats.bootstrap_se(d) * math.sqrt(3), (d.mean(axis=1)).std(ddof=1))
    half = sp.t.ppf(0.975, 2) * sd / math.sqrt(3)
    assert (row["effect_low"], row["effect_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert row["verdict"] == "supported"
    binomial = claims.evaluate(_claim("higher"), measured, 10)  # no flags: two independent binomial errors
    assert binomial["effect_high"] - binomial["effect_low"] > 2 * (row["effect_high"] - row["effect_low"])


def test_a_best_epoch_is_never_set_against_a_last_epoch():
    """Early stopping keeps its best validation epoch; a fixed run its last. A claim on the final validation
    figure between the two reads both at their last epoch; between two fixed runs it reads the kept figure."""
    rows = []
    for seed in range(4):
        rows += [dict(config="x", seed=seed, diverged=False, kept_best=True, valid_error=0.020 + seed * 1e-4,
                      last_valid_error=0.026 + seed * 1e-4, valid_images=5000),
                 dict(config="y", seed=seed, diverged=False, kept_best=False, valid_error=0.025 + seed * 2e-4,
                      last_valid_error=0.025 + seed * 2e-4, valid_images=5000)]
    measured = pd.DataFrame(rows).assign(valid_accuracy=lambda f: 1 - f["valid_error"])
    claim = dict(_claim("lower"), metric="valid_error")
    row = claims.evaluate(claim, measured, 10)
    assert row["effect"] == pytest.approx(np.mean([0.026 - 0.025 - s * 1e-4 for s in range(4)]))
    assert "last epoch" in row["note"]
    fixed = claims.evaluate(claim, measured.assign(kept_best=False), 10)
    assert fixed["effect"] == pytest.approx(np.mean([0.020 - 0.025 - s * 1e-4 for s in range(4)]))
    assert "last epoch" not in fixed["note"]


def test_a_claim_on_one_configuration_takes_its_own_spread_not_a_noisier_neighbours():
    x, y = 0.98 + rng.normal(0, 0.001, 6), 0.5 + rng.normal(0, 0.05, 6)
    row = claims.evaluate(_claim("at_least", value=0.97), _measured(x, y), 10)
    assert row["detectable"] == pytest.approx(stats.detectable(x.std(ddof=1), 6, 5))
    assert row["levels"] == 0 and row["spread"] == pytest.approx(x.std(ddof=1))


def test_a_configuration_whose_runs_blew_up_is_left_out_of_the_pooled_spread_unless_the_claim_is_on_it():
    import statsmodels.api as sm

    rng = np.random.default_rng(11)
    seeds = np.arange(5)
    luck = rng.normal(0, 0.002, 5)  # what a seed does to every configuration
    level = {"x": 0.97, "y": 0.975, "z": 0.98, "blown": 0.6}
    noise = {"x": 0.001, "y": 0.0015, "z": 0.001, "blown": 0.2}  # one arm: a seed's loss blew up, another's not
    rows = [dict(config=c, seed=int(s), diverged=False, test_accuracy=level[c] + luck[s] + rng.normal(0, noise[c]))
            for c in level for s in seeds]
    measured = pd.DataFrame(rows)

    def ols_sd(configs) -> tuple[float, int]:  # independently: the residual of statsmodels OLS on the kept arms
        part = measured[measured["config"].isin(configs)]
        design = sm.add_constant(pd.get_dummies(part[["config"]].assign(seed=part["seed"].astype(str)),
                                                drop_first=True).astype(float))
        fit = sm.OLS(part["test_accuracy"].to_numpy(), design).fit()
        return math.sqrt(fit.mse_resid), int(fit.df_resid)

    sd, levels, df = claims.spread(measured, "test_accuracy", paired=True, floor=0.0, own=("x", "y"))
    pooled, dof = ols_sd(["x", "y", "z"])
    assert (levels, df) == (3, dof) and sd == pytest.approx(math.sqrt(2) * pooled)  # the blown arm left out
    sd, levels, df = claims.spread(measured, "test_accuracy", paired=True, floor=0.0, own=("blown", "x"))
    pooled, dof = ols_sd(list(level))
    assert (levels, df) == (4, dof) and sd == pytest.approx(math.sqrt(2) * pooled)  # a claim on it keeps it
