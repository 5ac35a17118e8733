"""A run's progress, polled once a second: a line when it changes (a log), or a bar with the time left (a terminal)."""

from __future__ import annotations

import time

import click

from storage.budget import Step


class Progress:
    """What `sweeper run` shows while its workers train. `poll()` reads the study's counts (the best
    trial again only when more trials are done: each poll shares the cores with the workers) and
    answers whether the study is finished; a database that does not answer is shown, not raised."""

    def __init__(self, handle, *, bar: bool):
        self._handle, self._started, self._last, self._best = handle, time.monotonic(), None, (None, "")
        self._bar = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=handle.spec.n_trials, desc=handle.spec.name, unit="trial", dynamic_ncols=True)

    def poll(self) -> bool:
        """Show the progress; whether the study is finished."""
        from storage import retry
        from storage.contract.errors import first_line

        try:
            counts = self._handle.counts()
            if self._best[0] != counts.done:
                from sweeper import report

                self._best = (counts.done, report.best_line(self._handle))
            running = self._running() if self._bar is not None else ""
        except Exception as exc:  # noqa: BLE001 - the workers say what they do about it; this waits
            if retry.database_error(exc) is None:
                raise
            self._show(f"the database does not answer ({first_line(exc)[:200]})")
            return False
        n_trials = self._handle.spec.n_trials
        if self._bar is not None:
            self._bar.total = counts.budget(n_trials)
            self._bar.update(counts.done - self._bar.n)
            self._bar.set_postfix_str(f"best: {self._best[1]}{running}", refresh=True)
        else:
            self._show(f"{counts.done}/{counts.budget(n_trials)} done ({counts.pruned} pruned, {counts.failed} "
                       f"failed), {counts.running} running | best: {self._best[1]}")
        return counts.next_step(n_trials) is Step.DONE

    def close(self) -> None:
        """End the bar (its last state stays on the screen)."""
        if self._bar is not None:
            self._bar.close()

    def _show(self, line: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(line, refresh=True)
        elif line != self._last:
            click.echo(f"[{time.monotonic() - self._started:6.0f} s] {line}", err=True)
            self._last = line

    def _running(self) -> str:
        """The running trials with their epoch: " | running: #4 2/10, #5 7/10"."""
        from sweeper import report

        running, last = report.running_epochs(self._handle)
        if not running:
            return ""
        return " | running: " + ", ".join(f"#{t.number} {last.get(t.number, 0)}/{self._handle.spec.epochs or '?'}"
                                          for t in running)
