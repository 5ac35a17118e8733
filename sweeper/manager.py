"""Studies in a storage: create one from a spec (idempotently), load one by name, count its trials."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from storage import budget, rdb, studies, urls
from storage.contract.errors import BadInput, optuna_experimental
from storage.contract.spec import Spec


@dataclass(frozen=True)
class Handle:
    """An open study: the Optuna objects, its spec, and the storage URL it lives at."""

    study: object  # optuna.Study
    spec: Spec
    storage: object  # optuna.storages.RDBStorage
    url: str

    @functools.cached_property
    def study_id(self) -> int:
        """Optuna's id of the study in this storage (read once: it never changes)."""
        return self.storage.get_study_id_from_name(self.study.study_name)

    def counts(self) -> budget.Counts:
        """The study's trials by state, with its budget (see storage.budget)."""
        return budget.counts(self.storage.engine, self.study_id, n_trials=self.spec.n_trials)


def create(spec: Spec, url: str) -> tuple[Handle, bool]:
    """Create the study of `spec` at `url`, or find the same one there; (handle, created?).

    Everything that can be wrong was checked before (spec, then the storage); if creating fails
    anyway, a new SQLite file is removed. A grid study gets its points enqueued, and its spec is
    stored last, so a worker never sees a half-made study.
    """
    import optuna

    path = urls.sqlite_path(url)
    new_file = path is not None and not path.exists()
    storage = rdb.open_storage(url, create=True)
    try:
        try:
            existing = optuna.load_study(study_name=spec.name, storage=storage)
        except KeyError:
            existing = None
        if existing is not None:
            return Handle(existing, _same(existing, spec, storage, url), storage, url), False
        try:
            study = optuna.create_study(storage=storage, study_name=spec.name, direction=spec.direction)
        except optuna.exceptions.DuplicatedStudyError:  # created by another process just now
            study = optuna.load_study(study_name=spec.name, storage=storage)
            return Handle(study, _same(study, spec, storage, url), storage, url), False
        with optuna_experimental():
            study.set_metric_names([spec.metric])
        for point in spec.grid_points()[:spec.n_trials] if spec.is_grid else spec.enqueue:  # first, in order
            study.enqueue_trial(point)
        studies.set_uid(storage, study._study_id)
        studies.save_spec(study, spec)
        return Handle(study, spec, storage, url), True
    except BaseException:
        if new_file:
            storage.engine.dispose()
            for suffix in ("", "-wal", "-shm", "-journal"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            urls.sqlite_lock_file(path).unlink(missing_ok=True)
        raise


def open_study(name: str, url: str) -> Handle:
    """Load the study `name` at `url` with its spec; BadInput naming the known studies if missing."""
    study, spec, storage = studies.load(name, url)
    return Handle(study, spec, storage, url)


def more_points(handle: Handle, n_trials: int) -> None:
    """Raise a grid study's budget to its first `n_trials` points (seed by seed: more seeds of every
    configuration), queueing the points it did not hold yet; nothing when it holds them already."""
    points = handle.spec.grid_points()
    with budget.lock(handle.storage.engine, handle.study_id) as held:  # no trial starts meanwhile
        before = budget.counts(held.bind, handle.study_id, n_trials=handle.spec.n_trials).budget
        if n_trials <= before:
            return
        for point in points[before:n_trials]:
            handle.study.enqueue_trial(point)
        budget.extend(handle.storage, handle.study_id, n_trials)


def extend(handle: Handle, n_trials: int) -> budget.Counts:
    """Set the study's budget to `n_trials` (running workers take it at their next trial); the counts
    before. BadInput for a grid study (its trials are its points) or a budget below the trials done."""
    name = handle.spec.name
    if handle.spec.is_grid:
        raise BadInput(f"study '{name}' is a grid: its {handle.spec.n_trials} trials are its points; to run more, "
                       "create a study with more values or repeats")
    with budget.lock(handle.storage.engine, handle.study_id) as held:  # no trial starts meanwhile
        counts = budget.counts(held.bind, handle.study_id, n_trials=handle.spec.n_trials)
        floor = counts.done + counts.running + counts.waiting
        if n_trials < floor:
            raise BadInput(f"study '{name}' has {counts.done} trials done, {counts.running} running and "
                           f"{counts.waiting} queued: --n-trials must be at least {floor}")
        budget.extend(handle.storage, handle.study_id, n_trials)
    return counts


class Enqueued(tuple):
    """What enqueue_best did: (the configurations queued, the parameters not copied) as before, and
    `skipped`, the configurations left out because the study already holds them."""

    skipped: list


def enqueue_best(handle: Handle, other: Handle, top: int) -> Enqueued:
    """Queue the `top` best complete trials of `other` in `handle`'s study, to run first; (the configurations
    queued, the parameters of `other` not copied since this study does not search them), with `.skipped`:
    those already queued, running or done (complete or pruned) in this study, left out. A parameter
    `other` fixed and this study searches takes `other`'s value. BadInput, nothing queued, for a value
    outside this study's space, for more configurations than its budget leaves room for, or when
    every one is skipped."""
    import math

    import optuna

    spec, theirs = handle.spec, other.spec
    best = sorted(other.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
                  key=lambda t: t.value, reverse=theirs.direction == "maximize")[:top]
    if not best:
        raise BadInput(f"study '{theirs.name}' has no complete trial to copy: run it first")
    known = {**theirs.fixed}
    wanted, dropped = [], set()
    for trial in best:
        values = {**known, **trial.params}
        dropped |= {k for k, v in values.items() if k not in spec.space and spec.fixed.get(k) != v}
        params = spec.in_space({k: v for k, v in values.items() if k in spec.space},
                               f"trial {trial.number} of '{theirs.name}'")
        if params not in wanted:
            wanted.append(params)

    def same(a, b) -> bool:
        if isinstance(a, float) or isinstance(b, float):
            return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-12)
        return a == b

    held_states = {optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING,
                   optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    with budget.lock(handle.storage.engine, handle.study_id) as held:  # no trial starts meanwhile
        held_params = [t.system_attrs.get("fixed_params") or t.params
                       for t in handle.study.get_trials(deepcopy=False) if t.state in held_states]
        skipped = [p for p in wanted if any(all(k in h and same(v, h[k]) for k, v in p.items()) for h in held_params)]
        queued = [p for p in wanted if p not in skipped]
        if not queued:
            raise BadInput(f"the {len(skipped)} best configuration(s) of '{theirs.name}' are already queued, running "
                           f"or done in study '{spec.name}': nothing queued (a larger --top takes the next ones)")
        counts = budget.counts(held.bind, handle.study_id, n_trials=spec.n_trials)
        room = counts.budget - counts.done - counts.running - counts.waiting
        if len(queued) > room:
            raise BadInput(f"study '{spec.name}' has room for {max(room, 0)} more trial(s), not {len(queued)}: "
                           f"raise its budget first (sweeper extend {spec.name} --n-trials N) or copy fewer (--top)")
        for params in queued:
            handle.study.enqueue_trial(params)
    result = Enqueued((queued, sorted(dropped)))
    result.skipped = skipped
    return result


def export(handle: Handle, number: int | None, out: str):
    """Write trial `number`'s kept weights (the best trial's if None) to `out`, whole or not at all; the
    trial. BadInput when the trial or its weights are not there, saying which trials have them."""
    import shutil

    import optuna

    from storage import artifacts
    from storage.contract import files

    store = artifacts.store(handle.url)
    if store is None:
        raise BadInput(artifacts.not_kept_reason(handle.url))
    trials = handle.study.get_trials(deepcopy=False)
    name = handle.spec.name
    if number is None:
        try:
            trial = handle.study.best_trial
        except ValueError:
            raise BadInput(f"study '{name}' has no complete trial yet: run it first") from None
    elif number >= len(trials):
        raise BadInput(f"study '{name}' has no trial {number}: its trials are 0 to {len(trials) - 1}"
                       if trials else f"study '{name}' has no trial {number}: it has none yet")
    else:
        trial = trials[number]

    def kept(t) -> list:
        return [m for m in optuna.artifacts.get_all_artifact_meta(t, storage=handle.storage)
                if m.filename == artifacts.NAME]

    metas = kept(trial)
    if not metas:
        have = [t.number for t in trials if t.state.name == "COMPLETE" and kept(t)]
        raise BadInput(f"trial {trial.number} of study '{name}' has no kept weights ([study] keep = "
                       f"\"{handle.spec.keep}\"); trials with weights: {', '.join(map(str, have)) or 'none'}")
    def download(tmp: str) -> None:  # Optuna's download_artifact refuses a path that exists: its reader
        with store.open_reader(metas[-1].artifact_id) as reader, open(tmp, "wb") as writer:
            shutil.copyfileobj(reader, writer)

    try:
        files.replace_atomically(out, download)
    except (FileNotFoundError, optuna.artifacts.exceptions.ArtifactNotFound):
        raise BadInput(f"trial {trial.number}'s weights are listed but their file is missing from "
                       f"{artifacts.folder(handle.url)}: set {artifacts.ENV} to where the workers kept them") from None
    except OSError as exc:
        raise BadInput(f"cannot write {out}: {exc.strerror or exc}: free some space or write elsewhere") from None
    return trial


DELETE_TRIES = 20


def delete(handle: Handle) -> tuple[int, int]:
    """Delete the study with its epoch rows, kept weights and checkpoints; (epoch rows, weight files)
    removed. The epoch rows go first, in the study's last moments: once Optuna's study is gone, SQLite
    may give its trial ids to another study's new trials, whose rows must not meet these."""
    import optuna

    from storage import artifacts, epochs

    store = artifacts.existing(handle.url)
    kept = [m.artifact_id for t in handle.study.get_trials(deepcopy=False)
            for m in optuna.artifacts.get_all_artifact_meta(t, storage=handle.storage)] if store else []
    key = studies.uid(handle.storage, handle.study_id)
    rows = epochs.remove(handle.storage.engine, handle.study_id)
    for _ in range(DELETE_TRIES):  # Optuna gives up silently when a running worker's write meets the delete
        optuna.delete_study(study_name=handle.spec.name, storage=handle.storage)
        if studies.gone(handle.storage.engine, handle.study_id, key):
            break
        rows += epochs.remove(handle.storage.engine, handle.study_id)
        time.sleep(0.2)
    else:
        raise BadInput(f"study '{handle.spec.name}' could not be deleted while its workers write: stop them "
                       f"first (sweeper stop {handle.spec.name}), then delete it")
    for artifact_id in kept:
        try:
            store.remove(artifact_id)
        except Exception:  # noqa: BLE001 - already gone (removed by hand): nothing left to remove
            pass
    if store is not None:  # the training states its running or failed trials left (workers/checkpoints.py)
        for path in artifacts.checkpoints(artifacts.folder(handle.url), key):
            path.unlink(missing_ok=True)
    return rows, len(kept)


def never_started(study) -> bool:
    """Whether no trial of the study ever started (only queued ones, if any)."""
    from optuna.trial import TrialState

    return all(t.state == TrialState.WAITING for t in study.get_trials(deepcopy=False))


def _same(study, spec: Spec, storage, url: str) -> Spec:
    """The stored spec of an existing study, refused when it trains other trials than `spec`; when only
    its description differs (claims, references, title...), the study takes `spec`'s, and claims it had
    verdicts for are kept as superseded."""
    stored = studies.spec_of(study)
    old, new = stored.search_attr(), spec.search_attr()
    if old != new:
        diff = [k for k, v in new.items() if old.get(k) != v]
        raise BadInput(f"study '{spec.name}' already exists in {urls.mask(url)} with a different spec "
                       f"({', '.join(diff)} differ): choose another --name, or delete it first "
                       f"(sweeper delete {spec.name} --storage URL)")
    if not stored.same_as(spec):
        _supersede(Handle(study, stored, storage, url), spec)
        studies.save_spec(study, spec)
        return spec
    return stored


SUPERSEDED = "sweeper_superseded"  # the study user attr: earlier claims and the verdicts they had
SUPERSEDED_COLUMNS = ("post", "origin", "claim", "metric", "x", "y", "target", "n", "effect", "effect_low",
                      "effect_high", "p_value", "verdict", "note")


def superseded(study) -> list[dict]:
    """The claims a study had before its claims changed, each change as {"replaced": ISO time, "digest",
    "by": the new digest, "claims": [rows of SUPERSEDED_COLUMNS]}, oldest first."""
    return list(study.user_attrs.get(SUPERSEDED, []))


def _supersede(old: Handle, spec: Spec) -> None:
    """Keep `old`'s claims and their verdicts in the study when `spec` changes them after trials finished."""
    import datetime
    import json

    from sweeper import analysis, claims
    from sweeper.evidence import digest

    before, after = digest(old.spec.claims), digest(spec.claims)
    if before == after or not old.spec.claims:
        return
    trials = analysis.trials(old)
    if not (trials["state"] == "COMPLETE").any():
        return
    frame = claims.claims(old, trials, analysis.epochs(old))
    rows = json.loads(frame[list(SUPERSEDED_COLUMNS)].to_json(orient="records"))  # NaN as null
    when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    entry = dict(replaced=when, digest=before, by=after, claims=rows)
    old.study.set_user_attr(SUPERSEDED, superseded(old.study) + [entry])


def study_list(url: str):
    """One row per study at `url`: name, model, dataset, metric, trials done of the budget, best value."""
    import optuna
    import pandas as pd

    storage = rdb.open_storage(url)
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=True):
        attr = summary.user_attrs.get(studies.ATTR, {})
        counts = budget.counts(storage.engine, storage.get_study_id_from_name(summary.study_name),
                               n_trials=attr.get("n_trials"))
        best = summary.best_trial
        rows.append(dict(study=summary.study_name, model=attr.get("model"), dataset=attr.get("dataset"),
                         metric=attr.get("metric"), done=counts.done,
                         n_trials=None if attr.get("n_trials") is None else counts.budget,
                         running=counts.running, best=None if best is None else best.value,
                         best_trial=None if best is None else best.number,
                         created=summary.datetime_start))
    frame = pd.DataFrame(rows, columns=["study", "model", "dataset", "metric", "done", "n_trials", "running",
                                        "best", "best_trial", "created"])
    return frame.astype({"n_trials": "Int64", "best_trial": "Int64"})
