"""Per-trial measures of a study, and per-configuration statistics: means and 95 % intervals over seeds, beside
the posts' figures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from storage.contract.errors import BadInput
from storage.contract.spec import SEED, label
from sweeper import stats
from sweeper.evidence import at_end, same

# The figures `config_stats` gives per configuration, each as _mean, _std, _low, _high.
STATS_METRICS = ("valid_accuracy", "test_accuracy", "train_loss", "epochs_run")
MEASURES = ("valid_accuracy", "test_accuracy", "valid_error", "test_error", "train_loss", "train_error", "gap",
            "best_valid_error", "epochs_run", "mean_train_loss", "loss_rises", "confident_precision", "epochs_to",
            "near_zero", "clean_gap", "last_valid_error")
PER_EPOCH = ("train_loss", "train_error", "valid_error")
SHARES = ("valid_accuracy", "test_accuracy")  # their intervals are cut to [0, 1]


def measures(handle, trials: pd.DataFrame, epochs: pd.DataFrame, epoch: int | None = None,
             step: int | None = None, below: float | None = None) -> pd.DataFrame:
    """One row per finished trial (COMPLETE, or FAIL by divergence): trial, config, seed, the varied
    parameters, diverged, then MEASURES (a diverged trial has none). With `epoch`, the per-epoch
    measures are those of that epoch (NaN for a trial that stopped before it); with `step`, those of
    the first epoch that ends at or after that optimizer step. `below`: the validation error that
    `epochs_to` counts to (NaN without it)."""
    spec = handle.spec
    done = trials[(trials["state"] == "COMPLETE")
                  | ((trials["state"] == "FAIL") & trials["reason"].fillna("").str.startswith("diverged"))]
    out = done[["trial", *spec.varied, SEED]].copy()
    configs = spec.configs() if spec.is_grid else []
    out.insert(1, "config", [config_of(configs, row) for row in done[spec.varied].to_dict("records")])
    out["diverged"] = (done["state"] == "FAIL").to_numpy()
    rows = epochs[epochs["trial"].isin(out["trial"])].sort_values(["trial", "epoch"])
    if step is not None:  # each trial's epoch that holds the step (its length per epoch is in its outcome)
        per = done.set_index("trial")["steps_per_epoch"].astype("float64")
        wanted = np.ceil(step / per).reindex(rows["trial"]).to_numpy()
        last = rows[rows["epoch"].to_numpy() == wanted].set_index("trial")
    elif epoch is None:
        last = rows.groupby("trial").last()
    else:
        last = rows[rows["epoch"] == epoch].set_index("trial")
    per_epoch = last.reindex(out["trial"])[list(PER_EPOCH)].set_axis(out.index)
    out["valid_error"] = done["valid_error"] if epoch is None and step is None else per_epoch["valid_error"]
    out["test_error"] = done["test_error"]
    out["valid_accuracy"] = 1.0 - out["valid_error"]
    out["test_accuracy"] = 1.0 - out["test_error"]
    out["train_loss"], out["train_error"] = per_epoch["train_loss"], per_epoch["train_error"]
    out["gap"] = per_epoch["valid_error"] - per_epoch["train_error"]
    by_trial = rows.groupby("trial")
    out["best_valid_error"] = by_trial["valid_error"].min().reindex(out["trial"]).to_numpy()
    out["last_valid_error"] = by_trial["valid_error"].last().reindex(out["trial"]).to_numpy()
    patience = done["patience"] if "patience" in done else pd.Series(spec.fixed.get("patience", 0), index=done.index)
    out["kept_best"] = (patience.fillna(0).astype("float64") > 0).to_numpy()  # its figures are its best epoch's
    out["epochs_run"] = done["epochs_run"].astype("float64")
    for column in ("steps_per_epoch", "valid_images", "test_images"):  # the sizes the figures rest on
        out[column] = done[column].astype("float64").to_numpy()
    out["mean_train_loss"] = by_trial["train_loss"].mean().reindex(out["trial"]).to_numpy()
    change = by_trial["train_loss"].diff()  # NaN at each trial's first epoch
    rises = change.gt(0).astype("float64").where(change.notna())
    out["loss_rises"] = rises.groupby(rows["trial"]).mean().reindex(out["trial"]).to_numpy()
    out["confident_precision"] = done["confident_precision"].astype("float64").to_numpy()
    out["near_zero"] = done["near_zero"].astype("float64").to_numpy()
    out["clean_gap"] = (done["valid_error"] - done["train_error_clean"]).astype("float64").to_numpy()
    out["epochs_to"] = math.nan if below is None else _epochs_to(rows, out["trial"], out["epochs_run"], below)
    out.loc[out["diverged"], list(MEASURES)] = math.nan
    return out.reset_index(drop=True)


def _epochs_to(rows: pd.DataFrame, trials: pd.Series, epochs_run: pd.Series, below: float) -> np.ndarray:
    """Per trial, the first epoch whose validation error is below `below`; its epochs + 1 when none is."""
    under = rows[rows["valid_error"] < below].groupby("trial")["epoch"].min().reindex(trials).to_numpy()
    return np.where(np.isnan(under), epochs_run.to_numpy() + 1, under)


def config_of(configs: list[dict], params: dict) -> str:
    """The label of the configuration (of `configs`, Spec.configs()) a trial's parameters belong to."""
    for config in configs:
        if all(same(params.get(k), v) for k, v in config["params"].items()):
            return config["label"]
    return label(params)


def config_stats(handle, measured: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """One row per configuration (or per value of the `by` parameters): n, diverged, and for each of
    STATS_METRICS its mean, standard deviation and 95 % t interval over seeds; without `by`, the
    posts' figures for the configuration and whether they lie inside our interval."""
    spec = handle.spec
    keys = list(by) if by else ["config"]
    for key in by or ():
        if key not in spec.varied and key != SEED:
            raise BadInput(f"--by {key}: the study does not vary it: use " + (", ".join(spec.varied) or "nothing"))
    order = _order(spec, measured, keys)
    rows = []
    for values, group in measured.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, values if isinstance(values, tuple) else (values,)))
        if not by:
            row.update({k: group[k].iloc[0] for k in spec.varied})
        row["n"] = int((~group["diverged"]).sum())
        row["diverged"] = int(group["diverged"].sum())
        for metric in STATS_METRICS:
            est = (stats.mean_share if metric in SHARES else stats.mean_interval)(group[metric])
            row.update({f"{metric}_mean": est.mean, f"{metric}_std": est.std, f"{metric}_low": est.low,
                        f"{metric}_high": est.high})
        for metric in SHARES:  # where one more run would fall: what a post's single run is held against
            row[f"{metric}_pred_low"], row[f"{metric}_pred_high"] = stats.prediction_interval(group[metric])
        rows.append(row)
    columns = [*keys, *([k for k in spec.varied if k not in keys] if not by else []), "n", "diverged",
               *(f"{m}_{s}" for m in STATS_METRICS for s in ("mean", "std", "low", "high")),
               *(f"{m}_pred_{s}" for m in SHARES for s in ("low", "high"))]
    frame = pd.DataFrame(rows, columns=columns)
    if order is not None:
        frame = frame.set_index("config").reindex([c for c in order if c in set(frame["config"])]).reset_index()
    if not by:
        frame = frame.join(_posts(spec, frame))
    return frame.astype({"n": "int64", "diverged": "int64"})


def references(handle, measured: pd.DataFrame, at=None) -> pd.DataFrame:
    """One row per [[reference]] of the study: the post's figure beside our mean and interval, and whether
    it lies in the 95 % prediction interval of one run of ours (a post's figure is one run). A figure
    from the middle of the post's run (its `step` or `epoch`) is set beside ours at the same point:
    `at(epoch=, step=)` gives the measures there (without it, such rows have none of ours)."""
    final = config_stats(handle, measured).set_index("config")
    rows = []
    for ref in handle.spec.references:
        point = dict(epoch=ref.get("epoch"), step=ref.get("step"))
        if at_end(ref):
            ours = final
        else:
            ours = config_stats(handle, at(**point)).set_index("config") if at is not None else final.iloc[:0]
            ours = ours.assign(test_accuracy_mean=math.nan, test_accuracy_low=math.nan, test_accuracy_high=math.nan,
                               test_accuracy_pred_low=math.nan, test_accuracy_pred_high=math.nan)
        row = dict(section=ref["section"], config=ref["config"], at=ref["at"], **point, outcome=ref["outcome"],
                   note=ref["note"])
        for metric in ("valid_accuracy", "test_accuracy"):
            post = ref.get(metric, math.nan)
            low, high, pred_low, pred_high = (ours.at[ref["config"], f"{metric}_{s}"] if ref["config"] in ours.index
                                              else math.nan for s in ("low", "high", "pred_low", "pred_high"))
            row.update({f"post_{metric}": post,
                        f"{metric}_mean": ours[f"{metric}_mean"].get(ref["config"], math.nan),
                        f"{metric}_low": low, f"{metric}_high": high,
                        f"{metric}_inside": _inside(post, pred_low, pred_high)})
        rows.append(row)
    columns = ["section", "config", "at", "epoch", "step", *(f"{p}{m}{s}" for m in ("valid_accuracy", "test_accuracy")
                                          for p, s in (("post_", ""), ("", "_mean"), ("", "_low"), ("", "_high"),
                                                       ("", "_inside"))), "outcome", "note"]
    return pd.DataFrame(rows, columns=columns).astype({"valid_accuracy_inside": "boolean", "epoch": "Int64",
                                                      "step": "Int64", "test_accuracy_inside": "boolean"})


def _posts(spec, frame: pd.DataFrame) -> pd.DataFrame:
    """The posts' figures per configuration row of `frame`: mean of their runs, how many, inside ours."""
    out = pd.DataFrame(index=frame.index, columns=["post_runs", "post_valid_accuracy", "post_valid_inside",
                                                   "post_test_accuracy", "post_test_inside", "post_outcome"])
    for i, config in frame["config"].items():
        refs = [r for r in spec.references if r["config"] == config]
        ends = [r for r in refs if at_end(r)]
        out.at[i, "post_runs"] = len([r for r in ends if "valid_accuracy" in r or "test_accuracy" in r])
        for metric, short in (("valid_accuracy", "valid"), ("test_accuracy", "test")):
            values = [r[metric] for r in ends if metric in r]
            low, high = frame.at[i, f"{metric}_pred_low"], frame.at[i, f"{metric}_pred_high"]
            out.at[i, f"post_{metric}"] = float(np.mean(values)) if values else math.nan
            out.at[i, f"post_{short}_inside"] = (all(_inside(v, low, high) for v in values) if values
                                                 and math.isfinite(low) else pd.NA)
        out.at[i, "post_outcome"] = "; ".join(r["outcome"] or r["note"] for r in refs if r["outcome"] or r["note"])
    return out.astype({"post_runs": "int64", "post_valid_accuracy": "float64", "post_test_accuracy": "float64",
                       "post_valid_inside": "boolean", "post_test_inside": "boolean", "post_outcome": "object"})


def _order(spec, measured: pd.DataFrame, keys: list[str]) -> list[str] | None:
    if keys != ["config"]:
        return None
    known = [c["label"] for c in spec.configs()] if spec.is_grid else []
    return known + [c for c in measured["config"].unique() if c not in known]


def _inside(value, low, high) -> bool | None:
    if value is None or not math.isfinite(value) or not math.isfinite(low):
        return None
    return bool(low <= value <= high)

