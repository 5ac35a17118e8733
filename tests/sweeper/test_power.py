"""Seeds by power (sweeper.power): the seeds a claim needs against statsmodels and scipy, the choice from a
study's claims, and `sweeper reproduce --repeats auto` running a pilot and then the seeds it chose."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as sp

from sweeper import power


@pytest.mark.parametrize("spread,claimed", [(0.001, 0.002), (0.001, 0.0012), (0.0005, 0.002), (1.0, 0.9)])
def test_the_seeds_a_claim_on_one_configuration_needs_are_statsmodels_power_analysis(spread, claimed):
    from statsmodels.stats.power import TTestPower

    n = power.seeds_for(spread, 0, claimed, pilot=2, cap=60)
    analysis = TTestPower()
    assert analysis.power(effect_size=claimed / spread, nobs=n, alpha=0.05) >= 0.8
    if n > 2:
        assert analysis.power(effect_size=claimed / spread, nobs=n - 1, alpha=0.05) < 0.8


def test_a_paired_claim_pooled_over_configurations_needs_fewer_seeds_by_its_degrees_of_freedom():
    """Pooled over 6 configurations a paired claim has 5 (n - 1) degrees of freedom: the noncentral t at
    that n reaches 80 % power (scipy, by hand), one seed fewer does not, and it needs no more seeds than n - 1."""
    spread, claimed = 0.001, 0.0015
    n = power.seeds_for(spread, 6, claimed, pilot=2, cap=60)

    def reach(n):
        df, nc = 5 * (n - 1), claimed / (spread / math.sqrt(n))
        crit = sp.t.ppf(0.975, df)
        return sp.nct.sf(crit, df, nc) + sp.nct.cdf(-crit, df, nc)

    assert reach(n) >= 0.8 > reach(n - 1)
    assert n <= power.seeds_for(spread, 0, claimed, pilot=2, cap=60)


def test_the_choice_is_the_most_any_claim_of_the_post_needs_up_to_the_cap():
    frame = pd.DataFrame([
        dict(origin="post", claimed=0.002, spread=0.001, levels=4, verdict="inconclusive"),   # needs a few
        dict(origin="post", claimed=0.0001, spread=0.001, levels=4, verdict="inconclusive"),  # past any cap
        dict(origin="derived", claimed=0.00001, spread=0.001, levels=4, verdict="inconclusive"),  # ours: no say
        dict(origin="post", claimed=math.nan, spread=0.001, levels=4, verdict="supported"),   # states no size
    ])
    choice = power.choose(frame, pilot=3, cap=8)
    assert choice.needs == {1: power.seeds_for(0.001, 4, 0.002, 3, 8), 2: None}
    assert choice.seeds == 8 and "claims 2 would need more than 8" in choice.words()
    assert power.choose(frame.iloc[[0, 2, 3]], pilot=3, cap=8).seeds == max(3, choice.needs[1])
    assert power.choose(frame.iloc[[3]], pilot=3, cap=8).seeds == 3  # nothing to power: the pilot stays


@pytest.mark.slow
def test_repeats_auto_runs_the_pilot_then_the_seeds_it_chose_and_a_rerun_adds_none(sweeper, tmp_path):
    from sweeper import analysis, manager, reproduce

    url = f"sqlite:///{tmp_path / 'auto.db'}"
    args = ("reproduce", "penalties", "--dataset", "digits", "--epochs", "2", "--repeats", "auto",
            "--max-repeats", "4", "--tune-budget", "2", "--workers", "2", "--storage", url)
    done = sweeper(*args, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    went_past = []
    for item in reproduce.plan(["penalties"], dataset="digits", repeats="auto", epochs=2, cap=4, tune_budget=2):
        assert item.spec.name.endswith((".r3-4.e2", ".r3-4.e2.t2")) and item.pilot == 3
        handle = manager.open_study(item.spec.name, url)
        chosen = handle.study.user_attrs["sweeper_seeds"]
        assert chosen["pilot"] == 3 and 3 <= chosen["seeds"] <= 4
        expected = power.pilot_choice(handle, 3, 4)  # decided on the pilot's seeds alone, again
        assert expected.seeds == chosen["seeds"]
        trials = analysis.open(item.spec.name, storage=url).trials()
        ran = trials[trials["state"].isin(["COMPLETE", "FAIL"])]
        configs = len(item.spec.configs())
        assert len(ran) == configs * chosen["seeds"]
        assert sorted(ran["seed"].unique()) == list(range(chosen["seeds"]))
        pilot, more = ran[ran["seed"] < 3], ran[ran["seed"] >= 3]
        assert more.empty or more["started"].min() >= pilot["finished"].max()  # chosen after the pilot ended
        assert "**Seeds by power:** " + expected.words() in report
        went_past.append(chosen["seeds"] > 3)
    assert any(went_past)  # at least one study went past its pilot (2 epochs on digits: small effects, wide spread)
    fixed = [item.spec.name for item in reproduce.plan(["penalties"], dataset="digits", repeats="auto", epochs=2,
                                                       cap=4, tune_budget=2) if item.spec.tune][0]
    chosen = manager.open_study(fixed, url).study.user_attrs["sweeper_seeds"]
    tuned = manager.open_study(f"{fixed}.tuned", url).study.user_attrs["sweeper_seeds"]
    assert tuned["matched"] == chosen["seeds"] and tuned["seeds"] >= chosen["seeds"]  # side by side at equal n
    ran = analysis.open(f"{fixed}.tuned", storage=url).trials()
    assert sorted(ran[ran["state"] == "COMPLETE"]["seed"].unique()) == list(range(tuned["seeds"]))
    again = sweeper(*args, "--out", tmp_path / "again")
    assert again.returncode == 0 and "created" not in again.stderr and "finished" not in again.stderr, again.stderr


def test_a_choice_raised_to_match_another_study_says_so_and_round_trips():
    own = power.Choice(3, 6, 4, {1: 4, 2: 3})
    raised = power.Choice(3, 6, 6, {1: 4, 2: 3}, matched=6)
    assert power.Choice.from_attr(raised.to_attr()) == raised
    assert power.Choice.from_attr({"pilot": 3, "cap": 6, "seeds": 4, "needs": {"1": 4, "2": 3}}) == own  # older
    assert "raised" not in own.words()
    assert raised.words().endswith("; raised from 4 to 6, the seeds of the study at the post's settings it is "
                                   "set beside")
    assert "raised" not in power.Choice(3, 6, 4, {1: 4}, matched=4).words()  # matched, nothing to raise
