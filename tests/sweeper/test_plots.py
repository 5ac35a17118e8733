"""The plots draw what the data say: means and 95 % t intervals checked against scipy.stats.t on fixed
samples, the posts' points where the spec puts them, the axis each parameter deserves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from scipy import stats

from sweeper import plots
from sweeper.toml_spec import parse

L2 = {"study": {"name": "l2", "dataset": "digits", "epochs": 3, "repeats": 3},
      "params": {"l2": {"grid": [0.0, 1e-4, 1e-3]}},
      "reference": [{"params": {"l2": 1e-4}, "valid_accuracy": 0.97, "test_accuracy": 0.96}]}
POINTS = {"study": {"name": "pts", "dataset": "digits", "epochs": 3, "repeats": 3},
          "point": [{"name": "sgd", "optimizer": "sgd"}, {"name": "adam", "optimizer": "adam", "lr": 0.001}]}


def _measured(spec, rng) -> pd.DataFrame:
    rows = []
    for i, config in enumerate(spec.configs()):
        for seed in range(3):
            valid = 0.9 + 0.02 * i + rng.normal(0, 0.005)
            rows.append(dict(trial=len(rows), config=config["label"], seed=seed, diverged=False,
                             valid_accuracy=valid, test_accuracy=valid - 0.01))
    return pd.DataFrame(rows)


def _t_interval(values) -> tuple[float, float]:
    values = np.asarray(values)
    return stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))


def test_accuracy_bars_are_the_mean_and_t_interval_over_seeds():
    spec = parse(L2)
    measured = _measured(spec, np.random.default_rng(0))
    fig = plots.accuracy(spec, measured)
    ax = fig.axes[0]
    bars = [c for c in ax.containers if c.get_label().startswith("ours: valid")]
    (valid,) = bars
    xs, ys = valid.lines[0].get_data()
    assert ax.get_xscale() == "symlog"  # a penalty with 0 among its values
    for x, y, config in zip(xs, ys, spec.configs()):
        values = measured.loc[measured["config"] == config["label"], "valid_accuracy"]
        assert y == pytest.approx(values.mean())
        assert x == pytest.approx(config["params"]["l2"] * 10 ** -0.04)
    segments = valid.lines[2][0].get_segments()
    for segment, config in zip(segments, spec.configs()):
        low, high = _t_interval(measured.loc[measured["config"] == config["label"], "valid_accuracy"])
        assert sorted(segment[:, 1]) == pytest.approx([low, high])
    posts = [c for c in ax.collections if c.get_label() == "the post: valid accuracy"]
    assert posts[0].get_offsets().tolist() == [[pytest.approx(1e-4 * 10 ** -0.04), 0.97]]


def test_configurations_without_one_numeric_parameter_are_categories():
    spec = parse(POINTS)
    fig = plots.accuracy(spec, _measured(spec, np.random.default_rng(1)))
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sgd", "adam"]
    assert ax.get_ylabel().startswith("accuracy")
    assert "95 %" in fig.get_suptitle() or "seeds" in fig.get_suptitle()


def test_learning_curve_bands_are_t_intervals_per_epoch():
    spec = parse(POINTS)
    rng = np.random.default_rng(2)
    measured = _measured(spec, rng)
    epochs = pd.DataFrame([dict(trial=t, epoch=e, train_error=0.5 / e + rng.normal(0, 0.01),
                                valid_error=0.4 / e + rng.normal(0, 0.01)) for t in measured["trial"]
                           for e in (1, 2, 3)])
    fig = plots.curves(spec, epochs, measured)
    valid_ax = fig.axes[1]
    line = next(li for li in valid_ax.get_lines() if li.get_label() == "adam")
    rows = epochs[epochs["trial"].isin(measured.loc[measured["config"] == "adam", "trial"])]
    assert line.get_ydata() == pytest.approx(rows.groupby("epoch")["valid_error"].mean().to_numpy())
    band = [c for c in valid_ax.collections if isinstance(c, PolyCollection)][1]  # sgd, then adam
    top = band.get_paths()[0].vertices[:, 1].max()
    low, high = _t_interval(rows.loc[rows["epoch"] == 1, "valid_error"])
    assert top == pytest.approx(high)
    assert valid_ax.get_xlabel() == "epoch" and fig.axes[0].get_ylabel().startswith("error")


def test_the_loss_plot_is_the_mean_training_loss_per_epoch_on_a_log_axis():
    spec = parse(POINTS)
    rng = np.random.default_rng(3)
    measured = _measured(spec, rng)
    epochs = pd.DataFrame([dict(trial=t, epoch=e, train_loss=2.0 / e ** 2 * rng.uniform(0.8, 1.2))
                           for t in measured["trial"] for e in (1, 2, 3, 4)])
    fig = plots.loss(spec, epochs, measured)
    ax = fig.axes[0]
    line = next(li for li in ax.get_lines() if li.get_label() == "sgd")
    rows = epochs[epochs["trial"].isin(measured.loc[measured["config"] == "sgd", "trial"])]
    assert line.get_ydata() == pytest.approx(rows.groupby("epoch")["train_loss"].mean().to_numpy())
    band = [c for c in ax.collections if isinstance(c, PolyCollection)][0]
    first = rows.loc[rows["epoch"] == 1, "train_loss"]
    assert band.get_paths()[0].vertices[:, 1].max() == pytest.approx(_t_interval(first)[1])
    assert ax.get_yscale() == "log" and ax.get_ylabel().startswith("training loss")


def test_a_figure_from_the_middle_of_the_posts_run_is_not_drawn_as_its_end():
    data = {**L2, "reference": L2["reference"] + [{"params": {"l2": 1e-3}, "valid_accuracy": 0.5, "step": 10}]}
    spec = parse(data)
    ax = plots.accuracy(spec, _measured(spec, np.random.default_rng(0))).axes[0]
    posts = [c for c in ax.collections if c.get_label() == "the post: valid accuracy"]
    assert [y for _, y in posts[0].get_offsets().tolist()] == [0.97]


def test_the_toy_problem_gets_success_rates_with_clopper_pearson_intervals():
    spec = parse({"study": {"name": "toy", "dataset": "xor", "epochs": 3, "repeats": 4},
                  "point": [{"name": "gd", "lr": 0.5}, {"name": "adam", "optimizer": "adam", "lr": 0.5}]})
    measured = pd.DataFrame([dict(trial=i, config=c, seed=s, diverged=False, test_accuracy=a)
                             for i, (c, s, a) in enumerate([("gd", 0, 0.95), ("gd", 1, 0.6), ("gd", 2, 0.91),
                                                            ("gd", 3, 0.5), ("adam", 0, 0.99), ("adam", 1, 0.97),
                                                            ("adam", 2, 0.98), ("adam", 3, 0.92)])])
    ax = plots.success(spec, measured).axes[0]
    bars = ax.containers
    (x_gd,), (x_adam,) = (b.lines[0].get_xdata() for b in bars)
    assert (x_gd, x_adam) == (0.5, 1.0)
    low, high = stats.binomtest(2, 4).proportion_ci(0.95)
    segment = bars[0].lines[2][0].get_segments()[0]
    assert sorted(segment[:, 0]) == pytest.approx([low, high])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["gd", "adam"]
