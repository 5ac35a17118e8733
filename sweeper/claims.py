"""A verdict on each of a study's claims: the measured effect with its 95 % interval and a p-value over seeds.

The rule (docs/reproduce.md): supported when the interval lies wholly on the side the claim says,
contradicted when it lies wholly on the other side, inconclusive otherwise (fewer than 2 seeds
included). 'similar' and 'near' claims are equivalence tests: supported when the two one-sided tests
put the difference inside (-margin, margin) at p < 0.05, contradicted when the interval lies wholly
outside. 'not_lower' / 'not_higher' are non-inferiority tests: supported when the one-sided test puts
the difference above -margin (below +margin) at p < 0.05, contradicted when the interval lies wholly
past it. 'diverges': supported when every seed diverged, contradicted when none did (inconclusive
when none did in a run shorter than the post's). An untestable claim gets no verdict.

A claim counts in a report's headline only when the post concludes it (origin "post") and nothing in
the study's conditions could change its verdict: a condition that differs from the post's with
changes = "verdicts", a run of another length than the post's, or, for a claim about an absolute figure, a condition with
changes = "figures" or less training data than the post had.
"""

from __future__ import annotations

import math

import pandas as pd

from sweeper import stats
from sweeper.evidence import ALONE
from sweeper.summary import measures

COLUMNS = ("section", "post", "origin", "claim", "kind", "metric", "x", "y", "target", "n", "x_mean", "y_mean",
           "effect", "effect_low", "effect_high", "p_value", "verdict", "counted", "note")
SUPPORTED, CONTRADICTED, INCONCLUSIVE, UNTESTABLE = "supported", "contradicted", "inconclusive", "untestable"


def claims(handle, trials: pd.DataFrame, epochs: pd.DataFrame,
           measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per [[claim]] of the study (COLUMNS), in the order of the spec. `measured`: the study's
    measures (sweeper.summary.measures) when the caller has them already."""
    spec = handle.spec
    at = {} if measured is None else {(None, None, None): measured}
    rows = []
    for number, claim in enumerate(spec.claims, 1):
        caveats = conditions(spec, trials, number)
        point = (claim.get("epoch"), claim.get("step"), claim.get("below"))
        if point not in at:
            at[point] = measures(handle, trials, epochs, epoch=point[0], step=point[1], below=point[2])
        row = evaluate(claim, at[point], spec.epochs, shortened=spec.post_length is not None)
        why = caveats["all"] + (caveats["absolute"] if claim["kind"] in ALONE else [])
        row["counted"] = claim.get("origin") == "post" and row["verdict"] != UNTESTABLE and not why
        if why:
            row["note"] = "; ".join([*([row["note"]] if row["note"] else []), "not counted: " + ", ".join(why)])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype({"n": "int64", "counted": "bool"})


def conditions(spec, trials: pd.DataFrame, claim: int | None = None) -> dict[str, list[str]]:
    """Why the study's verdicts (claim number `claim`'s, 1-based, or any claim's) may not be the post's:
    {"all": [...], "absolute": [...]} (reasons that touch every kind of claim, and those that touch only
    claims about an absolute figure)."""
    out = {"all": [], "absolute": []}
    for c in spec.conditions:
        if not c["match"] and (claim is None or not c.get("claims") or claim in c["claims"]):
            out["all" if c["changes"] == "verdicts" else "absolute"].append(f"{c['setting']} differs from the post's")
    if spec.post_length is not None:
        out["all"].append(f"another length ({spec.length}, the post's {spec.post_length})")
    ours = train_images(trials)
    if spec.post_train_images and ours and ours < spec.post_train_images:
        out["absolute"].append(f"{ours:,} training images against the post's {spec.post_train_images:,}")
    return out


def train_images(trials: pd.DataFrame) -> int | None:
    """The training set's size the study's trials saw (None before any finished)."""
    sizes = trials["train_images"].dropna() if "train_images" in trials else pd.Series(dtype="Int64")
    return int(sizes.max()) if len(sizes) else None


def evaluate(claim: dict, measured: pd.DataFrame, epochs: int | None, shortened: bool = False) -> dict:
    """The row of one claim, from the per-trial measures (sweeper.summary.measures). `shortened`: the run
    is shorter than the post's, so one that did not diverge says nothing of divergence later."""
    kind, metric = claim["kind"], claim["metric"]
    row = dict(section=claim["section"], post=claim.get("post"), origin=claim.get("origin"), claim=claim["text"],
               kind=kind, metric=_metric(claim), x=claim["x"], y=claim["y"], target=_target(claim), n=0,
               x_mean=math.nan, y_mean=math.nan, effect=math.nan, effect_low=math.nan, effect_high=math.nan,
               p_value=math.nan, verdict=INCONCLUSIVE, counted=False, note="")
    if kind == UNTESTABLE:
        return dict(row, verdict=UNTESTABLE, note=claim["untestable"])
    x = measured[measured["config"] == claim["x"]].set_index("seed")
    if kind == "diverges":
        k, n = int(x["diverged"].sum()), len(x)
        low, high = stats.share_interval(k, n)
        row.update(n=n, x_mean=k / n if n else math.nan, effect=k / n if n else math.nan, effect_low=low,
                   effect_high=high, note=f"{k} of {n} seeds diverged")
        if n:
            row["verdict"] = SUPPORTED if k == n else CONTRADICTED if k == 0 else INCONCLUSIVE
        if k == 0 and shortened:
            row.update(verdict=INCONCLUSIVE, note=f"{row['note']} in a run shorter than the post's")
        return row
    if claim.get("epoch") is not None and epochs is not None and claim["epoch"] > epochs:
        row["note"] = f"not reached: the study trains {epochs} epochs"
        return row
    if x[metric].isna().all() and (claim.get("step") or claim.get("epoch")):
        row["note"] = "not reached: no trial trained that long"
        return row
    notes = [f"{int(x['diverged'].sum())} seed(s) of x diverged (left out)"] if x["diverged"].any() else []
    if claim["y"] is not None:
        y = measured[measured["config"] == claim["y"]].set_index("seed")
        if y["diverged"].any():
            notes.append(f"{int(y['diverged'].sum())} seed(s) of y diverged (left out)")
        both = x[[metric]].add_suffix("_x").join(y[[metric]].add_suffix("_y"), how="inner").dropna()
        est = stats.paired(both[f"{metric}_x"], both[f"{metric}_y"])
        row.update(x_mean=both[f"{metric}_x"].mean(), y_mean=both[f"{metric}_y"].mean())
        d = both[f"{metric}_x"] - both[f"{metric}_y"]
        if kind == "similar":
            p, verdict = _equivalent(d, est, claim["margin"])
        elif kind in ("not_lower", "not_higher"):
            sign = +1 if kind == "not_lower" else -1
            p = stats.noninferiority_p(sign * d, claim["margin"])
            past = est.high < -claim["margin"] if sign > 0 else est.low > claim["margin"]
            verdict = SUPPORTED if p < stats.ALPHA else CONTRADICTED if past else INCONCLUSIVE
        else:
            p, verdict = est.p, _side(est, +1 if kind == "higher" else -1)
    else:
        est = stats.shifted(x[metric], claim["value"])
        row["x_mean"] = x[metric].mean()
        if kind == "near":
            p, verdict = _equivalent(x[metric] - claim["value"], est, claim["tolerance"])
        else:
            p, verdict = est.p, _side(est, +1 if kind == "at_least" else -1)
    row.update(n=est.n, effect=est.mean, effect_low=est.low, effect_high=est.high, p_value=p)
    if est.n < 2:
        notes.append("needs at least 2 seeds with a figure on both sides")
        verdict = INCONCLUSIVE
    row.update(verdict=verdict, note="; ".join(notes))
    return row


def _equivalent(d, est: stats.Estimate, margin: float) -> tuple[float, str]:
    """(TOST p, verdict) that the mean of `d` lies inside (-margin, margin)."""
    p = stats.equivalence_p(d, margin)
    return p, (SUPPORTED if p < stats.ALPHA else
               CONTRADICTED if est.low > margin or est.high < -margin else INCONCLUSIVE)


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
    if claim["kind"] == UNTESTABLE:
        return "-"
    if claim["metric"] is None:
        return "diverged"
    name = claim["metric"] + (f" < {claim['below']:g}" if claim.get("below") is not None else "")
    return name + (f" at epoch {claim['epoch']}" if claim.get("epoch") else
                   f" at step {claim['step']:,}" if claim.get("step") else "")


def _target(claim: dict) -> str:
    kind = claim["kind"]
    if kind in ("at_least", "at_most"):
        return f"{'>=' if kind == 'at_least' else '<='} {claim['value']:g}"
    if kind == "near":
        return f"{claim['value']:g} +- {claim['tolerance']:g}"
    if kind == "similar":
        return f"|x - y| < {claim['margin']:g}"
    if kind == "not_lower":
        return f"x > y - {claim['margin']:g}"
    if kind == "not_higher":
        return f"x < y + {claim['margin']:g}"
    if kind == "diverges":
        return "every seed"
    if kind == UNTESTABLE:
        return "-"
    return "x > y" if kind == "higher" else "x < y"
