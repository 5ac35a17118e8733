"""`sweeper reproduce`: create and run the shipped studies of the posts' explorations, then write their report.

Each shipped study (studies/blog/*.toml) belongs to one section, named by topic. A run names its studies
after what it overrides (`blog.init.mnist.r3.e5`: data set, seeds, epochs), so that running it again with
the same options finds them and runs only what is not done yet.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import click

from storage.budget import Step
from storage.contract import datasets
from storage.contract.errors import BadInput, did_you_mean
from storage.contract.options import WorkerOptions
from storage.contract.spec import length_words
from sweeper import power
from sweeper.power import DEFAULT_CAP

# The sections of the posts, by topic, in the order the report shows them.
SECTIONS = {
    "tutorial": "The Theano tutorial MLP step by step: fixed rate, linear schedule, RMSprop, dropout",
    "init": "Why an MLP does not learn: weights uniform in [0, 1), in [-1, 1], or Glorot's",
    "patience": "Early stopping by patience against a fixed number of epochs",
    "penalties": "L2, L1 and elastic-net penalties, from none to too strong",
    "rates": "Learning rates: SGD decay, Adam's rate and decay, the moving average of the weights",
    "architecture": "Hidden width, one or two hidden layers, activation functions",
    "dropout": "Dropout on the input and hidden layers, with and without penalties",
    "lenet": "LeNet-5: SGD at 0.01 and 0.001 against Adam at 0.001",
    "toy": "Every optimizer on a toy problem: 100 random 2-D points with XOR-like labels, 3 hidden units",
}
STUDIES = Path(__file__).resolve().parent.parent / "studies" / "blog"
MNIST_LIKE = ("mnist",)  # the shipped studies' data set that --dataset replaces (the toy study keeps xor)


@dataclass(frozen=True)
class Planned:
    """One shipped study as this run will create it."""

    section: str
    path: Path
    spec: object  # storage.contract.spec.Spec
    pilot: int | None = None  # --repeats auto: the seeds run first, from which power.choose decides the rest
    cap: int | None = None  # --repeats auto: the most seeds per configuration
    table: dict | None = None  # the TOML tables it was parsed from, overrides applied ([tune] builds on them)
    post_length: str | None = None  # the post's length when the run is another one
    matched: int = 0  # --repeats auto: at least the seeds of the study this one is set beside (NAME.tuned)


def shipped(folder: Path = STUDIES) -> list[tuple[Path, dict]]:
    """The shipped studies as (path, TOML data), in the order of SECTIONS, then of their file names."""
    if not folder.is_dir():
        raise BadInput(f"no shipped studies in {folder}: run sweeper from its source checkout (pip install -e .)")
    found = []
    for path in sorted(folder.glob("*.toml")):
        with path.open("rb") as f:
            data = tomllib.load(f)
        study = data.get("study", {})
        if study.get("section") not in SECTIONS:
            raise BadInput(f"{path}: [study] section {study.get('section')!r} is not one of {', '.join(SECTIONS)}")
        if not isinstance(study.get("name"), str):
            raise BadInput(f"{path}: [study] has no name: add name = \"blog.TOPIC\"")
        twin = next((p for p, d in found if d["study"]["name"] == study["name"]), None)
        if twin is not None:
            raise BadInput(f"{path} and {twin} are both named {study['name']!r}: rename one")
        found.append((path, data))
    return sorted(found, key=lambda item: list(SECTIONS).index(item[1]["study"]["section"]))


def plan(sections: list[str], *, dataset: str | None = None, repeats: int | str | None = None,
         epochs: int | None = None, fraction: float | None = None, cap: int = DEFAULT_CAP,
         tune_budget: int | None = None, folder: Path = STUDIES) -> list[Planned]:
    """The studies of `sections` (all when empty) with the overrides applied, checked, not yet created.

    Each study trains the post's own length unless `epochs` caps it (N epochs each, a quick look) or
    `fraction` scales it; such a run is another length than the post's, and its report says so.
    `repeats`: seeds per configuration; None: each study's own; "auto": each study's own as a pilot,
    then as many more, up to `cap`, as the effects its post claims need (`run` decides, sweeper.power).
    `tune_budget` caps each [tune] search at that many trials per configuration (a quick look; the study's
    name then ends in `.t{N}`, so that it is not taken for the study tuned in full)."""
    if tune_budget is not None and (isinstance(tune_budget, bool) or not isinstance(tune_budget, int)
                                    or tune_budget < 1):
        raise BadInput(f"--tune-budget {tune_budget} is invalid: use a whole number of trials from 1")
    for section in sections:
        if section not in SECTIONS:
            hint = did_you_mean(section, SECTIONS, otherwise="")
            raise BadInput(f"unknown section {section!r}: " + (f"{hint} " if hint else "")
                           + "sweeper reproduce --list shows them")
    if dataset is not None:
        dataset = datasets.check(dataset)
    if fraction is not None and epochs is not None:
        raise BadInput("--fraction scales the posts' lengths and --epochs caps them: use one of them")
    if fraction is not None and not 0 < fraction <= 1:
        raise BadInput(f"--fraction {fraction:g} is invalid: use a share of the posts' lengths in (0, 1]")
    out = []
    for path, data in shipped(folder):
        study = dict(data["study"])
        if sections and study["section"] not in sections:
            continue
        if dataset is not None and study.get("dataset", "digits") in MNIST_LIKE:
            study["dataset"] = dataset
        pilot = None
        if repeats == "auto" and study.get("repeats", 1) < cap:
            pilot = study.get("repeats", 1)
            study["repeats"] = cap
        elif repeats is not None and repeats != "auto":
            study["repeats"] = repeats
        post_length = _length(study)
        if epochs is not None and (study.get("epochs") is None or epochs < study["epochs"]):
            study.pop("steps", None)
            study["epochs"] = epochs
        elif fraction is not None and fraction < 1:
            unit = "steps" if "steps" in study else "epochs"
            if isinstance(study.get(unit), int):
                study[unit] = max(1, round(study[unit] * fraction))
        study["name"] = _name(study, pilot)
        tune = dict(data.get("tune", {}))
        if tune_budget is not None and isinstance(tune.get("budget"), int) and tune["budget"] > tune_budget:
            tune["budget"] = tune_budget
            study["name"] += f".t{tune_budget}"
        try:
            out.append(_planned(path, {**data, "study": study, **({"tune": tune} if tune else {})}, pilot, cap,
                                post_length if _length(study) != post_length else None))
        except BadInput as exc:
            raise BadInput(f"{path.name}: {exc}") from None
    return out


def _planned(path: Path, table: dict, pilot: int | None, cap: int, post_length: str | None) -> Planned:
    """A study parsed from its TOML tables; with a pilot, its budget is the pilot's seeds (the grid holds
    every seed up to the cap, which power decides on later)."""
    from sweeper import toml_spec

    spec = toml_spec.parse(table, post_length=post_length)
    if pilot is not None:
        spec = replace(spec, n_trials=spec.n_trials // cap * pilot)
    return Planned(table["study"]["section"], path, spec, pilot, cap if pilot is not None else None, table,
                   post_length)


def _length(study: dict) -> str:
    """A [study] table's length in words, as Spec.length writes it (what the table holds is checked later)."""
    steps, epochs = study.get("steps"), study.get("epochs")
    if isinstance(steps, int):
        return length_words(None, steps)
    return length_words(epochs, None) if isinstance(epochs, int) else str(epochs)


def listing() -> str:
    """`sweeper reproduce --list`: each section with its line and its studies."""
    by_section = {}
    for path, data in shipped():
        by_section.setdefault(data["study"]["section"], []).append(data["study"]["name"])
    width = max(map(len, SECTIONS))
    return "\n".join(f"{name:<{width}}  {line} ({', '.join(by_section.get(name, [])) or 'no study'})"
                     for name, line in SECTIONS.items())


def run(planned: list[Planned], url: str, *, n_workers: int,
        options: WorkerOptions = WorkerOptions()) -> tuple[int, list]:
    """Create and run each planned study with `n_workers` workers here; (exit code, [(section, handle)]).

    A study already done is not run again. The first study that does not finish (Ctrl-C, a worker's
    error) ends the run with its code.
    """
    import optuna

    from storage import rdb, urls
    from sweeper import runner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check(planned, url)
    if urls.sqlite_path(url) is not None and n_workers > runner.SQLITE_FEW:
        _echo(f"warning: {rdb.SQLITE_SHARED}")
    done = []
    for i, item in enumerate(planned, 1):
        run_one = functools.partial(_study, url=url, n_workers=n_workers, options=options)
        code, handle = run_one(item, f"[{i}/{len(planned)}] {item.section}")
        if code == 0 and item.spec.tune:
            done.append((item.section, handle))
            code, handle = _isolate(item, handle, run_one, f"[{i}/{len(planned)}] {item.section}")
        if code != 0:
            return code, done
        done.append((item.section, handle))
    return 0, done


def _study(item: Planned, where: str, *, url: str, n_workers: int, options: WorkerOptions) -> tuple[int, object]:
    """Create the planned study (or find it), run what it lacks, then (seeds by power) its more seeds;
    (exit code, handle)."""
    from sweeper import manager

    spec = item.spec
    handle, created = manager.create(spec, url)
    counts = handle.counts()
    head = f"{where}: {spec.name} ({spec.n_trials} trials, {spec.length})"
    if counts.next_step() is Step.DONE:
        _echo(f"{head}: done already, {counts.done} trials")
    else:
        _echo(f"{head}: {'created' if created else f'{counts.done} done, going on'}")
        code = _run_workers(handle, url, n_workers, options, head)
        if code != 0:
            return code, handle
    if item.pilot is not None:
        return _more_seeds(item, handle, url, n_workers, options, head), handle
    return 0, handle


def _isolate(item: Planned, fixed, run_one, where: str) -> tuple[int, object]:
    """[tune]: run each configuration's tuning study, then NAME.tuned, every configuration at its best
    setting with the seeds; (exit code, the tuned study's handle). The tuned study records which studies
    it comes from (isolation.LINK) for its report."""
    from sweeper import analysis, isolation

    keys = isolation.tuned(item.spec)
    names, best = [], []
    for table in isolation.tuning_tables(item.table, item.spec):
        code, handle = run_one(_planned(item.path, table, None, 0, None), where)
        if code != 0:
            return code, handle
        names.append(handle.spec.name)
        best.append(isolation.best_setting(analysis.trials(handle), keys))
    tuned = _planned(item.path, isolation.tuned_table(item.table, item.spec, best), item.pilot, item.cap or 0,
                     item.post_length)
    chosen = power.Choice.from_attr(fixed.study.user_attrs.get(power.ATTR))
    tuned = replace(tuned, matched=chosen.seeds if chosen else 0)  # side by side at equal seeds
    code, handle = run_one(tuned, where)
    handle.study.set_user_attr(isolation.LINK, {
        "fixed": item.spec.name, "tuning": names, "best": best,
        "post": [isolation.post_setting(item.table, c, keys) for c in item.spec.configs()]})
    return code, handle


def _run_workers(handle, url: str, n_workers: int, options: WorkerOptions, head: str) -> int:
    """Run the study's workers here until its budget is done; their exit code."""
    from sweeper import runner

    started = time.monotonic()
    workers = runner.start(handle.spec, url, n_workers=n_workers, options=options)
    code = runner.run(handle, workers, quiet=True)
    _echo(f"{head}: finished in {time.monotonic() - started:.0f} s")
    return code


def _more_seeds(item: Planned, handle, url: str, n_workers: int, options: WorkerOptions, head: str) -> int:
    """--repeats auto: choose the study's seeds from its pilot (stored as the study's user attr power.ATTR),
    raise its budget to them and run what that adds."""
    from sweeper import manager

    choice = power.pilot_choice(handle, item.pilot, item.cap, item.matched)
    handle.study.set_user_attr(power.ATTR, choice.to_attr())
    wanted = item.spec.n_trials // item.pilot * choice.seeds
    counts = handle.counts()
    if counts.budget >= wanted and counts.next_step() is Step.DONE:
        return 0
    manager.more_points(handle, wanted)
    _echo(f"{head}: {choice.words()}")
    return _run_workers(handle, url, n_workers, options, head)


def check(planned: list[Planned], url: str) -> None:
    """Refuse, before anything is created or run, a planned study that exists at `url` with other
    trials (other options under the same name) or that is stopped (sweeper stop)."""
    import optuna

    from storage import budget, rdb, studies, urls

    if not rdb.has_studies(url):
        return
    storage = rdb.open_storage(url)
    for item in planned:
        try:
            study = optuna.load_study(study_name=item.spec.name, storage=storage)
        except KeyError:
            continue
        stored = studies.spec_of(study)
        if not stored.same_search(item.spec):
            raise BadInput(f"study '{item.spec.name}' exists in {urls.mask(url)} with other trials (its shipped "
                           f"spec changed since): delete it first (sweeper delete {item.spec.name} "
                           "--storage URL), or use another --storage")
        budget.counts(storage.engine, storage.get_study_id_from_name(item.spec.name)).refuse_stopped(item.spec.name)


def with_earlier(everything: list[Planned], done: list, url: str) -> list:
    """`done` ([(section, handle)] of this run) with the studies of `everything` (every section, planned
    with this run's options) that an earlier run left in the storage with finished trials, in the
    sections' order: a report of part of the sections still shows the others done before."""
    import optuna

    from sweeper import isolation, manager

    ran = {handle.spec.name: (section, handle) for section, handle in done}
    try:
        stored = {s.study_name for s in optuna.get_all_study_summaries(url, include_best_trial=False)}
    except Exception:  # noqa: BLE001 - an empty or new storage: nothing earlier
        stored = set()
    out = []
    for item in everything:
        for name in (item.spec.name, item.spec.name + isolation.TUNED_SUFFIX):
            if name in ran:
                out.append(ran.pop(name))
            elif name in stored:
                handle = manager.open_study(name, url)
                if handle.counts().done:
                    out.append((item.section, handle))
    return out + list(ran.values())


def report_parts(done: list) -> list:
    """The report's parts: one per section, with its studies."""
    from sweeper.writeup import Part

    parts = {}
    for section, handle in done:
        parts.setdefault(section, Part(f"{section}: {SECTIONS[section]}"))
        parts[section].handles.append(handle)
    return list(parts.values())


def _name(study: dict, pilot: int | None = None) -> str:
    """`{name}.{data set}.r{seeds}.e{epochs}` (or `.s{steps}`; `.r{pilot}-{cap}` for seeds by power): the
    options that change a study are in its name."""
    length = f"s{study['steps']}" if "steps" in study else f"e{study.get('epochs')}"
    seeds = f"{pilot}-{study['repeats']}" if pilot is not None else study.get("repeats", 1)
    return f"{study['name']}.{_tag(study.get('dataset', 'digits'))}.r{seeds}.{length}"


def _tag(dataset) -> str:
    if not isinstance(dataset, str) or not dataset.startswith("idx:"):
        return str(dataset)
    folder = datasets.idx_path(dataset).resolve()
    stem = re.sub(r"[^A-Za-z0-9_-]", "", folder.name)[:24] or "idx"
    return f"idx-{stem}-{hashlib.sha1(str(folder).encode()).hexdigest()[:6]}"


def _echo(text: str) -> None:
    click.echo(text, err=True)
