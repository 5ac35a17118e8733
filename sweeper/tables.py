"""Render tables and a study's status for the terminal, or write them as CSV, JSON or Parquet."""

from __future__ import annotations

import datetime as dt
import os
import sys

import pandas as pd

from storage import epochs, urls
from storage.contract import files
from storage.contract.errors import BadInput
from storage.contract.outcome import WORKER, Outcome
from storage.contract.spec import short

WIDTH = 120  # a terminal table's lines at most (wider tables wrap their columns into blocks)
CELL = 40  # a text cell's characters at most in a terminal table (the rest as "...")


def table(frame: pd.DataFrame, wide: bool = False) -> str:
    """A plain-text table: no index, 4 significant digits, '-' for missing values; unless `wide`, text
    cells cut to CELL characters and the columns wrapped into blocks of at most WIDTH characters."""
    if frame.empty:
        return "(no rows)"
    shown = frame.copy()
    nullable = shown.select_dtypes(include=["Int64", "boolean"]).columns
    shown[nullable] = shown[nullable].astype(object).where(shown[nullable].notna(), "-")
    times = shown.select_dtypes(include=["datetime", "datetimetz"]).columns
    shown[times] = shown[times].apply(lambda col: col.dt.strftime("%Y-%m-%d %H:%M:%S"))
    text = shown.select_dtypes(include=["object", "string"]).columns
    shown[text] = shown[text].apply(lambda col: col.map(lambda v: _cell(v, wide)))
    return shown.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:.4g}",
                           line_width=None if wide else WIDTH)


def _cell(value, wide: bool):
    """A text cell for the terminal: '-' when missing, cut to CELL characters unless `wide`."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return "-"
    if not isinstance(value, str) or wide or len(value) <= CELL:
        return value
    return value[:CELL - 3] + "..."


def write(frame: pd.DataFrame, fmt: str, out: str | None, wide: bool = False) -> None:
    """Write `frame` as table (`wide`: every column on one line per row), csv, json (an array of records,
    floats to 15 significant digits) or parquet to `out`, or stdout; a file written says so on stderr.

    A file is written whole or not at all: into a temporary file beside it, then renamed over it; a
    full disk or a folder that cannot be written is BadInput, and an existing file stays as it was.
    """
    if fmt == "parquet":
        _atomic(out, lambda tmp: frame.to_parquet(tmp, index=False))
        _wrote(frame, out)
        return
    if fmt == "table":
        text = table(frame, wide) + "\n"
    elif fmt == "csv":
        text = frame.to_csv(index=False)
    else:
        text = frame.to_json(orient="records", date_format="iso", indent=1, double_precision=15) + "\n"
    if out is None:
        sys.stdout.write(text)
        return

    def write_text(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    _atomic(out, write_text)
    _wrote(frame, out)


def _wrote(frame: pd.DataFrame, out: str) -> None:
    print(f"wrote {len(frame)} rows to {out}", file=sys.stderr)


def _atomic(out: str, write_to) -> None:
    """`write_to(temporary path)` beside `out`, then the temporary file renamed to `out`."""
    try:
        files.replace_atomically(out, write_to)
    except files.NotCreated as exc:
        folder = os.path.dirname(os.path.abspath(out))
        raise BadInput(f"--out {out}: cannot write in {folder} ({exc.strerror or exc}): write elsewhere") from None
    except OSError as exc:
        raise BadInput(f"--out {out}: not written ({exc.strerror or exc}): free some space or write elsewhere; "
                       "an existing file is unchanged") from None


def status(handle) -> str:
    """What `sweeper status` prints: the spec in one line, counts, best trial, running trials."""
    spec, counts = handle.spec, handle.counts()
    lines = [f"study {spec.name}: {spec.model} on {spec.dataset}, {spec.direction} {spec.metric}, "
             f"{spec.length}, sampler {spec.sampler['name']}, pruner {spec.pruner['name']}",
             f"storage: {urls.mask(handle.url)}",
             f"trials: {counts.done} of {counts.budget} done ({counts.complete} complete, "
             f"{counts.pruned} pruned, {counts.failed} failed), {counts.running} running, {counts.waiting} waiting"
             + (f"; {counts.retried} lost and retried" if counts.retried else "")]
    lines.append("best: " + best_line(handle))
    running, last = running_epochs(handle)
    if running:
        frame = pd.DataFrame({
            "trial": [t.number for t in running],
            "epoch": [f"{last.get(t.number, 0)}/{spec.epochs or '?'}" for t in running],
            "elapsed_s": [round((dt.datetime.now(t.datetime_start.tzinfo) - t.datetime_start).total_seconds(), 1)
                          for t in running],
            WORKER: [Outcome.from_attrs(t.user_attrs).worker or "-" for t in running],
            **{p: [t.params.get(p) for t in running] for p in spec.space},
        })
        lines += ["running:", table(frame)]
    return "\n".join(lines)


def running_epochs(handle) -> tuple[list, dict[int, int]]:
    """The study's running trials, and the last epoch each has written (none: absent)."""
    from optuna.trial import TrialState

    running = handle.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return [], {}
    return running, epochs.last_epochs(handle.storage.engine, handle.study_id, [t.number for t in running])


def best_line(handle) -> str:
    """The best trial in one line: number, metric, test error, parameters; or why there is none."""
    try:
        best = handle.study.best_trial
    except ValueError:
        return "none yet (no complete trial)"
    params = " ".join(f"{k}={short(v)}" for k, v in best.params.items())
    test = Outcome.from_attrs(best.user_attrs).test_error
    return (f"trial {best.number}  {handle.spec.metric} {best.value:.4f}"
            + (f"  test_error {test:.4f}" if test is not None else "") + (f"  {params}" if params else ""))

