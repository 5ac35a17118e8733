"""A run's progress, polled once a second: a line when it changes (a log), or a bar with the time left (a terminal)."""

from __future__ import annotations

import re
import time

import click

MIN_BAR = 10  # the bar keeps at least this many characters; the text beside it is shortened instead
# tqdm's default without the rate (the time left says it); {postfix} is ", TEXT" when there is one
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
# Where a line of ours may be cut: before two spaces, " | ", ", ", or a space before a NAME=VALUE.
_BOUNDARY = re.compile(r"(?=  | \| |, | [^\s=]+=)")
_SPACE = re.compile(r"(?= )")


class Progress:
    """What `sweeper run` shows while its workers train. `poll()` reads the study's counts (the best
    trial again only when more trials are done: each poll shares the cores with the workers) and
    answers whether the study is finished; a database that does not answer, or a study deleted
    meanwhile, is shown, not raised."""

    def __init__(self, handle, *, bar: bool):
        self._handle, self._started, self._last, self._best = handle, time.monotonic(), None, (None, "")
        self._tty, self._bar = bar, None  # the bar is made at the first poll, with the stored budget
        self.uid = _uid(handle)  # the study's unique key, to tell it from a new study that took its id
        self._total, self._gone = 0, None  # trials at the last poll (fewer: deleted?); why the study is gone

    def poll(self) -> bool:
        """Show the progress; whether the study is finished."""
        from storage.budget import Step

        try:
            counts = self._handle.counts()
            if self._gone is None and counts.total < self._total:  # trials go only with their study
                self._gone = gone(self._handle, self.uid)
            self._total = counts.total
            if self._gone is not None:
                self._show(self._gone)  # its workers stop on their own, writing nothing more into it
                return False
            if self._best[0] != counts.done:
                self._best = (counts.done, best_line(self._handle, best_trial(self._handle)))
            running = self._running() if self._tty else ""
        except Exception as exc:  # noqa: BLE001 - the workers say what they do about it; this waits
            why = unreadable(self._handle, exc, self.uid)
            if why is None:
                raise
            self._show(why)
            return False
        budget = counts.budget
        if self._tty:
            self._draw(f"best: {self._best[1]}", running, counts.done, budget)
        else:
            self._show(f"{counts.done}/{budget} done ({counts.pruned} pruned, {counts.failed} "
                       f"failed), {counts.running} running | best: {self._best[1]}")
        return counts.next_step() is Step.DONE

    def close(self) -> None:
        """End the bar (its last state stays on the screen)."""
        if self._bar is not None:
            self._bar.close()

    def _show(self, line: str) -> None:
        if self._tty:
            self._draw(line, "")
        elif line != self._last:
            click.echo(f"[{time.monotonic() - self._started:6.0f} s] {line}", err=True)
            self._last = line

    def _draw(self, text: str, running: str, done: int | None = None, budget: int | None = None) -> None:
        """The bar at `done` of `budget` (default: as it was), `text` and `running` beside it, shortened
        so that the line fits the terminal with a bar of at least MIN_BAR characters."""
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=budget if budget is not None else self._handle.spec.n_trials,
                             desc=self._handle.spec.name, unit="trial", dynamic_ncols=True, bar_format=BAR_FORMAT)
        bar = self._bar
        done = bar.n if done is None else done
        budget = bar.total if budget is None else budget
        now = {**bar.format_dict, "n": done, "total": budget}
        columns = now.get("ncols")
        if columns:  # the line without its bar and text, as it will be drawn; 2 for ", " before the text
            fixed = len(bar.format_meter(**{**now, "ncols": None, "postfix": None,
                                            "bar_format": BAR_FORMAT.replace("{bar}", "")}))
            text = fit(text, running, columns - fixed - 2 - MIN_BAR)
        else:
            text += running
        bar.set_postfix_str(text, refresh=False)
        bar.total = budget
        bar.update(done - bar.n)
        bar.refresh()

    def _running(self) -> str:
        """The running trials with their epoch: " | running: #4 2/10, #5 7/10"."""
        from sweeper import tables

        running, last = tables.running_epochs(self._handle)
        if not running:
            return ""
        return " | running: " + ", ".join(f"#{t.number} {last.get(t.number, 0)}/{self._handle.spec.epochs or '?'}"
                                          for t in running)


def fit(text: str, running: str, width: int) -> str:
    """`text` (the best trial: its number and metric, then its test error and parameters) and `running`
    in at most `width` characters, cut at a boundary with '…' when needed: the running trials are kept
    over the best trial's test error and parameters, not over its number and metric."""
    if len(text) + len(running) <= width:
        return text + running
    if len("  ".join(text.split("  ")[:2])) + 1 + len(running) <= width:
        return _cut(text, width - len(running)) + running
    return _cut(text + running, width)


def _cut(text: str, width: int) -> str:
    """`text` if it fits in `width` characters, else its longest head that ends at a boundary (else at a
    space) with '…'; '' when none fits."""
    if len(text) <= width:
        return text
    for boundary in (_BOUNDARY, _SPACE):
        heads = [m.start() for m in boundary.finditer(text) if 0 < m.start() <= width - 1]
        if heads:
            return text[:heads[-1]].rstrip() + "…"
    return ""


def best_trial(handle):
    """The study's best complete trial, a tie going to the lowest trial number (as `sweeper run`'s table
    of the best trials sorts them); None when no trial is complete."""
    from optuna.trial import TrialState

    complete = handle.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    sign = 1 if handle.spec.direction == "minimize" else -1
    return min(complete, key=lambda t: (sign * t.value, t.number))


def trial(handle, number: int | None):
    """Trial `number` of the study (None: None)."""
    if number is None:
        return None
    storage = handle.storage
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(handle.study_id, number))


def best_line(handle, best) -> str:
    """tables.best_line for the trial `best` (from `best_trial`, or the first of the best trials `sweeper run`
    prints), or why there is none."""
    from types import SimpleNamespace

    from sweeper import tables

    if best is None:
        return "none yet (no complete trial)"
    return tables.best_line(SimpleNamespace(study=SimpleNamespace(best_trial=best), spec=handle.spec))


def gone(handle, uid: str | None = None) -> str | None:
    """One line when the study is no longer in its storage (deleted, or replaced by a new study of its
    name: another id, or another `uid`), else None."""
    from storage import studies, urls

    name = handle.spec.name
    try:
        study_id = handle.storage.get_study_id_from_name(name)
        replaced = study_id != handle.study_id or (uid is not None and studies.uid(handle.storage, study_id) != uid)
    except KeyError:
        replaced = None
    if replaced is False:
        return None
    return (f"study '{name}' is no longer in {urls.mask(handle.url)}: it was deleted"
            f"{' and made again' if replaced else ''} while this run trained it")


def unreadable(handle, exc: BaseException, uid: str | None = None) -> str | None:
    """Why reading the study raised `exc`, in one line, when the database does not answer or the study
    is gone; None for any other error (the caller raises it)."""
    from storage import retry
    from storage.contract.errors import first_line

    if retry.database_error(exc) is not None:
        return f"the database does not answer ({first_line(exc)[:200]})"
    try:
        return gone(handle, uid)
    except Exception as again:  # noqa: BLE001 - the database failing while it is asked
        if retry.database_error(again) is None:
            return None
        return f"the database does not answer ({first_line(again)[:200]})"


def _uid(handle) -> str | None:
    """The study's unique key (storage.studies.uid), or None when it cannot be read now."""
    from storage import studies

    try:
        return studies.uid(handle.storage, handle.study_id)
    except Exception:  # noqa: BLE001 - read again later, or never: `gone` then compares ids only
        return None
