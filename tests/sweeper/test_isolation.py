"""Nuisance parameters tuned per configuration (sweeper.isolation) through `sweeper reproduce`: a planted case
on the bundled digits where one fixed rate makes Adam beat SGD, and each at its own tuned rate SGD is at
least as good (within 0.03); the report shows both side by side, with the isolation plot."""

from __future__ import annotations

import tomllib

import pytest

from storage.contract.errors import BadInput
from sweeper import isolation, toml_spec

PLANTED = """\
[study]
name = "planted.optimizers"
section = "rates"
title = "Adam against SGD at Adam's rate, then each at its own"
model = "mlp"
dataset = "digits"
epochs = 10
repeats = 6
compare = ["optimizer"]
seed_draws = ["init", "order", "dropout", "split"]

[params]
width = 64
lr = 0.002
batch_size = 50
optimizer = {grid = ["adam", "sgd"]}

[tune]
lr = {float = [0.001, 1.0], log = true}
budget = 6

[[claim]]
text = "Adam is more accurate than SGD."
kind = "higher"
metric = "test_accuracy"
x = "optimizer=adam"
y = "optimizer=sgd"

[[claim]]
text = "SGD is at least as accurate as Adam, within 0.03."
kind = "not_lower"
metric = "test_accuracy"
margin = 0.03
margin_why = "planted: digits has 360 test images, so a paired difference of two accuracies near 0.97 varies by 0.013"
x = "optimizer=sgd"
y = "optimizer=adam"
"""


def test_the_tuning_studies_search_each_configuration_on_a_seed_of_their_own_from_the_posts_setting():
    data = tomllib.loads(PLANTED)
    spec = toml_spec.parse(data)
    tables = isolation.tuning_tables(data, spec)
    specs = [toml_spec.parse(t) for t in tables]
    assert [s.name for s in specs] == ["planted.optimizers.tune1", "planted.optimizers.tune2"]
    for s, optimizer in zip(specs, ("adam", "sgd")):
        assert s.fixed["optimizer"] == optimizer and "lr" in s.space and s.n_trials == 6
        assert s.enqueue == [{"lr": 0.002}]  # the post's setting first
        assert s.seed not in spec.grid_space()["seed"]  # never a seed the re-run uses
    tuned = toml_spec.parse(isolation.tuned_table(data, spec, [{"lr": 0.01}, {"lr": 0.5}]))
    assert tuned.name == "planted.optimizers.tuned"
    assert [c["params"] for c in tuned.configs()] == [{"optimizer": "adam", "lr": 0.01},
                                                      {"optimizer": "sgd", "lr": 0.5}]
    assert [c["label"] for c in tuned.configs()] == [c["label"] for c in spec.configs()]
    assert tuned.claims[0]["text"].startswith("At each arm's tuned setting: ") and not tuned.tune


@pytest.mark.parametrize("tune, message", [
    ("[tune]\nlr = {float = [0.001, 1.0]}", "[tune] has no budget"),
    ("[tune]\nbudget = 0\nlr = {float = [0.001, 1.0]}", "[tune] budget = 0 is invalid"),
    ("[tune]\nbudget = 4\noptimizer = {choice = [\"sgd\"]}", "[tune] optimizer = "),
    ("[tune]\nbudget = 4\nlrr = {float = [0.1, 1.0]}", "[tune] unknown parameter 'lrr'"),
    ("[tune]\nbudget = 4", "[tune] names no parameter to tune"),
])
def test_a_bad_tune_table_is_one_line_that_says_the_fix(tune, message):
    text = PLANTED[:PLANTED.index("[tune]")] + tune + "\n" + PLANTED[PLANTED.index("[[claim]]"):]
    with pytest.raises(BadInput, match=message.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{")):
        toml_spec.parse(tomllib.loads(text))
    with pytest.raises(BadInput, match="compare names 'width'"):
        toml_spec.parse(tomllib.loads(PLANTED.replace('compare = ["optimizer"]', 'compare = ["width"]')))


# The post's rate is each arm's own ([[point]] entries): lr is tuned although the arms differ in it, because
# compare names the one parameter they are compared on.
OWN_RATES = PLANTED[:PLANTED.index("[params]")] + """[params]
width = 64
batch_size = 50

[[point]]
name = "Adam at its rate"
optimizer = "adam"
lr = 0.002

[[point]]
name = "SGD at its rate"
optimizer = "sgd"
lr = 0.5

[tune]
lr = {float = [0.001, 1.0], log = true}
budget = 6
"""


def test_a_rate_each_arm_sets_itself_is_tuned_from_that_arms_own_value():
    data = tomllib.loads(OWN_RATES)
    spec = toml_spec.parse(data)
    tables = isolation.tuning_tables(data, spec)
    starts = [toml_spec.parse(t).enqueue for t in tables]
    assert starts == [[{"lr": 0.002}], [{"lr": 0.5}]]  # each arm's own, not one shared value
    assert [isolation.post_setting(data, c, ["lr"]) for c in spec.configs()] == [{"lr": 0.002}, {"lr": 0.5}]
    tuned = toml_spec.parse(isolation.tuned_table(data, spec, [{"lr": 0.01}, {"lr": 0.9}]))
    assert [c["params"] for c in tuned.configs()] == [{"optimizer": "adam", "lr": 0.01},
                                                      {"optimizer": "sgd", "lr": 0.9}]
    # without compare, a parameter the arms differ in is what they compare: tuning it is refused
    with pytest.raises(BadInput, match=r"\[tune\] lr is what the configurations differ in: .* \[study\] compare"):
        toml_spec.parse(tomllib.loads(OWN_RATES.replace('compare = ["optimizer"]\n', "")))
    with pytest.raises(BadInput, match=r"\[tune\] lr is what the configurations differ in: tune another"):
        toml_spec.parse(tomllib.loads(OWN_RATES.replace('compare = ["optimizer"]', 'compare = ["lr"]')))


def test_the_posts_setting_reads_one_dict_for_all_arms_or_one_per_arm():
    assert isolation.post_settings({"post": {"lr": 0.8}}, 3) == [{"lr": 0.8}] * 3  # tuned studies made before
    assert isolation.post_settings({"post": [{"lr": 0.8}, {"lr": 0.001}]}, 2) == [{"lr": 0.8}, {"lr": 0.001}]


def test_the_isolation_plot_marks_each_arms_own_post_value_in_its_colour_or_one_shared_line():
    import pandas as pd

    from sweeper import plots

    spec = toml_spec.parse(tomllib.loads(OWN_RATES))
    tuning = [(arm, pd.DataFrame({"state": ["COMPLETE"] * 3, "lr": lrs, "valid_error": [0.05, 0.03, 0.04],
                                  "trial": [0, 1, 2]}))
              for arm, lrs in (("Adam at its rate", [0.002, 0.01, 0.05]), ("SGD at its rate", [0.5, 0.9, 0.1]))]
    measured = pd.DataFrame({"config": ["Adam at its rate"] * 3 + ["SGD at its rate"] * 3,
                             "valid_error": [0.03, 0.031, 0.029, 0.04, 0.041, 0.039]})

    def dashed(post):
        search = plots.isolation(spec, tuning, "lr", post, measured, measured).axes[0]
        return [(line.get_xdata()[0], line.get_color()) for line in search.lines if line.get_linestyle() == "--"
                and len(line.get_xdata())]

    own = dashed([0.002, 0.5])
    assert [x for x, _ in own] == [0.002, 0.5] and own[0][1] != own[1][1]
    assert [x for x, _ in dashed([0.8, 0.8])] == [0.8]
    assert dashed([None, None]) == []


@pytest.mark.slow
def test_one_fixed_rate_says_adam_wins_each_at_its_best_says_sgd_is_as_good(tmp_path):
    from sweeper import analysis, reproduce, writeup

    folder = tmp_path / "studies"
    folder.mkdir()
    (folder / "planted.toml").write_text(PLANTED)
    planned = reproduce.plan([], folder=folder)
    url = f"sqlite:///{tmp_path / 'iso.db'}"
    code, done = reproduce.run(planned, url, n_workers=2)
    assert code == 0
    fixed, tuned = (h.spec.name for _, h in done)
    assert tuned == fixed + ".tuned"
    at_post, at_best = analysis.open(fixed, storage=url).claims(), analysis.open(tuned, storage=url).claims()
    assert at_post["verdict"].tolist() == ["supported", "contradicted"]  # one rate: Adam's, SGD far behind
    assert at_best["verdict"][1] == "supported"  # each at its best: SGD within 0.03 of Adam
    assert at_best["verdict"][0] != "supported"
    best = [isolation.best_setting(analysis.open(isolation.tuning_name(fixed, i), storage=url).trials(), ["lr"])["lr"]
            for i in (1, 2)]
    trials = analysis.open(tuned, storage=url).trials()
    assert sorted(trials.groupby("optimizer")["lr"].first().tolist()) == sorted(best) and best[1] > 0.05
    report = writeup.write(reproduce.report_parts(done), tmp_path / "out", title="planted").read_text()
    side = report[report.index("One setting for all against each at its best"):]
    assert "| 2 | SGD is at least as accurate as Adam, within 0.03. |" in side
    assert "| contradicted |" in side and "| supported |" in side
    assert f"{tuned}.isolation.png" in report and (tmp_path / "out" / f"{tuned}.isolation.png").exists()
    # the verdicts at the post's setting are those the report judged for that study (Holm-adjusted where
    # counted), not measured again on their own p
    from sweeper import manager

    judged = writeup._measure(manager.open_study(fixed, url))
    judged.claims = judged.claims.assign(verdict="as-judged-in-the-report")
    side, _ = writeup._isolation(manager.open_study(tuned, url), writeup._measure(manager.open_study(tuned, url)),
                                 tmp_path, {fixed: judged})
    assert "\n".join(side).count("| as-judged-in-the-report |") == 2
