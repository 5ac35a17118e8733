"""The posts' figures ([[reference]]), claims ([[claim]]) and conditions ([[condition]]) of a spec, checked
against its configurations."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace

from storage.contract.errors import BadInput, did_you_mean
from storage.contract.params import check
from storage.contract.spec import Spec

# What a claim can say about its configuration x (and y): the checkable forms.
KINDS = {
    "higher": "x's metric is higher than y's (paired over seeds)",
    "lower": "x's metric is lower than y's (paired over seeds)",
    "similar": "x's and y's metrics differ by less than `margin` (paired over seeds)",
    "not_lower": "x's metric is not lower than y's by `margin` or more (non-inferiority, paired over seeds)",
    "not_higher": "x's metric is not higher than y's by `margin` or more (paired over seeds)",
    "at_least": "x's metric is at least `value`",
    "at_most": "x's metric is at most `value`",
    "near": "x's metric lies within `tolerance` of `value` (\"about 90 %\")",
    "diverges": "x's training loss becomes NaN or infinite",
}
# The posts a claim can come from, in words (the product names no one's blog).
POSTS = {
    "tutorial-mlp": "a write-up improving the Theano tutorial's MLP step by step",
    "forum-init": "a forum question about an MLP stuck at chance, and its answer",
    "theano-structure": "an explanation of how a Theano training program is built",
    "tf-hyperparameters": "a series of TensorFlow experiments on MNIST's hyperparameters",
    "tf-toy": "the same series' experiments on a toy XOR-like problem",
}
ORIGINS = {"post": "the post concludes it", "derived": "our own check, not the post's conclusion"}
CHANGES = {"verdicts": "could change the claims' verdicts", "figures": "shifts absolute figures only"}
# Per-trial measures a claim can name: the kept network's figures, the last epoch's (or `epoch`'s).
METRICS = {
    "valid_accuracy": "validation accuracy of the kept network",
    "test_accuracy": "test accuracy of the kept network",
    "valid_error": "validation error of the kept network",
    "test_error": "test error of the kept network",
    "train_loss": "training loss of the last epoch (mean over its minibatches)",
    "train_error": "training error of the last epoch (mean over its minibatches)",
    "gap": "validation error minus training error, last epoch (overfitting when positive)",
    "clean_gap": "the kept network's validation error minus its error on a clean pass over the training set "
                 "(dropout off, the weights it is evaluated with): overfitting when positive",
    "best_valid_error": "lowest validation error over the epochs",
    "epochs_run": "epochs trained (fewer with early stopping)",
    "mean_train_loss": "mean of the epochs' training losses: the area under the loss curve (lower: it fell faster)",
    "loss_rises": "share of epochs, after the first, whose training loss is above the previous epoch's (oscillation)",
    "epochs_to": "the first epoch whose validation error is below the claim's `below` (the length + 1 if none)",
    "confident_precision": "precision of the test predictions whose top probability exceeds 0.5",
    "near_zero": "share of the evaluated weights (not biases) whose magnitude is below 1e-4 (L1's zero weights)",
}
AT_EPOCH = ("train_loss", "train_error", "valid_error", "valid_accuracy", "gap")  # measures with `epoch = k`
PAIRED = ("higher", "lower", "similar", "not_lower", "not_higher")
MARGINED = ("similar", "not_lower", "not_higher")
ALONE = ("at_least", "at_most", "near")  # claims about x's own figure (an absolute threshold)
CLAIM_KEYS = ("text", "kind", "metric", "x", "y", "value", "margin", "margin_why", "tolerance", "tolerance_why",
              "epoch", "step",
              "below", "rate", "section", "post", "origin", "untestable")
REFERENCE_KEYS = ("config", "params", "valid_accuracy", "test_accuracy", "outcome", "note", "at", "section", "epoch",
                  "step")
CONDITION_KEYS = ("setting", "post", "ours", "match", "changes", "why", "claims")
# a claim's optional keys, unset
UNSET = dict(tolerance=None, tolerance_why="", below=None, step=None, margin_why="", untestable="")
DEFAULT_MARGIN = 0.002  # "about the same": within 0.2 points of accuracy, twice the posts' run-to-run spread


def attach(spec: Spec, references: list[dict], claims: list[dict], conditions: list[dict] = (), *,
           post_length: str | None = None) -> Spec:
    """`spec` with its [[reference]], [[claim]] and [[condition]] entries checked and stored; BadInput naming
    the entry. `post_length`: the length the study was cut from (claims past its end are then kept)."""
    if (references or claims) and not spec.is_grid:
        raise BadInput("[[reference]] and [[claim]] entries need a grid study (its configurations are what they "
                       "name): list values with {grid = [...]} or [[point]] entries")
    configs = spec.configs() if spec.is_grid else []
    refs = [_reference(i, r, spec, configs) for i, r in enumerate(references, 1)]
    said = [_claim(i, c, spec, configs, post_length is not None, bool(refs)) for i, c in enumerate(claims, 1)]
    conds = [_condition(i, c, len(said)) for i, c in enumerate(conditions, 1)]
    return replace(spec, references=refs, claims=said, conditions=conds,
                   post_length=post_length if post_length != spec.length else None)


def at_end(reference: dict) -> bool:
    """Whether a [[reference]]'s figures are from the end of the post's run (not at a `step` or `epoch`)."""
    return reference.get("step") is None and reference.get("epoch") is None


def digest(claims: list[dict]) -> str:
    """A short fingerprint of a study's claims as stored (text, origin, metric, configurations, thresholds,
    margins): it changes when any of them does."""
    text = json.dumps(claims, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _condition(i: int, table: dict, n_claims: int) -> dict:
    where = f"[[condition]] {i}"
    _keys(table, CONDITION_KEYS, where)
    out = {key: _text(table, key, where) for key in ("setting", "post", "ours", "why")}
    for key in ("setting", "post", "ours"):
        if not out[key]:
            raise BadInput(f"{where}: {key} is missing: a condition names the setting, the post's value and ours")
    match = table.get("match")
    if not isinstance(match, bool):
        raise BadInput(f"{where}: match = {match!r}: write match = true or match = false")
    changes = table.get("changes")
    if match:
        if changes is not None:
            raise BadInput(f"{where}: changes is for a condition that does not match: remove it")
    else:
        if changes not in CHANGES:
            raise BadInput(f"{where}: a condition that does not match says what it changes: "
                           f"changes = \"verdicts\" ({CHANGES['verdicts']}) or \"figures\" ({CHANGES['figures']})")
        if not out["why"]:
            raise BadInput(f"{where}: why is missing: say in a sentence how the difference matters")
    only = table.get("claims")
    if only is not None:
        if match:
            raise BadInput(f"{where}: claims names the claims a difference could change: remove it (match = true)")
        if (not isinstance(only, list) or not only
                or any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= n_claims for n in only)):
            raise BadInput(f"{where}: claims = {only!r}: list the numbers of the [[claim]] entries it could change, "
                           f"1 to {n_claims} in the order written")
    return dict(out, match=match, changes=changes, claims=sorted(set(only)) if only else None)


def find(where: str, spec: Spec, configs: list[dict], named) -> str:
    """The label of the one configuration that `named` designates: a label, or a table of parameters."""
    labels = [c["label"] for c in configs]
    if isinstance(named, str):
        if named in labels:
            return named
        raise BadInput(f"{where}: no configuration named {named!r}: "
                       + did_you_mean(named, labels, cutoff=0.5,
                                      otherwise="use one of " + ", ".join(map(repr, labels))))
    if not isinstance(named, dict) or not named:
        raise BadInput(f"{where}: name a configuration by its name (a string) or its parameters (a table)")
    wanted = {}
    for key, value in named.items():
        if key not in spec.varied and key not in spec.fixed:
            raise BadInput(f"{where}: the study does not vary or fix '{key}': use " + ", ".join(spec.varied))
        wanted[key] = check(key, value, spec.model)
    hits = [c["label"] for c in configs
            if all(same(c["params"].get(k, spec.fixed.get(k)), v) for k, v in wanted.items())]
    if not hits:
        raise BadInput(f"{where}: no configuration of the study has {_show(wanted)}: use values of its grid")
    if len(hits) > 1:
        raise BadInput(f"{where}: {_show(wanted)} matches {len(hits)} configurations ({'; '.join(hits[:3])}"
                       f"{', ...' if len(hits) > 3 else ''}): add the other parameters")
    return hits[0]


def _reference(i: int, table: dict, spec: Spec, configs: list[dict]) -> dict:
    where = f"[[reference]] {i}"
    _keys(table, REFERENCE_KEYS, where)
    if ("config" in table) == ("params" in table):
        raise BadInput(f"{where}: name its configuration with exactly one of config = \"NAME\" or params = {{...}}")
    label = find(where, spec, configs, table.get("config", table.get("params")))
    out = dict(config=label, section=_text(table, "section", where) or spec.section)
    for key in ("valid_accuracy", "test_accuracy"):
        if key in table:
            out[key] = _share(table[key], f"{where}: {key}")
    for key in ("outcome", "note", "at"):
        out[key] = _text(table, key, where)
    out.update(_point(table, where))
    if "valid_accuracy" not in out and "test_accuracy" not in out and not out["outcome"]:
        raise BadInput(f"{where}: give the post's valid_accuracy, test_accuracy or outcome (e.g. \"diverged\")")
    return out


def _claim(i: int, table: dict, spec: Spec, configs: list[dict], shortened: bool, cited: bool) -> dict:
    where = f"[[claim]] {i}"
    _keys(table, CLAIM_KEYS, where)
    text = _text(table, "text", where)
    if not text:
        raise BadInput(f"{where}: text is missing: state the post's conclusion in text = \"...\"")
    source = _source(table, where, cited)
    untestable = _text(table, "untestable", where)
    if untestable:
        for key in ("kind", "metric", "y", "value", "margin", "tolerance", "epoch", "step", "below"):
            if key in table:
                raise BadInput(f"{where}: an untestable claim gets no verdict, so no {key}: remove it (or untestable)")
        x = find(f"{where} x", spec, configs, table["x"]) if "x" in table else None
        return dict(text=text, kind="untestable", section=_text(table, "section", where) or spec.section, x=x,
                    y=None, metric=None, value=None, margin=None, epoch=None, **source,
                    **dict(UNSET, untestable=untestable))
    kind = table.get("kind")
    if kind not in KINDS:
        raise _unknown(where, "kind", kind, KINDS)
    out = dict(text=text, kind=kind, section=_text(table, "section", where) or spec.section,
               x=find(f"{where} x", spec, configs, table.get("x")), y=None, metric=None, value=None,
               margin=None, epoch=None, **source, **UNSET)
    if kind in PAIRED:
        if "y" not in table:
            raise BadInput(f"{where}: a '{kind}' claim compares x with y: add y = \"NAME\" or y = {{...}}")
        out["y"] = find(f"{where} y", spec, configs, table["y"])
        if out["y"] == out["x"]:
            raise BadInput(f"{where}: x and y are the same configuration ({out['x']}): compare two")
    elif "y" in table:
        raise BadInput(f"{where}: a '{kind}' claim is about x alone: remove y")
    if kind == "diverges":
        for key in ("metric", "value", "margin", "epoch", "step", "tolerance", "below"):
            if key in table:
                raise BadInput(f"{where}: a 'diverges' claim takes no {key}: remove it")
        if "rate" in table:
            rate = table["rate"]
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
                raise BadInput(f"{where}: rate = {rate!r}: the share of runs that diverge, a number in (0, 1)")
            out["rate"] = float(rate)
        return out
    if "rate" in table:
        raise BadInput(f"{where}: rate is the share of a 'diverges' claim: remove it")
    metric = table.get("metric")
    if metric not in METRICS:
        raise _unknown(where, "metric", metric, METRICS)
    out["metric"] = metric
    if kind in ALONE:
        out["value"] = _number(table.get("value"), f"{where}: value", missing="add the threshold, value = 0.8")
    elif "value" in table:
        raise BadInput(f"{where}: value is the threshold of at_least, at_most and near claims: remove it")
    if kind == "near":
        out["tolerance"] = _number(table.get("tolerance"), f"{where}: tolerance", positive=True,
                                   missing="say how near counts as 'about', tolerance = 0.02")
        out["tolerance_why"] = _text(table, "tolerance_why", where)
    elif "tolerance" in table or "tolerance_why" in table:
        raise BadInput(f"{where}: tolerance is for 'near' claims: remove it")
    if kind in MARGINED:
        out["margin"] = _number(table.get("margin", DEFAULT_MARGIN), f"{where}: margin", missing="", positive=True)
        out["margin_why"] = _text(table, "margin_why", where)
    elif "margin" in table or "margin_why" in table:
        raise BadInput(f"{where}: margin is for similar, not_lower and not_higher claims: remove it")
    if (metric == "epochs_to") != ("below" in table):
        raise BadInput(f"{where}: " + ("epochs_to needs the error it counts to, below = 0.1" if metric == "epochs_to"
                                        else "below is for the epochs_to metric: remove it"))
    if "below" in table:
        out["below"] = _number(table["below"], f"{where}: below", missing="", positive=True)
    point = _point(table, where)
    for key in (k for k, v in point.items() if v is not None):
        if metric not in AT_EPOCH:
            raise BadInput(f"{where}: {metric} has no value per epoch: use one of {', '.join(AT_EPOCH)} with {key}")
    out.update(point)
    unit = "epoch" if "epoch" in table else "step"
    limit = spec.epochs if unit == "epoch" else spec.steps
    if unit in table and limit is not None and out[unit] > limit and not shortened:
        raise BadInput(f"{where}: {unit} = {out[unit]} is past the study's {spec.length}: lower it or lengthen "
                       "the study")
    return out


def _source(table: dict, where: str, cited: bool) -> dict:
    """The claim's post and origin; both required in a study that cites a post's figures."""
    post, origin = table.get("post"), table.get("origin")
    if post is None and origin is None and not cited:
        return dict(post=None, origin=None)
    if post not in POSTS:
        raise BadInput(f"{where}: " + (f"unknown post {post!r}: {did_you_mean(post, POSTS)}" if post is not None else
                                       "post is missing: name the post it comes from, one of " + ", ".join(POSTS)))
    if origin not in ORIGINS:
        raise BadInput(f"{where}: origin = {origin!r}: write origin = \"post\" (the post concludes it) or "
                       "\"derived\" (our own check)")
    return dict(post=post, origin=origin)


def _point(table: dict, where: str) -> dict:
    """{"epoch": k or None, "step": s or None}: the point of training an entry's figure is at, at most one."""
    if "epoch" in table and "step" in table:
        raise BadInput(f"{where}: give the point of training as epoch or as step, not both")
    return {key: _count(table[key], f"{where}: {key}") if key in table else None for key in ("epoch", "step")}


def _count(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"{where} = {value!r} must be an integer >= 1")
    return value


def _keys(table: dict, known, where: str) -> None:
    for key in table:
        if key not in known:
            raise _unknown(where, "key", key, known)


def _unknown(where: str, what: str, value, known) -> BadInput:
    return BadInput(f"{where}: unknown {what} {value!r}: {did_you_mean(value, known)}")


def _text(table: dict, key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise BadInput(f"{where}: {key} = {value!r} must be a string")
    return value.strip()


def _share(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise BadInput(f"{where} = {value!r} must be a share in [0, 1], e.g. 0.9843")
    return float(value)


def _number(value, where: str, *, missing: str, positive: bool = False) -> float:
    if value is None:
        raise BadInput(f"{where} is missing: {missing}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise BadInput(f"{where} = {value!r} must be a {'positive ' if positive else ''}number")
    return float(value)


def same(a, b) -> bool:
    """Whether two parameter values are the same (floats to 1e-9; an unset value, None, is the NaN a
    table of trials holds for it)."""
    if _unset(a) or _unset(b):
        return _unset(a) and _unset(b)
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    return a == b


def _unset(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _show(params: dict) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in params.items())
