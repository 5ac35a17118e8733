"""The TOML spec: what it accepts, its defaults, and one clear line for each mistake."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from storage.contract.errors import BadInput
from sweeper import toml_spec

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def parse(text: str, **kw):
    return toml_spec.parse(tomllib.loads(text), **kw)


BASE = '[study]\nname = "s"\nn_trials = 4\nepochs = 2\n'


def test_defaults():
    spec = parse(BASE)
    assert (spec.model, spec.dataset, spec.metric, spec.direction, spec.seed) == \
        ("mlp", "digits", "valid_error", "minimize", 0)
    assert spec.sampler == {"name": "tpe", "seed": 0, "multivariate": True} and spec.pruner == {"name": "none"}
    assert (spec.heartbeat, spec.grace, spec.max_retry) == (30, 60, 3)
    assert spec.fixed == {} and spec.space == {}


def test_seed_draws_default_to_all_but_the_split_and_keep_their_order():
    assert parse(BASE).seed_draws == ["init", "order", "dropout"]
    assert parse(BASE + 'seed_draws = ["split", "init"]').seed_draws == ["init", "split"]
    assert parse(BASE + "seed_draws = []").seed_draws == []


def test_distributions_and_fixed_values():
    spec = parse(BASE + """
        [params]
        lr = {float = [1e-4, 1.0], log = true}
        dropout = {float = [0.0, 0.5], step = 0.1}
        width = {int = [100, 1000], step = 100}
        optimizer = {choice = ["sgd", "adam"]}
        l2 = 1e-4
        batch_size = 50
    """.replace("        ", ""))
    assert spec.space == {"lr": FloatDistribution(1e-4, 1.0, log=True),
                          "dropout": FloatDistribution(0.0, 0.5, step=0.1),
                          "width": IntDistribution(100, 1000, step=100),
                          "optimizer": CategoricalDistribution(["sgd", "adam"])}
    assert spec.fixed == {"l2": 1e-4, "batch_size": 50}


def test_grid_values_make_a_grid_study_with_every_point_as_budget():
    spec = parse(BASE.replace("n_trials = 4\n", "") + "[params]\nl2 = {grid = [0, 1e-5, 1e-4]}\n"
                 "optimizer = {choice = [\"sgd\", \"adam\"]}\nwidth = {int = [100, 300], step = 100}\n")
    assert spec.is_grid and spec.sampler["name"] == "grid"
    assert spec.n_trials == 3 * 2 * 3
    assert spec.grid_space() == {"l2": [0.0, 1e-5, 1e-4], "optimizer": ["sgd", "adam"], "width": [100, 200, 300]}


def test_name_override_and_metric_accuracy():
    spec = parse(BASE + 'metric = "valid_accuracy"\ndirection = "maximize"\n', name="other")
    assert spec.name == "other" and spec.direction == "maximize"


@pytest.mark.parametrize("text, message", [
    ('[stduy]\nname = "s"', "unknown top-level table 'stduy': did you mean 'study'?"),
    (BASE + "n_trails = 3", "unknown key in [study] 'n_trails': did you mean 'n_trials'?"),
    (BASE + 'seed_draws = ["init", "splt"]', "unknown [study] seed_draws entry 'splt': did you mean 'split'?"),
    (BASE + 'seed_draws = "split"', "[study] seed_draws = 'split' is not a list of names: list some of init,"),
    (BASE + 'seed_draws = ["init", "init"]', 'seed_draws = ["init", "init"] names a part twice'),
    ('[study]\nname = "s"\nepochs = 2', "[study] n_trials is missing"),
    ('[study]\nname = "s"\nn_trials = 2', "[study] epochs is missing"),
    ('[study]\nn_trials = 2\nepochs = 2', "the study has no name"),
    (BASE.replace('"s"', '"a b"'), "study name 'a b' is invalid"),
    (BASE.replace("n_trials = 4", "n_trials = 0"), "[study] n_trials = 0 is invalid: use an integer from 1 to"),
    (BASE + 'model = "resnet"', "unknown model 'resnet'"),
    (BASE + 'dataset = "mnsit"', "unknown dataset 'mnsit': did you mean 'mnist'?"),
    (BASE + 'dataset = "idx:/no/such/folder"', "no folder /no/such/folder"),
    (BASE + 'sampler = "tpee"', "unknown sampler 'tpee': did you mean 'tpe'?"),
    (BASE + 'pruner = "medain"', "unknown pruner 'medain': did you mean 'median'?"),
    (BASE + 'metric = "test_error"', "would choose hyperparameters on the test set"),
    (BASE + 'metric = "valid_eror"', "unknown metric 'valid_eror': did you mean 'valid_error'?"),
    (BASE + 'direction = "maximize"', "valid_error is to minimize, not maximize"),
    (BASE + "heartbeat = 10\ngrace = 5", "[study] grace = 5 is invalid: use an integer from 11 to"),
    # what create accepted and every worker then failed on (a traceback, the OOM killer)
    (BASE + "heartbeat = 100000000", "[study] heartbeat = 100000000 is invalid: use an integer from 1 to 86400"),
    (BASE + "seed = 4294967296", "[study] seed = 4294967296 is invalid"),
    (BASE + 'sampler = {name = "tpe", n_startup_trials = "abc"}',
     "n_startup_trials = 'abc' is invalid: use an integer"),
    (BASE + 'sampler = {name = "tpe", n_ei_candidates = 1000000000}', "use an integer from 1 to 10000"),
    (BASE + 'sampler = {name = "random", seed = -5}', "seed = -5 is invalid"),
    (BASE + 'sampler = {name = "tpe", multivariate = "yes"}', "multivariate = 'yes' is invalid: use true or false"),
    (BASE + 'sampler = {name = "qmc", qmc_type = "sobolx"}', "use 'sobol' or 'halton'"),
    (BASE + 'pruner = {name = "hyperband", reduction_factor = 1}', "reduction_factor = 1 is invalid"),
    (BASE + 'pruner = {name = "median", n_warmup_steps = -1}', "n_warmup_steps = -1 is invalid"),
    (BASE + "[params]\nwidth = {int = [10, 100000]}\ndepth = {int = [1, 32]}",
     "the largest network this study allows (width 100000, depth 32) needs about"),
    (BASE + "max_retry = -1", "[study] max_retry = -1 is invalid"),
    (BASE.replace("epochs = 2", "epochs = true"), "[study] epochs = True is invalid"),
    (BASE.replace("epochs = 2", "epochs = 2.5"), "[study] epochs = 2.5 is invalid"),
    (BASE + "n_trials = 5", None),  # a key twice: TOML itself refuses it
    (BASE + "[params]\nlearning_rate = 0.1", "unknown parameter 'learning_rate'"),
    (BASE + "[params]\nwdith = 100", "did you mean 'width'?"),
    (BASE + "[params]\nlr = 0", "parameter lr=0 is invalid: use a number > 0"),
    (BASE + "[params]\ndropout = 1.5", "parameter dropout=1.5 is invalid"),
    (BASE + "[params]\noptimizer = \"adamw\"", "parameter optimizer='adamw' is invalid: use one of sgd"),
    (BASE + "[params]\nlr = {float = [1.0, 0.1]}", "impossible range [1.0, 0.1] (low > high)"),
    (BASE + "[params]\nl2 = {float = [0, 1e-3], log = true}", "a log scale needs low > 0"),
    (BASE + "[params]\nlr = {float = [0, 1.0]}", "parameter lr=0 is invalid"),
    (BASE + "[params]\nlr = {flaot = [0.1, 1.0]}", "unknown key in [params] lr 'flaot': did you mean 'float'?"),
    (BASE + "[params]\nlr = {float = [0.1, 1.0], lg = true}", "did you mean 'log'?"),
    (BASE + "[params]\nlr = {float = [0.1, 1.0], choice = [0.1]}", "needs exactly one of"),
    (BASE + "[params]\nlr = {log = true}", "needs exactly one of"),
    (BASE + "[params]\nlr = {float = [0.1]}", "float must be [LOW, HIGH]"),
    (BASE + "[params]\nwidth = {float = [10, 100]}", "width is an integer"),
    (BASE + "[params]\nl2 = {int = [0, 1]}", "l2 is a number, not an integer"),
    (BASE + "[params]\noptimizer = {float = [0, 1]}", "optimizer is one of"),
    (BASE + "[params]\nwidth = {int = [10, 100], step = 0}", "step must be a positive integer"),
    (BASE + "[params]\nlr = {float = [0.1, 1.0], log = true, step = 0.1}", "step and log cannot be combined"),
    (BASE + "[params]\noptimizer = {choice = []}", "choice must be a non-empty list"),
    (BASE + "[params]\noptimizer = {choice = [\"sgd\", \"sgd\"]}", "lists a value twice"),
    (BASE + "[params]\noptimizer = {choice = [\"sgd\"], step = 1}", "'step' applies to float and int ranges"),
    (BASE + "[params]\nlr = [0.1, 0.2]", "a list is not one value"),
    (BASE + "[params]\nl2 = {grid = [0, 1e-4]}\n[study]", None),
    (BASE + 'sampler = "tpe"\n[params]\nl2 = {grid = [0, 1e-4]}', "grid values need sampler = \"grid\""),
    (BASE + 'sampler = "grid"\n[params]\nlr = {float = [0.1, 1.0]}', "the grid sampler needs listed values"),
    (BASE.replace("n_trials = 4", "n_trials = 9") + "[params]\nl2 = {grid = [0, 1e-4]}",
     "n_trials = 9 exceeds the 2 grid points"),
    (BASE + 'model = "lenet"\n[params]\ndepth = 2', "'depth' applies to mlp only, not lenet"),
    (BASE + 'model = "lenet"\n[params]\ndepth = {int = [1, 3]}', "depth applies to mlp only"),
    (BASE + "[params]\nschedule = \"exponential\"\ndecay = {float = [0, 0.99]}",
     "decay can be 0.0, but parameter decay=0.0 is invalid for the exponential schedule"),
])
def test_mistakes_are_one_line_that_names_the_problem(text, message):
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assert message is None
        return
    with pytest.raises(BadInput) as err:
        toml_spec.parse(data)
    assert "\n" not in str(err.value)
    if message is not None:
        assert message in str(err.value)


def test_load_names_the_file_in_every_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[study\nname = 1")
    with pytest.raises(BadInput, match=r"bad.toml: invalid TOML: .*line 1.*: fix the syntax"):
        toml_spec.read(bad)
    bad.write_text(BASE + "[params]\nlr = 0")
    with pytest.raises(BadInput, match="bad.toml: \\[params\\] parameter lr=0"):
        toml_spec.read(bad)
    with pytest.raises(BadInput, match="cannot read spec"):
        toml_spec.read(tmp_path / "missing.toml")


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_study_is_valid(path, monkeypatch):
    monkeypatch.chdir(path.parents[1])  # idx:../shared/... style paths are relative to the repository
    text = path.read_text()
    if "idx:" in text:
        pytest.skip("needs the IDX folder it names")
    spec = toml_spec.read(path)
    assert spec.name == path.stem


SEARCHED = BASE + """
[params]
lr = {float = [0.01, 0.5], log = true}
width = {int = [16, 64], step = 16}
optimizer = {choice = ["sgd", "adam"]}
l2 = 1e-4
"""


def test_enqueue_entries_are_checked_against_the_space_and_kept_in_order():
    spec = parse(SEARCHED + '[[enqueue]]\nlr = 0.1\nwidth = 32\n[[enqueue]]\noptimizer = "adam"\nlr = "0.02"\n')
    assert spec.enqueue == [{"lr": 0.1, "width": 32}, {"optimizer": "adam", "lr": 0.02}]
    assert parse(SEARCHED).enqueue == [] and not spec.same_search(parse(SEARCHED))


@pytest.mark.parametrize("entries, message", [
    ("[[enqueue]]\nlr = 0.9", "[[enqueue]] 1: lr = 0.9 lies outside the study's space (0.01 to 0.5, log)"),
    ("[[enqueue]]\nwidth = 40", "width = 40 lies outside the study's space (16 to 64)"),
    ('[[enqueue]]\noptimizer = "adagrad"', "optimizer = adagrad lies outside the study's space (one of sgd, adam)"),
    ("[[enqueue]]\nl2 = 0.1", "l2 is fixed at 0.0001 in study 's': give searched parameters only"),
    ("[[enqueue]]\nmomentum = 0.5", "momentum is not a parameter in study 's'"),
    ("[[enqueue]]\nlrr = 0.1", "lrr is not a parameter"),
    ("[[enqueue]]\n", "[[enqueue]] 1 is empty"),
    ("[[enqueue]]\nlr = 0.1\n[[enqueue]]\nlr = 0.1", "[[enqueue]] 2 repeats [[enqueue]] 1"),
    ("[[enqueue]]\nlr = 0.1\n" + "".join(f"[[enqueue]]\nlr = 0.{i}1\n" for i in range(1, 5)),
     "5 [[enqueue]] entries exceed [study] n_trials = 4"),
])
def test_bad_enqueue_entries_are_one_line(entries, message):
    with pytest.raises(BadInput) as err:
        parse(SEARCHED + entries)
    assert "\n" not in str(err.value) and message in str(err.value), str(err.value)


def test_a_grid_takes_no_enqueue_entries():
    with pytest.raises(BadInput, match="is a grid: it runs its own points"):
        parse(BASE.replace("n_trials = 4", "n_trials = 2") + "[params]\nl2 = {grid = [0, 1e-4]}\n[[enqueue]]\nl2 = 0")
