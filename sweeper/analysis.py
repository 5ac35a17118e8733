"""Tables of a study for people and pandas: one row per trial, one row per epoch, curves, per-class reports,
statistics per configuration, claims. From Python, `open` is the way in:

    from sweeper import analysis
    study = analysis.open("quickstart", storage="sqlite:///sweeper.db")
    study = analysis.open("quickstart")  # in $SWEEPER_STORAGE, else ./sweeper.db
    trials, epochs = study.trials(), study.epochs()
    stats = analysis.open("blog.penalties.l2").config_stats()  # per configuration, over seeds
    claims = analysis.open("blog.penalties.l2").claims()        # a verdict per claim

The functions beside it take a study already open (sweeper.manager.Handle): what the rest of sweeper calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from storage import epochs as epoch_table
from storage import urls
from storage.contract.outcome import FIGURES, SHARED_FROM, TEST_ERROR, WORKER, Outcome
from storage.contract.spec import SEED

# After `trial`, `state` and one column per searched parameter (in the spec's order). The trial's
# outcome (storage.contract.outcome) gives the figures' columns, named as its record's fields.
TRIAL_COLUMNS = ("valid_error", TEST_ERROR, *(k for k in FIGURES if k != "valid_error"), "reason", "retry_of",
                 SHARED_FROM, WORKER, "started", "finished")
EPOCH_COLUMNS = ("trial", "epoch") + epoch_table.COLUMNS
_TYPES = {int: "Int64", float: "float64", bool: "boolean"}  # a figure's column type, by its Python type
_ATTRS = ("number", "state", "value", "datetime_start", "datetime_complete", "params", "user_attrs",
          "system_attrs")


def open(name: str, storage: str | None = None) -> StudyTables:
    """Study `name` at the database URL `storage` (default: $SWEEPER_STORAGE, else sqlite:///sweeper.db), opened
    to read its tables; BadInput naming the studies there when it is missing."""
    from sweeper import manager

    if not isinstance(name, str) or "://" in name:
        shown = urls.mask(name) if isinstance(name, str) else type(name).__name__
        raise TypeError(f"{shown!r} is not a study's name: pass the name, and the database URL as storage, e.g. "
                        "analysis.open('quickstart', storage='sqlite:///sweeper.db')")
    if storage is not None and not isinstance(storage, str):
        raise TypeError(f"storage is a database URL, not a {type(storage).__name__}: e.g. "
                        f"analysis.open({name!r}, storage='sqlite:///sweeper.db')")
    return StudyTables(manager.open_study(name, urls.resolve(storage)))


@dataclass(frozen=True)
class StudyTables:
    """A study opened by `open`: each method reads one of its tables afresh (columns: docs/sweep.md and
    docs/reproduce.md)."""

    handle: object  # sweeper.manager.Handle: the Optuna study, its spec, storage and URL

    def trials(self) -> pd.DataFrame:
        """One row per trial (see `trials` below)."""
        return trials(self.handle)

    def epochs(self) -> pd.DataFrame:
        """One row per trial and epoch (see `epochs` below)."""
        return epochs(self.handle)

    def curves(self, column: str = "valid_error") -> pd.DataFrame:
        """One column of the epoch table, index epoch, one column per trial (see `curves` below)."""
        return curves(self.handle, column)

    def reports(self) -> pd.DataFrame:
        """Per-class test reports, long (see `reports` below)."""
        return reports(self.handle)

    def config_stats(self, by: str | list[str] | None = None) -> pd.DataFrame:
        """One row per configuration (or per value of `by`), over seeds (see `config_stats` below)."""
        return config_stats(self.handle, by)

    def references(self) -> pd.DataFrame:
        """One row per [[reference]] of the study (see `references` below)."""
        return references(self.handle)

    def claims(self) -> pd.DataFrame:
        """One row per [[claim]] of the study, with its verdict (see `claims` below)."""
        return claims(self.handle)

    def test_flags(self) -> dict:
        """{trial number: right or not per test image} (see `test_flags` below)."""
        return test_flags(self.handle)


def trials(handle) -> pd.DataFrame:
    """One row per trial: number, state, parameters, errors, epochs run, seconds, why it failed or was pruned.

    Columns: see TRIAL_COLUMNS and docs/sweep.md. A study whose metric is not valid_error also gets a
    column named after its metric (the value Optuna optimises).
    """
    spec = handle.spec
    raw = handle.study.trials_dataframe(attrs=_ATTRS)
    if raw.empty:
        raw = pd.DataFrame({"number": pd.Series(dtype="int64"), "state": pd.Series(dtype="str"),
                            "value": pd.Series(dtype="float64")})
    outcome = _outcome(raw)
    system = _prefixed(raw, "system_attrs_")
    params = _prefixed(raw, "params_")
    params = params.reindex(columns=[*spec.space, *(p for p in params if p not in spec.space)])
    if SEED not in params:  # one training seed for every trial: a column all the same
        params[SEED] = spec.seed
    values = raw.filter(regex="^value")  # Optuna names it after the metric: value_valid_error
    value = (values.iloc[:, 0] if values.shape[1] else pd.Series(pd.NA, index=raw.index)).astype("float64")
    out = pd.DataFrame({"trial": raw["number"].astype("int64"), "state": raw["state"].astype("str")})
    out = out.join(params)
    # The objective's value is the metric of the kept epoch (pruned: of the last); failed: the last epoch's.
    out["valid_error"] = (value if spec.metric == "valid_error" else 1.0 - value).fillna(outcome["valid_error"])
    out = out.join(outcome.drop(columns="valid_error"))
    out["reason"] = _reasons(out, system, spec)
    out["retry_of"] = (pd.to_numeric(system["failed_trial"]).astype("Int64") if "failed_trial" in system
                       else pd.Series(pd.NA, index=out.index, dtype="Int64"))
    out["started"], out["finished"] = raw.get("datetime_start"), raw.get("datetime_complete")
    columns = ["trial", "state", *params, *TRIAL_COLUMNS]
    if spec.metric != "valid_error":
        out[spec.metric] = value
        columns.insert(columns.index("valid_error") + 1, spec.metric)
    return out[columns].reset_index(drop=True)


def test_flags(handle) -> dict:
    """{trial number: bool per test image, right or not} of the trials that stored them (workers since the
    `test_correct` attr): what a paired bootstrap over test images needs."""
    from storage.contract import flags

    out = {}
    for t in handle.study.get_trials(deepcopy=False):
        got = flags.unpack(Outcome.from_attrs(t.user_attrs).test_correct)
        if got is not None:
            out[t.number] = got
    return out


def epochs(handle) -> pd.DataFrame:
    """The long table of per-epoch metrics: trial, epoch, train_loss, train_error, valid_error, lr, seconds."""
    return epoch_table.read(handle.storage.engine, handle.study_id)


def config_stats(handle, by: str | list[str] | None = None) -> pd.DataFrame:
    """One row per configuration (or per value of the `by` parameters): n, diverged, and for validation
    accuracy, test accuracy, final train loss and epochs run the mean, standard deviation and 95 % t
    interval over seeds; beside them the posts' figures and whether they lie inside (docs/reproduce.md)."""
    from sweeper import measures

    return measures.config_stats(handle, _measures(handle), by=[by] if isinstance(by, str) else by)


def references(handle) -> pd.DataFrame:
    """One row per [[reference]] of the study: the post's figure beside our mean and interval."""
    from sweeper import measures

    trials_, epochs_ = trials(handle), epochs(handle)

    def at(epoch=None, step=None):
        return measures.measures(handle, trials_, epochs_, epoch=epoch, step=step)

    return measures.references(handle, measures.measures(handle, trials_, epochs_), at=at)


def claims(handle) -> pd.DataFrame:
    """One row per [[claim]]: effect, its 95 % interval, p over seeds, verdict (docs/reproduce.md)."""
    from sweeper import claims as verdicts

    return verdicts.claims(handle, trials(handle), epochs(handle))


def _measures(handle) -> pd.DataFrame:
    from sweeper.measures import measures

    return measures(handle, trials(handle), epochs(handle))


def curves(handle, column: str = "valid_error") -> pd.DataFrame:
    """One column of the epoch table in wide form: index epoch, one column per trial (for plotting)."""
    return epochs(handle).pivot(index="epoch", columns="trial", values=column)


def reports(handle) -> pd.DataFrame:
    """scikit-learn's per-class test report of every completed trial, long: trial, label, metric, value."""
    reports = pd.Series({t.number: r for t in handle.study.get_trials(deepcopy=False)
                         if (r := Outcome.from_attrs(t.user_attrs).report) is not None}, dtype="object")
    if reports.empty:
        return pd.DataFrame(columns=["trial", "label", "metric", "value"])
    flat = pd.json_normalize(reports.tolist(), sep="|").set_index(reports.index.rename("trial"))
    long = flat.melt(ignore_index=False, var_name="key", value_name="value").reset_index()
    long[["label", "metric"]] = long["key"].str.split("|", n=1, expand=True)
    long["metric"] = long["metric"].fillna(long["label"])  # 'accuracy' is a bare number
    return long[["trial", "label", "metric", "value"]].sort_values(["trial", "label", "metric"],
                                                                   ignore_index=True)


def _outcome(raw: pd.DataFrame) -> pd.DataFrame:
    """The trials' columns that their outcomes give (storage.contract.outcome), read by state (a retry
    inherits attrs): the figures, test error, worker, reason, and the run it took ("study#trial")."""
    attrs = _prefixed(raw, "user_attrs_")
    rows = attrs.to_dict("records") if len(attrs.columns) else [{} for _ in range(len(raw))]
    outcomes = [Outcome.from_attrs({k: v for k, v in row.items() if not _missing(v)}, state)
                for row, state in zip(rows, raw["state"])]
    frame = pd.DataFrame({k: [getattr(o, k) for o in outcomes] for k in FIGURES}, index=raw.index)
    frame = frame.astype({k: _TYPES[kind] for k, kind in FIGURES.items()})
    for name in (TEST_ERROR, WORKER, "reason"):
        frame[name] = _column([getattr(o, name) for o in outcomes], raw.index)
    frame[TEST_ERROR] = frame[TEST_ERROR].astype("float64")
    frame[SHARED_FROM] = pd.Series([f"{o.shared_from['study']}#{o.shared_from['trial']}"
                                    if isinstance(o.shared_from, dict) else pd.NA for o in outcomes],
                                   index=raw.index, dtype="object")
    return frame


def _missing(value) -> bool:
    """Whether a cell of trials_dataframe's stands for an attr the trial does not have (NaN)."""
    return isinstance(value, float) and value != value


def _column(values: list, index: pd.Index) -> pd.Series:
    """A column of the trials' `values`, NaN where None (as trials_dataframe leaves a missing attr)."""
    return pd.Series([float("nan") if v is None else v for v in values], index=index)


def _reasons(out: pd.DataFrame, system: pd.DataFrame, spec) -> pd.Series:
    """Why it failed or was pruned; a FAIL without a reason lost its worker (heartbeat), maybe retried."""
    reason = pd.Series(pd.NA, index=out.index, dtype="object").mask(out["state"].isin(("FAIL", "PRUNED")),
                                                                    out["reason"])
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
