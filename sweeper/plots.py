"""A study's plots as PNG files: learning curves with bands over seeds, accuracy, the claims' forest plot,
Optuna's importances."""

from __future__ import annotations

import functools
import math
import re
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from storage.contract.errors import BadInput, optuna_experimental
from storage.contract.spec import SEED, label
from sweeper import stats
from sweeper.claims import DIVERGE_RATE
from sweeper.evidence import ALONE, at_end

# Parameters whose values span orders of magnitude: their axis is logarithmic.
LOG_PARAMS = ("l1", "l2", "lr", "lr_end", "eps")
DPI = 110
CURVES = (("train_error", "training error (during the epoch)"), ("valid_error", "validation error"))
# What a study name must be to start a file name: toml_spec.NAME, with room for the suffixes sweeper adds.
FILE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def write(handle, trials: pd.DataFrame, epochs: pd.DataFrame, measured: pd.DataFrame, out: Path,
          claims: pd.DataFrame | None = None) -> list[Path]:
    """Write every plot of the study into folder `out`; the paths written, in reading order.

    Grid studies (configurations, maybe with seeds): the claims' forest plot (when `claims`, the frame of
    sweeper.claims.claims(), has a measured effect), learning curves and accuracy per configuration.
    Sampled studies: learning curves of the best trials, Optuna's parameter importances and slices.
    """
    spec = handle.spec
    png = functools.partial(png_path, out, spec.name)  # BadInput before anything is drawn for a bad name
    png("curves")
    written = []
    if spec.is_grid:
        if measured.empty:
            return written
        if claims is not None and claims["effect"].notna().any():
            written.append(_save(forest(spec, claims), png("forest")))
        written.append(_save(curves(spec, epochs, measured), png("curves")))
        written.append(_save(loss(spec, epochs, measured), png("loss")))
        written.append(_save(accuracy(spec, measured), png("accuracy")))
        if spec.dataset == "xor":  # a toy problem is solved or not: how often, per configuration
            written.append(_save(success(spec, measured), png("success")))
        return written
    best = best_trials(trials)
    if not best.empty:
        named = best.assign(config=[label({k: r[k] for k in spec.space}) for _, r in best.iterrows()],
                            diverged=False)
        written.append(_save(curves(spec, epochs, named, top=True), png("curves")))
    for name, figure in _optuna_plots(handle):
        written.append(_save(figure, png(name)))
    return written


def png_path(out: Path, study: str, kind: str) -> Path:
    """`out / "STUDY.KIND.png"`; BadInput when the study's name (as the database holds it, whoever wrote it
    there) is not a plain name of letters, digits, '_', '.' and '-' that starts with a letter or digit:
    one like '../x' would write outside `out`. Refused, not cleaned: a cleaned name could be another
    study's."""
    if not isinstance(study, str) or not FILE_STEM.fullmatch(study):
        raise BadInput(f"study name {study!r} in the database cannot name a file (sweeper writes only letters, "
                       "digits, '_', '.' and '-', the first a letter or digit): the database was edited; restore "
                       "the name or recreate the study from its spec")
    return Path(out) / f"{study}.{kind}.png"


def curves(spec, epochs: pd.DataFrame, measured: pd.DataFrame, top: bool = False) -> Figure:
    """Training and validation error per epoch: per configuration the mean over seeds and its 95 % t band."""
    fig = Figure(figsize=(12, 4.8), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, 2)
    n_diverged = int(measured["diverged"].sum())
    measured, rows, order = _by_config(epochs, measured)
    styles = _styles(len(order))
    bands = {(column, config): _band(rows[rows["config"] == config], column)
             for column, _ in CURVES for config in order}
    means = pd.concat([b["mean"] for b in bands.values() if not b.empty] or [pd.Series([0.5])])
    floor = max(float(means.min()), 1e-4)
    log = float(means.max()) / floor > 10  # spans more than a decade: a log axis shows the small errors
    for ax, (column, title) in zip(axes, CURVES):
        zoom = column == "valid_error"  # its own linear axis, zoomed on where the runs end up
        for (color, dashes), config in zip(styles, order):
            band = bands[(column, config)]
            if band.empty:
                continue
            mean = band["mean"].clip(lower=floor / 2) if log and not zoom else band["mean"]  # zero: the bottom edge
            ax.plot(band.index, mean, color=color, ls=dashes, label=config, lw=1.6)
            ax.fill_between(band.index, band["low"].clip(lower=floor / 2 if log and not zoom else 0.0),
                            band["high"].clip(upper=1.0), color=color, alpha=0.2, lw=0)
        ax.set_title(title + (" (zoomed on the later epochs)" if zoom else ""))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if zoom:
            ax.set_ylim(*_zoom([bands[(column, c)] for c in order]))
        elif log:
            ax.set_yscale("log")
            ax.set_ylim(floor / 2, min(1.0, float(means.max()) * 2))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("error (share of examples misclassified" + (", log scale)" if log else ")"))
    seeds = _seeds(measured)
    what = (f"the {len(order)} best trials" if top else f"mean and 95 % t band over {seeds}"
            + (f"; {n_diverged} diverged run(s) left out" if n_diverged else ""))
    _title(fig, f"{spec.heading}: learning curves ({what})")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize="small", title="configuration")
    return fig


def _by_config(epochs: pd.DataFrame, measured: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(the trials that did not diverge, their epoch rows with a `config` column, the configurations in
    order): as in the tables, a diverged seed has no figures."""
    measured = measured[~measured["diverged"]]
    trial_config = measured.set_index("trial")["config"]
    rows = epochs[epochs["trial"].isin(trial_config.index)].copy()
    rows["config"] = rows["trial"].map(trial_config)
    return measured, rows, list(dict.fromkeys(measured["config"]))


def _zoom(bands: list[pd.DataFrame]) -> tuple[float, float]:
    """Limits that show the bands after their first tenth of epochs (where claims about the end are read);
    the first epochs may lie above."""
    late = [b[b.index >= b.index.min() + (b.index.max() - b.index.min()) / 10] for b in bands if not b.empty]
    if not late:
        return 0.0, 1.0
    low = min(float(b["low"].min()) for b in late)
    high = max(float(b["high"].max()) for b in late)
    pad = 0.08 * (high - low or high or 1.0)
    return max(0.0, low - pad), min(1.0, high + pad)


def loss(spec, epochs: pd.DataFrame, measured: pd.DataFrame) -> Figure:
    """The training loss per epoch on a log axis (the claims about how fast it falls, or whether it
    oscillates, read this curve): per configuration the mean over seeds and its 95 % t band."""
    fig = Figure(figsize=(10, 5.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    measured, rows, order = _by_config(epochs, measured)
    for (color, dashes), config in zip(_styles(len(order)), order):
        band = _band(rows[rows["config"] == config], "train_loss", share=False)
        band = band[band["mean"] > 0]
        if band.empty:
            continue
        ax.plot(band.index, band["mean"], color=color, ls=dashes, label=config, lw=1.6)
        ax.fill_between(band.index, band["low"].clip(lower=band["mean"].min() / 10), band["high"], color=color,
                        alpha=0.2, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("epoch" + (f" ({_per_epoch(measured)} steps each; the last may be shorter)" if spec.steps else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("training loss (mean over the epoch's minibatches, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize="small", title="configuration")
    _title(fig, f"{spec.heading}: training loss (mean and 95 % t band over {_seeds(measured)})")
    return fig


# Metrics in one unit share a panel of the forest plot: their differences lie on one scale.
UNITS = {"share of examples": ("valid_accuracy", "test_accuracy", "valid_error", "test_error", "best_valid_error",
                               "train_error", "gap", "clean_gap", "confident_precision"),
         "training loss": ("train_loss", "mean_train_loss"), "epochs": ("epochs_run", "epochs_to"),
         "share of epochs": ("loss_rises",), "share of weights": ("near_zero",), "share of seeds": (None,)}
VERDICT_COLORS = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:orange",
                  "not counted": "tab:gray"}
EQUIVALENCE = ("similar", "near")  # a margin on both sides; not_lower / not_higher have it on one
ROW_INCHES, PANEL_INCHES = 0.55, 1.0  # a row of two label lines; a panel's ticks and axis label
EFFECT, MARGIN, POST = ("effect: mean over seeds, 95 % interval (colour: the verdict)",
                        "the claim's margin (or rate)", "the post's own difference")


def forest(spec, frame: pd.DataFrame) -> Figure:
    """The claims as a forest plot: per claim a row with its effect (x - y, or x - the claim's value) and
    95 % interval, the claim's margin, the post's own difference (an open diamond) and the verdict at the
    right; one panel per unit (shares, losses, epochs), rows in the order of the claims. Claims with no
    measured effect (untestable, not reached) are left out and named at the bottom. `frame`: the rows of
    sweeper.claims.claims(), indexed by the claim's position in spec.claims; at least one with an effect."""
    drawn = frame[frame["effect"].notna()]
    panels = {}
    for number in drawn.index:
        panels.setdefault(_unit(spec.claims[number]["metric"]), []).append(number)
    heights = [ROW_INCHES * len(rows) + PANEL_INCHES for rows in panels.values()]
    fig = Figure(figsize=(12, sum(heights) + 1.6), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw=dict(height_ratios=heights))[:, 0]
    for ax, (unit, numbers) in zip(axes, panels.items()):
        _forest_panel(ax, spec, drawn.loc[numbers], unit)
    _title(fig, f"{spec.heading}: each claim's effect with its 95 % interval over seeds, and its verdict")
    shown = dict.fromkeys(label for ax in axes for label in ax.get_legend_handles_labels()[1])
    keys = {EFFECT: Line2D([], [], color="0.3", marker="o", lw=2.2), MARGIN: Line2D([], [], color="0.25", ls="--"),
            POST: Line2D([], [], color="black", marker="D", mfc="none", ls="none")}
    axes[0].legend([keys[label] for label in shown], list(shown), loc="lower center", bbox_to_anchor=(0.5, 1.0),
                   ncols=min(len(shown), 2), fontsize="small", frameon=False)
    left = [f"{n + 1} ({r['verdict'] if r['verdict'] == 'untestable' else r['note'] or 'no figure'})"
            for n, r in frame[frame["effect"].isna()].iterrows()]
    if left:
        fig.supxlabel(textwrap.fill("Left out, no measured effect: claim " + "; ".join(left), 150),
                      fontsize="small", ha="left", x=0.01)
    return fig


def _forest_panel(ax, spec, rows: pd.DataFrame, unit: str) -> None:
    """One unit's rows of the forest plot on `ax`, top to bottom."""
    ys = np.arange(len(rows), dtype=float)
    colors = np.array([VERDICT_COLORS[_shown_verdict(r)] for _, r in rows.iterrows()])
    ax.axvline(0, color="black", lw=0.8)
    spans = rows["effect_low"].notna().to_numpy() & rows["effect_high"].notna().to_numpy()
    ax.hlines(ys[spans], rows["effect_low"][spans], rows["effect_high"][spans], colors=colors[spans], lw=2.2,
              label=EFFECT)
    ax.scatter(rows["effect"], ys, c=colors, s=40, zorder=3, gid="effect")
    bounds, posts = [], []
    for y, (number, r) in zip(ys, rows.iterrows()):
        claim = spec.claims[number]
        for x in _bounds(claim):
            bounds.append((x, y))
        if claim["kind"] in EQUIVALENCE:
            ax.fill_betweenx([y - 0.4, y + 0.4], -_margin(claim), _margin(claim), color="0.88", lw=0, zorder=0)
        post = r["post_effect"]
        if math.isfinite(post):
            posts.append((post, y))
        shown = _shown_verdict(r)
        ax.text(1.01, y, r["verdict"] + (", not counted" if shown == "not counted" else ""), va="center",
                transform=ax.get_yaxis_transform(), fontsize="small", color=VERDICT_COLORS[shown])
    if bounds:
        xs, at = np.array(bounds).T
        ax.vlines(xs, at - 0.4, at + 0.4, colors="0.25", linestyles="--", lw=1.2, label=MARGIN)
    if posts:
        xs, at = np.array(posts).T
        ax.scatter(xs, at, marker="D", s=55, facecolors="none", edgecolors="black", lw=1.3, zorder=4,
                   label=POST)
    ax.set_yticks(ys, [_row_label(spec, number, r) for number, r in rows.iterrows()], fontsize="small")
    ax.set_ylim(len(rows) - 0.5, -0.5)
    label = _forest_axis(spec, rows, unit)
    if unit == "share of seeds":
        ax.set_xlim(-0.03, 1.03)
    elif (linear := _linear_range(rows, [x for x, _ in bounds + posts])) is not None:
        ax.set_xscale("symlog", linthresh=linear)
        label += f"; symmetric log scale beyond \u00b1{linear:.3g}, where a far wider interval would flatten the others"
    ax.set_xlabel(textwrap.fill(label, 120), fontsize="small")
    ax.grid(True, axis="x", alpha=0.3)


OUTLYING = 100  # a row reaching this many times further from 0 than the panel's typical row makes it symlog


def _linear_range(rows: pd.DataFrame, marks: list[float]) -> float | None:
    """Where a forest panel's axis stays linear when one row (a seed whose loss blew up) reaches OUTLYING
    times further from 0 than the typical row: the furthest reach of the rows within that bound (their
    margins and the post's differences included); None when no row outlies."""
    ends = rows[["effect", "effect_low", "effect_high"]].abs().max(axis=1, skipna=True).to_numpy(dtype=float)
    reach = np.concatenate([ends[np.isfinite(ends)], np.abs([m for m in marks if math.isfinite(m)])])
    typical = float(np.median(reach)) if reach.size else 0.0
    if typical <= 0 or reach.max() <= OUTLYING * typical:
        return None
    return float(reach[reach <= OUTLYING * typical].max())


def _unit(metric: str | None) -> str:
    return next((unit for unit, metrics in UNITS.items() if metric in metrics), metric)


def _margin(claim: dict) -> float:
    return claim["tolerance"] if claim["kind"] == "near" else claim["margin"]


def _bounds(claim: dict) -> list[float]:
    """Where the claim's margin (or a 'diverges' claim's rate) lies on its row's axis."""
    kind = claim["kind"]
    if kind == "diverges":
        return [claim.get("rate", DIVERGE_RATE)]
    if kind in EQUIVALENCE:
        return [-_margin(claim), _margin(claim)]
    if kind in ("not_lower", "not_higher"):
        return [-claim["margin"] if kind == "not_lower" else claim["margin"]]
    return []


def _shown_verdict(row) -> str:
    """The row's verdict, or 'not counted' for the posts' claims (and our derived ones) kept out of the headline."""
    return "not counted" if row["origin"] in ("post", "derived") and not row["counted"] else row["verdict"]


def _row_label(spec, number: int, row) -> str:
    """Two lines: the claim's number and text (shortened; the claims table has it whole), what is compared."""
    claim = spec.claims[number]
    if claim["kind"] == "diverges":
        what = f"share of {row['x']}'s seeds that diverged"
    else:
        what = f"{row['metric']}: {row['x']} − " + (row["y"] if claim["kind"] not in ALONE else f"{claim['value']:g}")
    return (f"{number + 1}. {textwrap.shorten(row['claim'], 60, placeholder=' …')}\n"
            f"{textwrap.shorten(what, 60, placeholder=' …')}")


def _forest_axis(spec, rows: pd.DataFrame, unit: str) -> str:
    """The panel's axis label: its metrics, their unit and the sign of the effect."""
    kinds = {spec.claims[n]["kind"] for n in rows.index}
    if unit == "share of seeds":
        return "share of x's seeds that diverged (dashed: the claim's rate, which the share should exceed)"
    metrics = ", ".join(dict.fromkeys(spec.claims[n]["metric"] for n in rows.index))
    signs = (["x − y, the claim's first configuration minus its second"] if kinds - set(ALONE) else []) + \
        (["x − the claim's value (claims of a threshold)"] if kinds & set(ALONE) else [])
    return f"{metrics} ({unit}), effect: " + "; ".join(signs)


SOLVED = 0.9  # a toy run that classifies this share of the test points has found the XOR-like boundary


def success(spec, measured: pd.DataFrame) -> Figure:
    """Per configuration, the share of seeds whose run solved the toy problem (test accuracy >= SOLVED;
    a diverged seed did not) with its 95 % Clopper-Pearson interval."""
    order = list(dict.fromkeys([c["label"] for c in spec.configs()] + list(measured["config"])))
    fig = Figure(figsize=(10, max(4.0, 0.32 * len(order) + 1.5)), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for i, config in enumerate(order):
        runs = measured[measured["config"] == config]
        k, n = int((runs["test_accuracy"] >= SOLVED).sum()), len(runs)
        if not n:
            continue
        low, high = stats.share_interval(k, n)
        ax.errorbar([k / n], [i], xerr=[[k / n - low], [high - k / n]], fmt="o", color="tab:blue", capsize=4)
        ax.text(1.02, i, f"{k}/{n}", va="center", fontsize="small", transform=ax.get_yaxis_transform())
    ax.set_yticks(range(len(order)), order)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of seeds that solved it (test accuracy >= {SOLVED:g}), 95 % Clopper-Pearson interval")
    ax.grid(True, axis="x", alpha=0.3)
    _title(fig, f"{spec.heading}: how often each configuration solves the problem")
    return fig


def _per_epoch(measured: pd.DataFrame) -> str:
    if "steps_per_epoch" not in measured or measured["steps_per_epoch"].isna().all():
        return "?"
    return f"{int(measured['steps_per_epoch'].max()):,}"


def accuracy(spec, measured: pd.DataFrame) -> Figure:
    """Validation and test accuracy per configuration: mean with its 95 % t interval over seeds, and the
    posts' figures on top. One varied numeric parameter becomes the x axis (log for penalties and rates)."""
    fig = Figure(figsize=(max(8.0, 0.9 * measured["config"].nunique() + 4), 5.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    order = list(dict.fromkeys([c["label"] for c in spec.configs()] + list(measured["config"])))
    position = _positions(ax, spec, order)
    for sign, (metric, color, marker, post_marker, post_color) in zip(
            (-1, 1), (("valid_accuracy", "tab:blue", "o", "x", "black"),
                      ("test_accuracy", "tab:orange", "s", "+", "red"))):
        x, mean, low, high = [], [], [], []
        for config in order:
            est = stats.mean_share(measured.loc[(measured["config"] == config) & ~measured["diverged"], metric])
            if est.n:
                x.append(position(config, sign))
                mean.append(est.mean)
                low.append(est.low if math.isfinite(est.low) else est.mean)
                high.append(est.high if math.isfinite(est.high) else est.mean)
        if x:
            mean, low, high = np.array(mean), np.array(low), np.array(high)
            ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt=marker, color=color, capsize=4, ms=5,
                        label=f"ours: {metric.replace('_', ' ')} (mean, 95 % interval)")
        posts = [r for r in spec.references if metric in r and r["config"] in order and at_end(r)]
        if posts:
            ax.scatter([position(r["config"], sign) for r in posts], [r[metric] for r in posts], marker=post_marker,
                       s=70, color=post_color, zorder=5, label=f"the post: {metric.replace('_', ' ')}")
    diverged = [f"{c}: {int(d.sum())} of {len(d)} seeds" for c in order
                for d in [measured.loc[measured["config"] == c, "diverged"]] if d.any()]
    if diverged:
        ax.text(0.01, 0.01, "diverged (left out): " + "; ".join(diverged), transform=ax.transAxes,
                fontsize="small", color="tab:red", va="bottom")
    ax.set_ylabel("accuracy (share of examples right)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    _title(fig, f"{spec.heading}: accuracy per configuration over {_seeds(measured)}")
    return fig


def isolation(spec, tuning: list[tuple[str, pd.DataFrame]], key: str, post: list, fixed: pd.DataFrame,
              tuned: pd.DataFrame) -> Figure:
    """The isolation plot of a study tuned per configuration (sweeper.isolation). Left: each configuration's
    search, validation error against the tuned parameter `key` (the post's value of each configuration,
    `post`, dashed: one grey line where all share it, else one in each configuration's colour; each best
    ringed).
    Right: each configuration's validation error over seeds (mean, 95 % t interval) at the post's setting
    (the study `fixed`'s measures) and at its own best (`tuned`'s): the comparison the post made at one
    setting, and the one each at its best."""
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    search, compare = fig.subplots(1, 2, width_ratios=[1.1, 1])
    styles = _styles(len(tuning))
    for (arm, trials), (colour, _) in zip(tuning, styles):
        done = trials[trials["state"] == "COMPLETE"].sort_values(key)
        search.plot(done[key], done["valid_error"], "o-", color=colour, lw=1, ms=4, alpha=0.85, label=arm)
        if not done.empty:
            best = done.sort_values(["valid_error", "trial"]).iloc[0]
            search.scatter([best[key]], [best["valid_error"]], s=140, facecolors="none", edgecolors=colour, lw=1.8)
    numbers = [p for p in post if isinstance(p, (int, float)) and not isinstance(p, bool)]
    if numbers and len(numbers) == len(post) and len(set(numbers)) == 1:
        search.axvline(numbers[0], color="0.3", ls="--", lw=1.2, label=f"the post's {key} = {numbers[0]:g}")
    elif numbers:
        for value, (colour, _) in zip(post, styles):
            if value in numbers:
                search.axvline(value, color=colour, ls="--", lw=1.2, alpha=0.8)
        search.plot([], [], color="0.3", ls="--", lw=1.2, label=f"the post's {key} of each (its colour)")
    if key in LOG_PARAMS:
        search.set_xscale("log")
    search.set_yscale("log")
    search.set(xlabel=key, ylabel="validation error (one seed; log)",
               title=f"each configuration's search over {key} (ringed: its best)")
    search.legend(fontsize="small")
    arms = [arm for arm, _ in tuning]
    for offset, frame, colour, what in ((-0.15, fixed, "0.45", f"at the post's {key}"),
                                        (0.15, tuned, "tab:blue", "each at its best")):
        rows = [stats.mean_share(frame.loc[frame["config"] == arm, "valid_error"]) for arm in arms]
        xs = np.arange(len(arms)) + offset
        means = np.array([r.mean for r in rows])
        low = np.array([r.low if math.isfinite(r.low) else r.mean for r in rows])
        high = np.array([r.high if math.isfinite(r.high) else r.mean for r in rows])
        compare.errorbar(xs, means, yerr=[means - low, high - means], fmt="o", color=colour, capsize=4, label=what)
    compare.set_xticks(range(len(arms)), arms, rotation=20, ha="right")
    compare.set_yscale("log")
    compare.set(ylabel="validation error (mean over seeds, 95 % t interval; log)",
                title="one setting for all against each at its best")
    compare.legend(fontsize="small")
    _title(fig, f"{spec.heading}: isolation of the compared configurations from {key}")
    return fig


def _title(fig, text: str) -> None:
    """A title wrapped to the figure's width (a long study title would be cut at the edges)."""
    chars = int(fig.get_figwidth() * 11)  # about 11 characters of the default title font per inch
    fig.suptitle(textwrap.fill(text, chars))


def _band(rows: pd.DataFrame, column: str, share: bool = True) -> pd.DataFrame:
    """Per epoch: mean and 95 % t interval of `column` over the trials (seeds) that reached it (a share's
    interval cut to [0, 1])."""
    out = {}
    for epoch, values in rows.groupby("epoch")[column]:
        est = (stats.mean_share if share else stats.mean_interval)(values)
        if est.n:
            low, high = (est.low, est.high) if math.isfinite(est.low) else (est.mean, est.mean)
            out[epoch] = dict(mean=est.mean, low=low, high=high)
    return pd.DataFrame.from_dict(out, orient="index", columns=["mean", "low", "high"])


def _numeric_axis(spec) -> tuple[str, dict] | None:
    """(parameter, {config: value}) when the configurations differ in one numeric parameter only."""
    varied = spec.varied
    if len(varied) != 1:
        return None
    name = varied[0]
    values = {c["label"]: c["params"][name] for c in spec.configs()}
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
        return None
    return name, {k: float(v) for k, v in values.items()}


def _set_numeric_axis(ax, name: str, values: list[float]) -> None:
    if name in LOG_PARAMS and max(values) > 0:
        positive = [v for v in values if v > 0]
        if len(positive) < len(values):  # a zero (no penalty) among them: linear around 0, log beyond
            ax.set_xscale("symlog", linthresh=min(positive), linscale=0.5)
            ax.set_xlabel(f"{name} (log scale; linear between 0 and {min(positive):g})")
        else:
            ax.set_xscale("log")
            ax.set_xlabel(f"{name} (log scale)")
    else:
        ax.set_xlabel(name)
    ax.set_xticks(sorted(set(values)), [f"{v:g}" for v in sorted(set(values))], rotation=25, ha="right")
    ax.minorticks_off()


def _positions(ax, spec, order: list[str]):
    """Set up the x axis; a function (config, side) -> x, the two series side by side around each value."""
    axis = _numeric_axis(spec)
    if axis is None:
        ax.set_xticks(range(len(order)), order, rotation=25, ha="right")
        ax.set_xlabel("configuration")
        return lambda config, side: order.index(config) + 0.12 * side
    name, values = axis
    _set_numeric_axis(ax, name, list(values.values()))
    if ax.get_xscale() == "linear":
        spread = 0.01 * ((max(values.values()) - min(values.values())) or 1.0)
        return lambda config, side: values[config] + spread * side
    # log or symlog: a share of a decade (0 stays where it is, its two points overlap)
    return lambda config, side: values[config] * 10 ** (0.04 * side)


def _seeds(measured: pd.DataFrame) -> str:
    n = measured.groupby("config")[SEED].nunique().max() if not measured.empty else 0
    return f"{n} seed{'s' if n != 1 else ''}"


def _styles(n: int) -> list[tuple]:
    """(colour, line style) for n lines: tab10's colours, solid, then dashed, then dotted."""
    cmap = matplotlib.colormaps["tab10"]
    return [(cmap(i % 10), ("-", "--", ":", "-.")[(i // 10) % 4]) for i in range(n)]


def best_trials(trials: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The `n` complete trials of lowest validation error (what a sampled study's plots and report show)."""
    done = trials[trials["state"] == "COMPLETE"]
    return done.sort_values("valid_error").head(n)


def _optuna_plots(handle):
    """Optuna's own matplotlib plots of a sampled study: parameter importances and slices (when it
    has enough complete trials to compute them; else none)."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    study = handle.study
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if len(complete) < 2 or not any(len({repr(t.params.get(p)) for t in complete}) > 1 for p in handle.spec.space):
        return
    with optuna_experimental():
        for name, draw in (("importance", ovm.plot_param_importances), ("slice", ovm.plot_slice)):
            result = draw(study)
            ax = result.flat[0] if isinstance(result, np.ndarray) else result
            fig = ax.get_figure()
            fig.suptitle(f"{handle.spec.heading}: "
                         + ("parameter importances (fANOVA, Optuna)" if name == "importance"
                            else f"{handle.spec.metric} against each parameter (Optuna's slice plot)"))
            yield name, fig


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    if hasattr(fig, "number"):  # a pyplot figure (Optuna's): release it
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path
