"""A verdict on each of a study's claims: the measured effect with its 95 % interval and a p-value over seeds.

The rule (docs/reproduce.md): supported when the interval lies wholly on the side the claim says,
contradicted when it lies wholly on the other side, inconclusive otherwise (fewer than 2 seeds
included). 'similar' claims are equivalence tests: supported when the two one-sided tests put the
difference inside (-margin, margin) at p < 0.05, contradicted when the interval lies wholly outside.
'diverges': supported when every seed diverged, contradicted when none did (inconclusive when none did
in a run shorter than the post's).
"""

from __future__ import annotations

import math

import pandas as pd

from sweeper import stats
from sweeper.summary import measures

COLUMNS = ("section", "claim", "kind", "metric", "x", "y", "target", "n", "x_mean", "y_mean", "effect",
           "effect_low", "effect_high", "p_value", "verdict", "note")
SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"


def claims(handle, trials: pd.DataFrame, epochs: pd.DataFrame,
           measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per [[claim]] of the study (COLUMNS), in the order of the spec. `measured`: the study's
    measures (sweeper.summary.measures) when the caller has them already."""
    by_epoch = {} if measured is None else {None: measured}
    rows = []
    for claim in handle.spec.claims:
        epoch = claim.get("epoch")
        if epoch not in by_epoch:
            by_epoch[epoch] = measures(handle, trials, epochs, epoch=epoch)
        rows.append(evaluate(claim, by_epoch[epoch], handle.spec.epochs, handle.spec.full_epochs))
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype({"n": "int64"})


def evaluate(claim: dict, measured: pd.DataFrame, epochs: int, full_epochs: int | None = None) -> dict:
    """The row of one claim, from the per-trial measures (sweeper.summary.measures). `full_epochs`: the
    post's length; a run shorter than it that did not diverge says nothing of divergence later."""
    kind, metric = claim["kind"], claim["metric"]
    row = dict(section=claim["section"], claim=claim["text"], kind=kind, metric=_metric(claim), x=claim["x"],
               y=claim["y"], target=_target(claim), n=0, x_mean=math.nan, y_mean=math.nan, effect=math.nan,
               effect_low=math.nan, effect_high=math.nan, p_value=math.nan, verdict=INCONCLUSIVE, note="")
    x = measured[measured["config"] == claim["x"]].set_index("seed")
    if kind == "diverges":
        k, n = int(x["diverged"].sum()), len(x)
        low, high = stats.share_interval(k, n)
        row.update(n=n, x_mean=k / n if n else math.nan, effect=k / n if n else math.nan, effect_low=low,
                   effect_high=high, note=f"{k} of {n} seeds diverged")
        if n:
            row["verdict"] = SUPPORTED if k == n else CONTRADICTED if k == 0 else INCONCLUSIVE
        if k == 0 and full_epochs is not None and epochs < full_epochs:
            row.update(verdict=INCONCLUSIVE, note=f"{row['note']} in {epochs} epochs (the post ran {full_epochs})")
        return row
    if claim.get("epoch") is not None and claim["epoch"] > epochs:
        row["note"] = f"not reached: the study trains {epochs} epochs"
        return row
    notes = [f"{int(x['diverged'].sum())} seed(s) of x diverged (left out)"] if x["diverged"].any() else []
    if claim["y"] is not None:
        y = measured[measured["config"] == claim["y"]].set_index("seed")
        if y["diverged"].any():
            notes.append(f"{int(y['diverged'].sum())} seed(s) of y diverged (left out)")
        both = x[[metric]].add_suffix("_x").join(y[[metric]].add_suffix("_y"), how="inner").dropna()
        est = stats.paired(both[f"{metric}_x"], both[f"{metric}_y"])
        row.update(x_mean=both[f"{metric}_x"].mean(), y_mean=both[f"{metric}_y"].mean())
        if kind == "similar":
            p = stats.equivalence_p(both[f"{metric}_x"] - both[f"{metric}_y"], claim["margin"])
            verdict = (SUPPORTED if p < stats.ALPHA else
                       CONTRADICTED if est.low > claim["margin"] or est.high < -claim["margin"] else INCONCLUSIVE)
        else:
            p, verdict = est.p, _side(est, +1 if kind == "higher" else -1)
    else:
        est = stats.shifted(x[metric], claim["value"])
        row["x_mean"] = x[metric].mean()
        p, verdict = est.p, _side(est, +1 if kind == "at_least" else -1)
    row.update(n=est.n, effect=est.mean, effect_low=est.low, effect_high=est.high, p_value=p)
    if est.n < 2:
        notes.append("needs at least 2 seeds with a figure on both sides")
        verdict = INCONCLUSIVE
    row.update(verdict=verdict, note="; ".join(notes))
    return row


def _side(est: stats.Estimate, sign: int) -> str:
    """supported when the interval is wholly on the `sign` side of 0, contradicted when on the other."""
    if est.n < 2 or not math.isfinite(est.low):
        return INCONCLUSIVE
    if sign * est.low > 0 and sign * est.high > 0:
        return SUPPORTED
    if sign * est.low < 0 and sign * est.high < 0:
        return CONTRADICTED
    return INCONCLUSIVE


def _metric(claim: dict) -> str:
    if claim["metric"] is None:
        return "diverged"
    return claim["metric"] + (f" at epoch {claim['epoch']}" if claim.get("epoch") else "")


def _target(claim: dict) -> str:
    if claim["kind"] in ("at_least", "at_most"):
        return f"{'>=' if claim['kind'] == 'at_least' else '<='} {claim['value']:g}"
    if claim["kind"] == "similar":
        return f"|x - y| < {claim['margin']:g}"
    if claim["kind"] == "diverges":
        return "every seed"
    return "x > y" if claim["kind"] == "higher" else "x < y"
