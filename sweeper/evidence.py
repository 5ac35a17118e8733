"""The posts' figures ([[reference]]) and claims ([[claim]]) of a spec, checked against its configurations."""

from __future__ import annotations

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
    "at_least": "x's metric is at least `value`",
    "at_most": "x's metric is at most `value`",
    "diverges": "x's training loss becomes NaN or infinite",
}
# Per-trial measures a claim can name: the kept network's figures, the last epoch's (or `epoch`'s).
METRICS = {
    "valid_accuracy": "validation accuracy of the kept network",
    "test_accuracy": "test accuracy of the kept network",
    "valid_error": "validation error of the kept network",
    "test_error": "test error of the kept network",
    "train_loss": "training loss of the last epoch (mean over its minibatches)",
    "train_error": "training error of the last epoch (mean over its minibatches)",
    "gap": "validation error minus training error, last epoch (overfitting when positive)",
    "best_valid_error": "lowest validation error over the epochs",
    "epochs_run": "epochs trained (fewer with early stopping)",
}
AT_EPOCH = ("train_loss", "train_error", "valid_error", "valid_accuracy", "gap")  # measures with `epoch = k`
PAIRED = ("higher", "lower", "similar")
CLAIM_KEYS = ("text", "kind", "metric", "x", "y", "value", "margin", "epoch", "section")
REFERENCE_KEYS = ("config", "params", "valid_accuracy", "test_accuracy", "outcome", "note", "at", "section")
DEFAULT_MARGIN = 0.002  # "about the same": within 0.2 points of accuracy, twice the posts' run-to-run spread


def attach(spec: Spec, references: list[dict], claims: list[dict], *, shortened: bool = False) -> Spec:
    """`spec` with its [[reference]] and [[claim]] entries checked and stored; BadInput naming the entry."""
    if (references or claims) and not spec.is_grid:
        raise BadInput("[[reference]] and [[claim]] entries need a grid study (its configurations are what they "
                       "name): list values with {grid = [...]} or [[point]] entries")
    configs = spec.configs() if spec.is_grid else []
    refs = [_reference(i, r, spec, configs) for i, r in enumerate(references, 1)]
    said = [_claim(i, c, spec, configs, shortened) for i, c in enumerate(claims, 1)]
    return replace(spec, references=refs, claims=said)


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
    if "valid_accuracy" not in out and "test_accuracy" not in out and not out["outcome"]:
        raise BadInput(f"{where}: give the post's valid_accuracy, test_accuracy or outcome (e.g. \"diverged\")")
    return out


def _claim(i: int, table: dict, spec: Spec, configs: list[dict], shortened: bool) -> dict:
    where = f"[[claim]] {i}"
    _keys(table, CLAIM_KEYS, where)
    text = _text(table, "text", where)
    if not text:
        raise BadInput(f"{where}: text is missing: quote the post's sentence in text = \"...\"")
    kind = table.get("kind")
    if kind not in KINDS:
        raise _unknown(where, "kind", kind, KINDS)
    out = dict(text=text, kind=kind, section=_text(table, "section", where) or spec.section,
               x=find(f"{where} x", spec, configs, table.get("x")), y=None, metric=None, value=None,
               margin=None, epoch=None)
    if kind in PAIRED:
        if "y" not in table:
            raise BadInput(f"{where}: a '{kind}' claim compares x with y: add y = \"NAME\" or y = {{...}}")
        out["y"] = find(f"{where} y", spec, configs, table["y"])
        if out["y"] == out["x"]:
            raise BadInput(f"{where}: x and y are the same configuration ({out['x']}): compare two")
    elif "y" in table:
        raise BadInput(f"{where}: a '{kind}' claim is about x alone: remove y")
    if kind == "diverges":
        for key in ("metric", "value", "margin", "epoch"):
            if key in table:
                raise BadInput(f"{where}: a 'diverges' claim takes no {key}: remove it")
        return out
    metric = table.get("metric")
    if metric not in METRICS:
        raise _unknown(where, "metric", metric, METRICS)
    out["metric"] = metric
    if kind in ("at_least", "at_most"):
        out["value"] = _number(table.get("value"), f"{where}: value", missing="add the threshold, value = 0.8")
    elif "value" in table:
        raise BadInput(f"{where}: value is the threshold of at_least and at_most claims: remove it")
    if kind == "similar":
        out["margin"] = _number(table.get("margin", DEFAULT_MARGIN), f"{where}: margin", missing="", positive=True)
    elif "margin" in table:
        raise BadInput(f"{where}: margin is for 'similar' claims: remove it")
    if "epoch" in table:
        epoch = table["epoch"]
        if metric not in AT_EPOCH:
            raise BadInput(f"{where}: {metric} has no value per epoch: use one of {', '.join(AT_EPOCH)} with epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise BadInput(f"{where}: epoch = {epoch!r} must be an integer >= 1")
        if epoch > spec.epochs and not shortened:
            raise BadInput(f"{where}: epoch = {epoch} is past the study's {spec.epochs} epochs: "
                           f"lower it or raise [study] epochs")
        out["epoch"] = epoch
    return out


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
    """Whether two parameter values are the same (floats to 1e-9)."""
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    return a == b


def _show(params: dict) -> str:
    return ", ".join(f"{k} = {v!r}" for k, v in params.items())
