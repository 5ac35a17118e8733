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


CLAIMS = {"study": {"name": "forest", "dataset": "digits", "epochs": 3, "repeats": 4},
          "point": [{"name": "a", "lr": 0.1}, {"name": "b", "lr": 0.01}, {"name": "c", "lr": 0.001}],
          "reference": [{"config": "a", "test_accuracy": 0.97}, {"config": "b", "test_accuracy": 0.96}],
          "claim": [dict(post="tf-hyperparameters", origin="post", **c) for c in (
              {"text": "a beats b", "kind": "higher", "metric": "test_accuracy", "x": "a", "y": "b"},
              {"text": "a and c are about the same", "kind": "similar", "metric": "test_accuracy", "x": "a",
               "y": "c", "margin": 0.01},
              {"text": "b is not worse than c", "kind": "not_lower", "metric": "test_accuracy", "x": "b", "y": "c",
               "margin": 0.005},
              {"text": "a's loss is lower than b's", "kind": "lower", "metric": "train_loss", "x": "a", "y": "b"},
              {"text": "the post gives no figure for this", "untestable": "no figure", "x": "a"},
              {"text": "a's error is about 5 %", "kind": "near", "metric": "test_error", "x": "a", "value": 0.05,
               "tolerance": 0.02})]}


def _forest_frame():
    """The claims frame of CLAIMS on planted per-seed figures as sweeper.claims.claims() builds it for a study
    without conditions (each claim evaluated, then Holm's adjustment), and those figures."""
    from sweeper import claims

    spec = parse(CLAIMS)
    rng = np.random.default_rng(4)
    planted = {"a": (0.95, 0.10), "b": (0.93, 0.20), "c": (0.947, 0.11)}
    measured = pd.DataFrame([dict(trial=i, config=c, seed=s, diverged=False, test_accuracy=acc, test_error=1 - acc,
                                  train_loss=loss * rng.uniform(0.9, 1.1))
                             for i, (c, s) in enumerate((c, s) for c in planted for s in range(4))
                             for acc in [planted[c][0] + rng.normal(0, 0.003)] for loss in [planted[c][1]]])
    rows = [dict(claims.evaluate(claim, measured, spec.epochs), post_effect=claims.posts_effect(spec, claim))
            for claim in spec.claims]
    rows = [dict(row, counted=row["verdict"] != claims.UNTESTABLE) for row in rows]  # all the post's
    frame = claims.adjust(pd.DataFrame(rows, columns=list(claims.COLUMNS)))
    return spec, frame, measured.set_index(["config", "seed"])


def _rows(ax) -> dict[int, float]:
    """{claim number: the row's y} from the panel's tick labels ("3. the claim ...")."""
    return {int(t.get_text().split(".")[0]): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks())}


def test_the_forest_plot_draws_each_claims_effect_interval_margin_and_the_posts_difference():
    spec, frame, m = _forest_frame()
    fig = plots.forest(spec, frame)
    shares, losses = fig.axes  # one panel per unit: shares of examples, training loss
    assert set(_rows(shares)) == {1, 2, 3, 6} and set(_rows(losses)) == {4}
    label = " ".join(shares.get_xlabel().split())
    assert "x − y, the claim's first configuration minus its second" in label and "x − the claim's value" in label
    assert losses.get_xlabel().startswith("train_loss")
    assert "claim 5 (untestable)" in fig._supxlabel.get_text()
    d = m.loc["a", "test_accuracy"] - m.loc["b", "test_accuracy"]  # claim 1, independently of sweeper.stats
    ci = stats.ttest_1samp(d, 0).confidence_interval(0.95)
    effects = {y: x for ax in (shares,) for x, y in next(c for c in ax.collections if c.get_gid() == "effect")
               .get_offsets().tolist()}
    rows = _rows(shares)
    assert effects[rows[1]] == pytest.approx(d.mean())
    assert effects[rows[6]] == pytest.approx(m.loc["a", "test_error"].mean() - 0.05)
    spans = next(c for c in shares.collections if c.get_label() == plots.EFFECT)
    spans = {seg[0, 1]: sorted(seg[:, 0]) for seg in spans.get_segments()}
    assert spans[rows[1]] == pytest.approx([ci.low, ci.high])
    for number, y in rows.items():
        assert spans[y] == pytest.approx([frame.at[number - 1, "effect_low"], frame.at[number - 1, "effect_high"]])
    margins = next(c for c in shares.collections if c.get_label() == plots.MARGIN)
    at = {}
    for seg in margins.get_segments():  # a short vertical dashed line across its row
        at.setdefault(float(seg[:, 1].mean()), []).append(float(seg[0, 0]))
    assert {y: sorted(xs) for y, xs in at.items()} == {rows[2]: pytest.approx([-0.01, 0.01]),
                                                        rows[3]: pytest.approx([-0.005]),  # not_lower: -margin
                                                        rows[6]: pytest.approx([-0.02, 0.02])}  # near: tolerance
    posts = next(c for c in shares.collections if c.get_label() == plots.POST).get_offsets()
    assert {y: x for x, y in posts.tolist()} == {rows[1]: pytest.approx(0.97 - 0.96),
                                                 rows[6]: pytest.approx((1 - 0.97) - 0.05)}
    verdicts = {round(t.get_position()[1]): t.get_text() for t in shares.texts}
    assert verdicts[rows[1]] == frame.at[0, "verdict"] == "supported"


def test_the_forest_plot_grows_with_its_rows():
    spec, frame, _ = _forest_frame()
    few = plots.forest(spec, frame.loc[[0, 1, 3]]).get_figheight()  # claims 1, 2 and 4: both panels
    many = plots.forest(spec, frame).get_figheight()
    assert many - few == pytest.approx(2 * plots.ROW_INCHES)  # claims 3 and 6: two more rows, no new panel


def test_a_forest_panel_turns_symmetric_log_past_a_row_far_wider_than_the_others():
    spec, frame, _ = _forest_frame()
    shares = plots.forest(spec, frame).axes[0]
    assert shares.get_xscale() == "linear"  # no row outlies: a plain axis
    blown = frame.copy()  # one claim's seeds include a run whose loss blew up (finite, so not diverged)
    blown.loc[0, ["effect", "effect_low", "effect_high"]] = [1e19, -3e19, 5e19]
    shares = plots.forest(spec, blown).axes[0]
    others = blown.loc[[1, 2, 5], ["effect", "effect_low", "effect_high"]].abs().to_numpy().max()
    reach = max(others, 0.01, 0.02, 0.005, abs((1 - 0.97) - 0.05))  # the margins and the post's differences too
    assert shares.get_xscale() == "symlog"
    assert shares.xaxis.get_transform().linthresh == pytest.approx(reach)
    assert "symmetric log scale beyond ±" in " ".join(shares.get_xlabel().split())
