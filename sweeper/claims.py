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
changes = "verdicts", a run of another length than the post's, or, for a claim about an absolute figure,
a condition with changes = "figures" or less training data than the post had.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sweeper import stats
from sweeper.evidence import ALONE
from sweeper.measures import measures

COLUMNS = ("section", "post", "origin", "claim", "kind", "metric", "x", "y", "target", "n", "x_mean", "y_mean",
           "effect", "effect_low", "effect_high", "prob_better", "prob_better_low", "prob_better_high", "detectable",
           "post_effect", "claimed", "spread", "levels", "p_value", "p_adjusted", "leans", "verdict", "counted", "note",
           "why")
SUPPORTED, CONTRADICTED, INCONCLUSIVE, UNTESTABLE = "supported", "contradicted", "inconclusive", "untestable"
DIVERGE_RATE = 0.5  # a 'diverges' claim says: more often than not, unless it states its own rate


def claims(handle, trials: pd.DataFrame, epochs: pd.DataFrame,
           measured: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per [[claim]] of the study (COLUMNS), in the order of the spec. `measured`: the study's
    measures (sweeper.measures.measures) when the caller has them already."""
    from sweeper import analysis

    spec = handle.spec
    at = {} if measured is None else {(None, None, None): measured}
    flags = analysis.test_flags(handle)
    rows = []
    for number, claim in enumerate(spec.claims, 1):
        caveats = conditions(spec, trials, number)
        point = (claim.get("epoch"), claim.get("step"), claim.get("below"))
        if point not in at:
            at[point] = measures(handle, trials, epochs, epoch=point[0], step=point[1], below=point[2])
        row = evaluate(claim, at[point], spec.epochs, shortened=spec.post_length is not None, flags=flags)
        row["post_effect"] = posts_effect(spec, claim)
        row["claimed"] = claimed(claim, row["post_effect"])
        why = caveats["all"] + (caveats["absolute"] if claim["kind"] in ALONE else [])
        row["counted"] = claim.get("origin") == "post" and row["verdict"] != UNTESTABLE and not why
        if why:
            row["note"] = "; ".join([*([row["note"]] if row["note"] else []), "not counted: " + ", ".join(why)])
        rows.append(row)
    return adjust(pd.DataFrame(rows, columns=list(COLUMNS)).astype({"n": "int64", "counted": "bool",
                                                                     "levels": "int64"}))


def adjust(frame: pd.DataFrame) -> pd.DataFrame:
    """Holm's correction over the counted claims of `frame` (one study's, or a whole report's claims
    concatenated): `p_adjusted` for each, and its verdict decided on it; other claims keep theirs."""
    frame = frame.copy()
    family = frame["counted"] & frame["p_value"].notna()
    frame["p_adjusted"] = math.nan
    frame.loc[family, "p_adjusted"] = stats.holm(frame.loc[family, "p_value"])
    frame.loc[family, "verdict"] = [_verdict(p, lean) for p, lean in frame.loc[family, ["p_adjusted", "leans"]]
                                    .itertuples(index=False)]
    frame["why"] = [why_inconclusive(row) for _, row in frame.iterrows()]
    return frame


def why_inconclusive(row) -> str:
    """Why an inconclusive verdict is one: "underpowered" when the seeds could not have found the effect
    the post claims (the detectable effect is larger), else "effect inside the noise" or, for a margin,
    "interval past the margin"; empty for other verdicts or when the claim states no size."""
    if row["verdict"] != INCONCLUSIVE or not math.isfinite(row.get("claimed", math.nan)) \
            or not math.isfinite(row.get("detectable", math.nan)):
        return ""
    if row["detectable"] > row["claimed"]:
        return (f"underpowered: {row['n']} seeds find {row['detectable']:.2g} at 80 % power, "
                f"the claimed effect is {row['claimed']:.2g}")
    if row["kind"] in ("similar", "near", "not_lower", "not_higher"):
        return "interval reaches past the margin"
    return f"effect inside the noise: smaller than the {row['detectable']:.2g} these seeds resolve"


def posts_effect(spec, claim: dict) -> float:
    """The claim's effect in the post's own figures ([[reference]] at the claim's point of training): x's
    minus y's (or minus the claim's value); nan when the post gives no such figure."""
    metric, sign = {"valid_accuracy": ("valid_accuracy", 1), "test_accuracy": ("test_accuracy", 1),
                    "valid_error": ("valid_accuracy", -1), "test_error": ("test_accuracy", -1)}.get(
        claim["metric"], (None, 0))
    if metric is None or claim["kind"] in ("diverges", UNTESTABLE):
        return math.nan

    def figure(config) -> float:
        values = [r[metric] for r in spec.references if r["config"] == config and metric in r
                  and r.get("epoch") == claim.get("epoch") and r.get("step") == claim.get("step")]
        return (1 - sign) / 2 + sign * float(np.mean(values)) if values else math.nan  # an error is 1 - accuracy

    return figure(claim["x"]) - (figure(claim["y"]) if claim["y"] is not None else claim["value"])


def claimed(claim: dict, post_effect: float) -> float:
    """The size of effect the claim is about: its margin (or tolerance) for equivalence and
    non-inferiority, else the post's own difference; nan when the post gives none."""
    if claim["kind"] in ("similar", "not_lower", "not_higher"):
        return float(claim["margin"])
    if claim["kind"] == "near":
        return float(claim["tolerance"])
    if claim["kind"] in ("higher", "lower") and math.isfinite(post_effect):
        return abs(post_effect)
    return math.nan


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
    ours = fewer_images(spec, trials)
    if ours:
        out["absolute"].append(f"{ours:,} training images against the post's {spec.post_train_images:,}")
    return out


def fewer_images(spec, trials: pd.DataFrame) -> int | None:
    """The training images the study's trials saw when they are fewer than the post's, else None (also
    before any trial finished, or when the study gives no post's size)."""
    sizes = trials["train_images"].dropna() if "train_images" in trials else pd.Series(dtype="Int64")
    ours = int(sizes.max()) if len(sizes) else None
    return ours if spec.post_train_images and ours and ours < spec.post_train_images else None


def evaluate(claim: dict, measured: pd.DataFrame, epochs: int | None, shortened: bool = False,
             flags: dict | None = None) -> dict:
    """The row of one claim, from the per-trial measures (sweeper.measures.measures). `shortened`: the run
    is shorter than the post's, so one that did not diverge says nothing of divergence later. `flags`:
    {trial: right/wrong per test image} (analysis.test_flags); with them a claim about a test figure takes
    its least spread from a paired bootstrap over seeds and test images, else from the binomial error."""
    kind, metric = claim["kind"], claim["metric"]
    row = dict(section=claim["section"], post=claim.get("post"), origin=claim.get("origin"), claim=claim["text"],
               kind=kind, metric=_metric(claim), x=claim["x"], y=claim["y"], target=_target(claim), n=0,
               x_mean=math.nan, y_mean=math.nan, effect=math.nan, effect_low=math.nan, effect_high=math.nan,
               prob_better=math.nan, prob_better_low=math.nan, prob_better_high=math.nan, detectable=math.nan,
               post_effect=math.nan, claimed=math.nan, spread=math.nan, levels=0, why="",
               p_value=math.nan, p_adjusted=math.nan, leans="", verdict=INCONCLUSIVE, counted=False, note="")
    if kind == UNTESTABLE:
        return dict(row, verdict=UNTESTABLE, note=claim["untestable"])
    x = measured[measured["config"] == claim["x"]].set_index("seed")
    if kind == "diverges":  # the share of seeds that diverge, against the stated rate
        k, n, rate = int(x["diverged"].sum()), len(x), claim.get("rate", DIVERGE_RATE)
        low, high = stats.share_interval(k, n)
        row.update(n=n, x_mean=k / n if n else math.nan, effect=k / n if n else math.nan, effect_low=low,
                   effect_high=high, note=f"{k} of {n} seeds diverged (the claim: more than {rate:g} of runs)")
        if n:
            row["verdict"] = SUPPORTED if low > rate else CONTRADICTED if high < rate else INCONCLUSIVE
            test = stats.binomtest(k, n, rate, alternative="greater" if k / n > rate else "less")
            row.update(p_value=min(2 * test, 1.0), leans=SUPPORTED if k / n > rate else CONTRADICTED)
        if k == 0 and shortened:
            row.update(verdict=INCONCLUSIVE, note=f"{row['note']}, in a run shorter than the post's")
        return row
    if claim.get("epoch") is not None and epochs is not None and claim["epoch"] > epochs:
        row["note"] = f"not reached: the study trains {epochs} epochs"
        return row
    if x[metric].isna().all() and (claim.get("step") or claim.get("epoch")):
        row["note"] = "not reached: no trial trained that long"
        return row
    notes = [f"{int(x['diverged'].sum())} seed(s) of x diverged (left out)"] if x["diverged"].any() else []
    if _mixes_best_and_last(claim, measured):
        measured = _at_last_epoch(measured)
        x = measured[measured["config"] == claim["x"]].set_index("seed")
        notes.append("both at their last epoch (one side keeps its best epoch, picked on this validation set)")
    if claim["y"] is not None:
        y = measured[measured["config"] == claim["y"]].set_index("seed")
        if y["diverged"].any():
            notes.append(f"{int(y['diverged'].sum())} seed(s) of y diverged (left out)")
        keep = [metric, *(["trial"] if "trial" in measured else [])]
        both = x[keep].add_suffix("_x").join(y[keep].add_suffix("_y"), how="inner")
        both = both.dropna(subset=[f"{metric}_x", f"{metric}_y"])
        floor = _images_sd(both.get("trial_x"), both.get("trial_y"), metric, flags)
        if floor is None:
            floor = math.hypot(_binomial(x, metric), _binomial(y, metric))
        est = stats.paired(both[f"{metric}_x"], both[f"{metric}_y"], floor=floor)
        d = both[f"{metric}_x"] - both[f"{metric}_y"]
        row.update(x_mean=both[f"{metric}_x"].mean(), y_mean=both[f"{metric}_y"].mean())
        row["prob_better"], row["prob_better_low"], row["prob_better_high"] = stats.prob_better(d)
    else:
        floor = _images_sd(x.loc[x[metric].notna()].get("trial"), None, metric, flags)
        if floor is None:
            floor = _binomial(x, metric)
        d = x[metric].dropna() - claim["value"]
        est = stats.shifted(x[metric], claim["value"], floor=floor)
        row["x_mean"] = x[metric].mean()
    p_for, p_against = _tests(kind, claim, d, est, floor)
    sd, levels, df = spread(measured if claim["y"] is not None else measured[measured["config"] == claim["x"]],
                            metric, paired=claim["y"] is not None, floor=floor, own=(claim["x"], claim["y"]))
    row.update(spread=sd, levels=levels,
               detectable=stats.detectable(sd, est.n, df) if df > 0 and est.n >= 1 else math.nan)
    row.update(n=est.n, effect=est.mean, effect_low=est.low, effect_high=est.high,
               p_value=min(p_for, p_against), leans=SUPPORTED if p_for <= p_against else CONTRADICTED)
    row["verdict"] = _verdict(row["p_value"], row["leans"])
    if est.n < 2:
        notes.append("needs at least 2 seeds with a figure on both sides")
        row.update(verdict=INCONCLUSIVE, p_value=math.nan)
    row["note"] = "; ".join(notes)
    return row


def _mixes_best_and_last(claim: dict, measured: pd.DataFrame) -> bool:
    """Whether a paired claim on the final validation figure sets a run that keeps its best epoch (early
    stopping) against one that keeps its last: the best of many epochs, chosen on that very validation set,
    is biased low against a single last epoch."""
    if (claim["y"] is None or claim["metric"] not in ("valid_error", "valid_accuracy") or "kept_best" not in measured
            or claim.get("epoch") is not None or claim.get("step") is not None):
        return False
    kept = measured[measured["config"].isin([claim["x"], claim["y"]])].groupby("config")["kept_best"].any()
    return kept.nunique() > 1


def _at_last_epoch(measured: pd.DataFrame) -> pd.DataFrame:
    """`measured` with each run's validation figures read at its last epoch."""
    last = measured["last_valid_error"].where(~measured["diverged"])
    return measured.assign(valid_error=last, valid_accuracy=1.0 - last)


def _tests(kind: str, claim: dict, d, est: stats.Estimate, floor: float) -> tuple[float, float]:
    """(p for the claim, p against it): the two one-sided questions its verdict answers, each on the
    scale of a two-sided test (so that p < 0.05 is the 95 % interval lying on that side)."""
    if kind in ("higher", "lower", "at_least", "at_most"):
        sign = +1 if kind in ("higher", "at_least") else -1
        if not math.isfinite(est.p):
            return math.nan, math.nan
        on_side = sign * est.mean > 0
        return (est.p, 1.0) if on_side else (1.0, est.p)
    margin = claim["tolerance"] if kind == "near" else claim["margin"]
    if kind in ("similar", "near"):  # inside (-margin, margin): TOST; outside: the interval past one end
        outside = 2 * min(stats.one_sided(d, margin, True, floor), stats.one_sided(d, -margin, False, floor))
        return stats.equivalence_p(d, margin, floor), min(outside, 1.0)
    sign = +1 if kind == "not_lower" else -1  # not worse by the margin; against: worse by more than it
    return (stats.noninferiority_p(sign * d, margin, floor),
            min(2 * stats.one_sided(sign * d, -margin, False, floor), 1.0))


OUTLYING_SPREAD = 10  # a configuration whose spread over seeds is this many times the median's is not pooled


def spread(measured: pd.DataFrame, metric: str, paired: bool, floor: float,
           own: tuple = ()) -> tuple[float, int, int]:
    """(standard deviation of one seed's figure, configurations, degrees of freedom) behind a claim's smallest
    detectable effect: for paired claims sqrt(2) times the residual spread of a configurations x seeds
    model pooled over the study's configurations, on (configurations - 1) x (seeds - 1) degrees of
    freedom; for a claim on one configuration (`measured` holds only it) its own spread over seeds
    (configurations 0): pooling it with configurations of another spread would misstate it. The pool
    leaves out the configurations (other than the claim's `own`) whose spread over seeds is more than
    OUTLYING_SPREAD times the median configuration's (a run that blew up, one that never converged):
    they would lend every claim their spread. Never below `floor`."""
    done = measured[~measured["diverged"]]
    if paired:
        per = done.groupby("config")[metric].std()
        typical = float(per.median()) if per.notna().any() else math.nan
        if math.isfinite(typical) and typical > 0:
            wild = set(per.index[per > OUTLYING_SPREAD * typical]) - set(own)
            done = done[~done["config"].isin(wild)]
        sd, df = stats.pooled_sd(done[metric], done["config"], done["seed"])
        sd *= math.sqrt(2)
        levels = int(done["config"].nunique())
    else:
        per = done.groupby("config")[metric].agg(["var", "count"]).dropna()
        df = int((per["count"] - 1).sum())
        sd = math.sqrt(float((per["var"] * (per["count"] - 1)).sum() / df)) if df > 0 else math.nan
        levels = 0
    return max(sd, floor) if math.isfinite(sd) else sd, levels, df


def _verdict(p: float, leans: str) -> str:
    """supported or contradicted when `p` (of the side the claim leans to) is below ALPHA, else inconclusive."""
    return leans if math.isfinite(p) and p < stats.ALPHA else INCONCLUSIVE


def _images_sd(x_trials, y_trials, metric: str, flags: dict | None) -> float | None:
    """For a claim on a test figure: sqrt(n) times the paired bootstrap's standard error of the mean (of x,
    or of x - y seed by seed) over seeds and test images (stats.bootstrap_se), the spread a t-test on n
    seeds then divides by sqrt(n); None when the claim is on another figure or a trial has no flags."""
    if metric not in ("test_accuracy", "test_error") or not flags or x_trials is None or len(x_trials) == 0:
        return None
    pairs = list(zip(x_trials, y_trials if y_trials is not None else [None] * len(x_trials)))
    if any(int(a) not in flags or (b is not None and int(b) not in flags) for a, b in pairs):
        return None
    rows = [flags[int(a)].astype(np.float64) - (flags[int(b)] if b is not None else 0.0) for a, b in pairs]
    if len({r.shape for r in rows}) != 1:
        return None
    return stats.bootstrap_se(np.vstack(rows)) * math.sqrt(len(rows))


def _binomial(frame: pd.DataFrame, metric: str) -> float:
    """The sampling standard deviation of an accuracy or error on the images it was measured on (0 for
    other metrics): the least spread a mean difference of such figures is taken to have."""
    size = {"valid_accuracy": "valid_images", "valid_error": "valid_images", "best_valid_error": "valid_images",
            "test_accuracy": "test_images", "test_error": "test_images"}.get(metric)
    if size is None or size not in frame or frame[size].isna().all():
        return 0.0
    return stats.binomial_sd(float(frame[metric].mean()), float(frame[size].max()))


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
