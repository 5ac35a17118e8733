"""Tables of a study for people and pandas: one row per trial, one row per epoch, curves, per-class reports.

    from sweeper import analysis
    trials = analysis.trials("sqlite:///sweeper.db", "quickstart")
    trials = analysis.trials("quickstart")  # in $SWEEPER_STORAGE, else ./sweeper.db (every table alike)
    epochs = analysis.epochs("sqlite:///sweeper.db", "quickstart")
    summary = analysis.summary("sqlite:///sweeper.db", "blog.penalties.l2")  # per configuration, over seeds
    claims = analysis.claims("sqlite:///sweeper.db", "blog.penalties.l2")    # a verdict per claim
"""

from __future__ import annotations

import pandas as pd

from storage import epochs as epoch_table
from storage import urls
from storage.contract.spec import SEED

# After `trial`, `state` and one column per searched parameter (in the spec's order).
TRIAL_COLUMNS = ("valid_error", "test_error", "epochs_run", "steps_run", "steps_per_epoch", "train_images",
                 "valid_images", "test_images", "near_zero", "train_error_clean",
                 "seconds",
                 "stopped_early", "confident_n", "confident_precision", "reason", "retry_of", "shared_from", "worker",
                 "started", "finished")
EPOCH_COLUMNS = ("trial", "epoch") + epoch_table.COLUMNS
# The `outcome` user attr the objective writes (workers/objective.py), with the column types here.
_OUTCOME = {"epochs_run": "Int64", "steps_run": "Int64", "steps_per_epoch": "Int64", "train_images": "Int64",
            "valid_images": "Int64", "test_images": "Int64", "near_zero": "float64", "train_error_clean": "float64",
            "seconds": "float64", "stopped_early": "boolean", "confident_n": "Int64",
            "confident_precision": "float64", "valid_error": "float64"}
_USER_ATTRS = ["worker", "test_error", "outcome", "fail_reason", "prune_reason", "report", "shared_from"]
_ATTRS = ("number", "state", "value", "datetime_start", "datetime_complete", "params", "user_attrs",
          "system_attrs")


def trials(storage, study=None) -> pd.DataFrame:
    """One row per trial: number, state, parameters, errors, epochs run, seconds, why it failed or was pruned.

    `storage` is a URL (or None for $SWEEPER_STORAGE / ./sweeper.db) or an RDBStorage; `study` a name
    or an optuna Study; `trials(study)` alone is `trials(None, study)`, an optuna Study read from its own
    storage (so for every function here). Columns: see TRIAL_COLUMNS and docs/sweep.md. A study whose
    metric is not valid_error also gets a column named after its metric (the value Optuna optimises).
    """
    handle = _handle(storage, study)
    spec = handle.spec
    raw = handle.study.trials_dataframe(attrs=_ATTRS)
    if raw.empty:
        raw = pd.DataFrame({"number": pd.Series(dtype="int64"), "state": pd.Series(dtype="str"),
                            "value": pd.Series(dtype="float64")})
    attrs = _prefixed(raw, "user_attrs_").reindex(columns=_USER_ATTRS)
    system = _prefixed(raw, "system_attrs_")
    params = _prefixed(raw, "params_")
    params = params.reindex(columns=[*spec.space, *(p for p in params if p not in spec.space)])
    if SEED not in params:  # one training seed for every trial: a column all the same
        params[SEED] = spec.seed
    outcome = pd.DataFrame([d if isinstance(d, dict) else {} for d in attrs["outcome"]], index=raw.index)
    outcome = outcome.reindex(columns=list(_OUTCOME)).astype(_OUTCOME)
    values = raw.filter(regex="^value")  # Optuna names it after the metric: value_valid_error
    value = (values.iloc[:, 0] if values.shape[1] else pd.Series(pd.NA, index=raw.index)).astype("float64")
    out = pd.DataFrame({"trial": raw["number"].astype("int64"), "state": raw["state"].astype("str")})
    out = out.join(params)
    # The objective's value is the metric of the kept epoch (pruned: of the last); failed: the last epoch's.
    out["valid_error"] = (value if spec.metric == "valid_error" else 1.0 - value).fillna(outcome["valid_error"])
    out["test_error"] = attrs["test_error"].astype("float64")
    out = out.join(outcome.drop(columns="valid_error"))
    out["worker"] = attrs["worker"]
    out["reason"] = _reasons(out, attrs, system, spec)
    out["retry_of"] = (pd.to_numeric(system["failed_trial"]).astype("Int64") if "failed_trial" in system
                       else pd.Series(pd.NA, index=out.index, dtype="Int64"))
    # A trial that took another study's run instead of training it (workers/objective.py): "study#trial".
    out["shared_from"] = pd.Series([f"{d['study']}#{d['trial']}" if isinstance(d, dict) else pd.NA
                                    for d in attrs["shared_from"]], index=out.index, dtype="object")
    out["started"], out["finished"] = raw.get("datetime_start"), raw.get("datetime_complete")
    columns = ["trial", "state", *params, *TRIAL_COLUMNS]
    if spec.metric != "valid_error":
        out[spec.metric] = value
        columns.insert(columns.index("valid_error") + 1, spec.metric)
    return out[columns].reset_index(drop=True)


def test_flags(storage, study=None) -> dict:
    """{trial number: bool per test image, right or not} of the trials that stored them (workers since the
    `test_correct` attr): what a paired bootstrap over test images needs."""
    from storage.contract import flags

    handle = _handle(storage, study)
    out = {}
    for t in handle.study.get_trials(deepcopy=False):
        got = flags.unpack(t.user_attrs.get("test_correct"))
        if got is not None:
            out[t.number] = got
    return out


def epochs(storage, study=None) -> pd.DataFrame:
    """The long table of per-epoch metrics: trial, epoch, train_loss, train_error, valid_error, lr, seconds."""
    handle = _handle(storage, study)
    return epoch_table.read(handle.storage.engine, handle.study_id)


def summary(storage, study=None, by=None) -> pd.DataFrame:
    """One row per configuration (or per value of the `by` parameters): n, diverged, and for validation
    accuracy, test accuracy, final train loss and epochs run the mean, standard deviation and 95 % t
    interval over seeds; beside them the posts' figures and whether they lie inside (docs/reproduce.md)."""
    from sweeper import summary as tables

    handle = _handle(storage, study)
    return tables.summary(handle, _measures(handle), by=[by] if isinstance(by, str) else by)


def references(storage, study=None) -> pd.DataFrame:
    """One row per [[reference]] of the study: the post's figure beside our mean and interval."""
    from sweeper import summary as tables

    handle = _handle(storage, study)
    trials_, epochs_ = trials(None, handle), epochs(None, handle)

    def at(epoch=None, step=None):
        return tables.measures(handle, trials_, epochs_, epoch=epoch, step=step)

    return tables.references(handle, tables.measures(handle, trials_, epochs_), at=at)


def claims(storage, study=None) -> pd.DataFrame:
    """One row per [[claim]]: effect, its 95 % interval, p over seeds, verdict (docs/reproduce.md)."""
    from sweeper import claims as verdicts

    handle = _handle(storage, study)
    return verdicts.claims(handle, trials(None, handle), epochs(None, handle))


def _measures(handle) -> pd.DataFrame:
    from sweeper.summary import measures

    return measures(handle, trials(None, handle), epochs(None, handle))


def curves(storage, study=None, column: str = "valid_error") -> pd.DataFrame:
    """One column of the epoch table in wide form: index epoch, one column per trial (for plotting)."""
    return epochs(storage, study).pivot(index="epoch", columns="trial", values=column)


def reports(storage, study=None) -> pd.DataFrame:
    """scikit-learn's per-class test report of every completed trial, long: trial, label, metric, value."""
    handle = _handle(storage, study)
    raw = handle.study.trials_dataframe(attrs=("number", "user_attrs"))
    if "user_attrs_report" not in raw:
        return pd.DataFrame(columns=["trial", "label", "metric", "value"])
    reports = raw.dropna(subset=["user_attrs_report"]).set_index("number")["user_attrs_report"]
    flat = pd.json_normalize(reports.tolist(), sep="|").set_index(reports.index.rename("trial"))
    long = flat.melt(ignore_index=False, var_name="key", value_name="value").reset_index()
    long[["label", "metric"]] = long["key"].str.split("|", n=1, expand=True)
    long["metric"] = long["metric"].fillna(long["label"])  # 'accuracy' is a bare number
    return long[["trial", "label", "metric", "value"]].sort_values(["trial", "label", "metric"],
                                                                   ignore_index=True)


def _reasons(out: pd.DataFrame, attrs: pd.DataFrame, system: pd.DataFrame, spec) -> pd.Series:
    """fail_reason or prune_reason; a FAIL without either lost its worker (heartbeat), maybe retried."""
    reason = pd.Series(pd.NA, index=out.index, dtype="object")  # a retry inherits attrs: go by state
    reason = reason.mask(out["state"] == "FAIL", attrs["fail_reason"])
    reason = reason.mask(out["state"] == "PRUNED", attrs["prune_reason"])
    lost = (out["state"] == "FAIL") & reason.isna()
    reason[lost] = f"no heartbeat for {spec.grace} s: its worker died or hung"
    if "retry_history" in system:  # trial k retried as trial n: n's history ends with k
        history = system["retry_history"].dropna()
        retried_as = pd.Series(out.loc[history.index, "trial"].to_numpy(), index=history.str[-1].astype("int64"))
        as_text = out["trial"].map(retried_as)
        has = as_text.notna()
        reason[has] = reason[has].astype("str") + "; retried as trial " + as_text[has].astype("int64").astype("str")
    return reason


def _prefixed(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    return frame.filter(regex=f"^{prefix}").rename(columns=lambda c: c[len(prefix):])


def _handle(storage, study):
    """The study's Handle from (storage, study), or from a study given alone (`study` None, the study in
    `storage`'s place): a name is looked up in $SWEEPER_STORAGE, else ./sweeper.db; an optuna Study
    without a storage is read from its own."""
    import optuna

    from sweeper import manager

    if study is None:
        storage, study = None, storage
        if isinstance(study, str) and "://" in study:
            raise TypeError(f"{urls.mask(study)!r} is a storage, not a study: pass both, e.g. "
                            f"analysis.trials({urls.mask(study)!r}, 'NAME'), or the study's name alone")
        if study is None:
            raise TypeError("no study given: pass its name, e.g. analysis.trials('quickstart')")
    if isinstance(study, manager.Handle):
        return study
    if storage is None and isinstance(study, optuna.Study):
        storage = study._storage
    storage = getattr(storage, "_backend", storage)  # Optuna's cache around an RDBStorage
    if isinstance(storage, str) or storage is None:
        return manager.open_study(_name(study), urls.resolve(storage))
    # An RDBStorage object: reuse it.
    from storage import studies

    loaded = optuna.load_study(study_name=_name(study), storage=storage)
    return manager.Handle(loaded, studies.spec_of(loaded), storage,
                          storage.engine.url.render_as_string(hide_password=False))


def _name(study) -> str:
    return study if isinstance(study, str) else study.study_name
