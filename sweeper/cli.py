"""The `sweeper` command: thin click wrappers; compute commands run `python -m workers` in a process."""

from __future__ import annotations

import os
import sys
import time

import click

from storage.contract.errors import BadInput
from storage.contract.options import click_options
from sweeper.power import DEFAULT_CAP

PASS_THROUGH = dict(ignore_unknown_options=True, allow_extra_args=True, help_option_names=[])
FORMATS = ("table", "csv", "json", "parquet")
STORAGE_HELP = "database URL [default: $SWEEPER_STORAGE, else sqlite:///sweeper.db]"


def _exec_workers(command: str, args: list[str]) -> None:
    """Replace this process by `python -m workers COMMAND ARGS` (the compute side)."""
    argv = [sys.executable, "-m", "workers", command, *args]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def _url(storage: str | None) -> str:
    """The storage URL of a command; a bad $SWEEPER_DB_PATIENCE is one line before any database call."""
    from storage import retry, urls

    retry.patience_s()
    return urls.resolve(storage)


storage_option = click.option("--storage", metavar="URL", default=None, help=STORAGE_HELP)
wide_option = click.option("--wide", is_flag=True,
                           help="a table: every column on one line per row and text cells whole "
                                "[default: cells cut to 40 characters, columns wrapped at 120]")


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
def cli() -> None:
    """Hyperparameter sweeps of PyTensor networks on MNIST, stored in Optuna's database."""


@cli.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train one network once, without a database (`sweeper train --help`)."""
    _exec_workers("train", list(args))


@cli.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def evaluate(args: tuple[str, ...]) -> None:
    """Test figures of a weights file on a data set (`sweeper evaluate --help`)."""
    _exec_workers("evaluate", list(args))


@cli.command()
@click.argument("name")
@storage_option
@click.option("--trial", "number", type=click.IntRange(min=0), default=None,
              help="the trial's number [default: the study's best]")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="the .npz file to write")
def export(name: str, storage: str | None, number: int | None, out: str) -> None:
    """Write a trial's kept weights to FILE (.npz: layers by name, the parameters they were trained with)."""
    from storage.contract.outcome import Outcome
    from sweeper import manager

    _out_check(out)
    trial = manager.export(manager.open_study(name, _url(storage)), number, out)
    click.echo(f"trial {trial.number} of study '{name}' (test_error {Outcome.from_attrs(trial.user_attrs).test_error}) "
               f"written to {out}", err=True)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@storage_option
@click.option("--name", default=None, help="study name [default: [study] name of the spec]")
def create(spec: str, storage: str | None, name: str | None) -> None:
    """Create the study described by SPEC (a TOML file); a no-op if it exists with the same spec."""
    from sweeper import toml_spec

    parsed = toml_spec.read(spec, name=name)  # everything about the spec is checked before the storage
    handle, created = _create(parsed, _url(storage))
    _say_created(handle, created)


@cli.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def worker(args: tuple[str, ...]) -> None:
    """Pull trials of a study until its budget is spent (`sweeper worker --help`)."""
    _exec_workers("worker", list(args))


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@storage_option
@click.option("--name", default=None, help="study name [default: [study] name of the spec]")
@click.option("--dataset", default=None, metavar="D",
              help="train on D (digits, mnist, xor or idx:DIR) [default: [study] dataset of the spec]")
@click.option("--workers", "n_workers", default=None, type=click.IntRange(min=1),
              help="worker processes on this machine [default: 1, or one per --gpus entry]")
@click_options("threads", "device", defaults={"threads": "cores / workers"})
@click.option("--gpus", default=None, metavar="LIST", help="one GPU per worker, e.g. 0,1 (CUDA_VISIBLE_DEVICES)")
@click_options("timeout", "backend")
@click.option("--logs", type=click.Path(file_okay=False), default=None,
              help="keep each worker's log in this folder [default: a temporary one, kept on failure]")
def run(spec: str, storage: str | None, name: str | None, dataset: str | None, n_workers: int | None,
        threads: int | None, device: str, gpus: str | None, timeout: float | None, backend: str | None,
        logs: str | None) -> None:
    """Create (or reuse) the study of SPEC, run N workers here until it is done, print a summary."""
    from sweeper import runner

    runner.sigterm_as_ctrl_c()  # first: a SIGTERM while the spec is read exits 130 like a later one
    from storage import studies
    from storage.contract.exits import exit_now
    from storage.contract.options import WorkerOptions
    from sweeper import toml_spec

    gpu_list = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    if gpus is not None and not (gpu_list and all(g.isdigit() for g in gpu_list)):
        raise BadInput(f"--gpus {gpus!r} is not a list of GPU numbers: write e.g. 0 or 0,1")
    parsed = toml_spec.read(spec, name=name, dataset=dataset)
    url = _url(storage)
    # the workers import, load the data and compile while the study is created (a refusal ends them)
    options = WorkerOptions(threads=threads, backend=backend, device=device, timeout=timeout)
    workers = runner.start(parsed, url, n_workers=n_workers or (len(gpu_list) if gpu_list else 1), options=options,
                           gpus=gpu_list, log_dir=logs)
    try:
        handle, created = _create(parsed, url)
        key = studies.uid(handle.storage, handle.study_id)
        _say_created(handle, created)
        code = runner.run(handle, workers)
    except BaseException:
        workers.cancel()
        raise
    _forget_if_unstarted(handle, key, created, code)
    handle.storage.engine.dispose()
    exit_now(code)  # the workers have exited, the summary is printed: skip the interpreter's teardown


def _forget_if_unstarted(handle, key: str, created: bool, code: int) -> None:
    """A study this `sweeper run` created and ended without starting one trial (its workers could not load
    the data, say) is deleted again: it holds nothing, and a corrected spec of the same name can run.
    `key`: the study's uid when this run created it (a study deleted or replaced since is left alone)."""
    import optuna

    from storage import studies
    from sweeper import manager

    if not created or code == 0:
        return
    if studies.gone(handle.storage.engine, handle.study_id, key) or not manager.never_started(handle.study):
        return  # deleted meanwhile (or another study of that name now): not this run's to remove
    optuna.delete_study(study_name=handle.spec.name, storage=handle.storage)
    click.echo(f"study '{handle.spec.name}' removed again: no trial of it started; fix the error above and "
               "run again", err=True)


@cli.command()
@storage_option
@wide_option
def studies(storage: str | None, wide: bool) -> None:
    """List the studies in the storage with their progress and best value."""
    from storage import rdb, urls
    from sweeper import manager, tables

    url = _url(storage)
    if not rdb.has_studies(url):
        click.echo(f"no studies in {urls.mask(url)}", err=True)
        return
    click.echo(tables.table(manager.study_list(url), wide))


@cli.command()
@click.argument("name")
@storage_option
def status(name: str, storage: str | None) -> None:
    """Trials by state, the best trial, and the running trials with their current epoch."""
    from sweeper import manager, tables
    from sweeper import submit as sub_

    handle = manager.open_study(name, _url(storage))
    click.echo(tables.status(handle))
    for line in sub_.array_lines(handle):
        click.echo(line)


@cli.command()
@click.argument("name")
@storage_option
def stop(name: str, storage: str | None) -> None:
    """Make every worker of study NAME, on any machine, finish its current trial and exit; cancel the
    tasks of its Slurm arrays that have not started."""
    from sweeper import submit as sub_

    handle = _set_stopped(name, storage, True)
    for line in sub_.cancel_pending(handle):
        click.echo(line, err=True)


@cli.command()
@click.argument("name")
@storage_option
@click.option("--submit", "again", is_flag=True, help="submit the study's last Slurm array again")
def resume(name: str, storage: str | None, again: bool) -> None:
    """Lift `sweeper stop NAME`: workers started from now on run trials again."""
    from pathlib import Path

    from sweeper import manager
    from sweeper import submit as sub_

    record = sub_.last_array(manager.open_study(name, _url(storage))) if again else None  # before lifting
    handle = _set_stopped(name, storage, False)
    if record is not None:
        job, script = sub_.slurm_array(handle, record["text"], record["workers"], Path(record["script"]).parent)
        click.echo(job)
        click.echo(f"study '{name}': Slurm array {job} submitted again (script {script})", err=True)


@cli.command()
@click.argument("name")
@storage_option
@click.option("--slurm", "engine", flag_value="slurm", help="one Slurm job array, a worker per task")
@click.option("--kubernetes", "engine", flag_value="kubernetes",
              help="a Kubernetes Indexed Job, a worker per pod (with --dry-run: print its manifest)")
@click.option("--workers", "n_workers", type=int, required=True, help="how many workers (array tasks, pods)")
@click.option("--parallel", type=int, default=None, help="at most this many at once [default: all]")
@click.option("--gpus-per-worker", "gpus", type=int, default=0, show_default=True,
              help="GPUs per worker (--gres=gpu:G; it trains on CUDA)")
@click.option("--cpus-per-worker", "cpus", type=int, default=1, show_default=True,
              help="cores per worker, also its thread count")
@click.option("--mem", default=None, help="memory per worker, e.g. 4G")
@click.option("--time", "time_limit", default=None, help="time limit per worker, e.g. 2:00:00")
@click.option("--partition", default=None, help="Slurm partition")
@click.option("--account", default=None, help="Slurm account")
@click.option("--sbatch", "extra", multiple=True, metavar="OPTION", help="one more #SBATCH option, e.g. --qos=long")
@click.option("--setup", multiple=True, metavar="LINE",
              help="a shell line run before the worker, e.g. module load cuda")
@click.option("--artifacts", type=click.Path(file_okay=False), default=None,
              help="folder for checkpoints and kept weights, seen by every node [default: $SWEEPER_ARTIFACTS]")
@click.option("--logs", type=click.Path(file_okay=False), default="slurm-logs", show_default=True,
              help="folder for the tasks' output and the script")
@click.option("--one-node", is_flag=True, help="every task runs on this machine (allows an SQLite file)")
@click_options("backend")
@click.option("--image", default=None, help="Kubernetes: the container image with sweeper installed")
@click.option("--secret", default="sweeper-storage", show_default=True,
              help="Kubernetes: the Secret whose key 'url' holds the storage URL")
@click.option("--claim", default="sweeper-artifacts", show_default=True,
              help="Kubernetes: the PersistentVolumeClaim for checkpoints and kept weights ('' for none)")
@click.option("--namespace", default=None, help="Kubernetes: the Job's namespace")
@click.option("--dry-run", is_flag=True, help="print the script (or manifest) and submit nothing")
def submit(name: str, storage: str | None, engine: str | None, n_workers: int, parallel: int | None, gpus: int,
           cpus: int, mem: str | None, time_limit: str | None, partition: str | None, account: str | None,
           extra: tuple[str, ...], setup: tuple[str, ...], artifacts: str | None, logs: str, one_node: bool,
           backend: str | None, image: str | None, secret: str, claim: str, namespace: str | None,
           dry_run: bool) -> None:
    """Start N workers of study NAME on a cluster: a Slurm job array (or a Kubernetes Job)."""
    from pathlib import Path

    from storage import artifacts as kept
    from storage.contract.options import backend_name
    from sweeper import manager, slurm
    from sweeper import submit as sub_

    if engine is None:
        raise BadInput("say where: sweeper submit NAME --slurm (or --kubernetes --dry-run)")
    url = _url(storage)
    fields = dict(name=name, url=url, workers=n_workers, parallel=parallel, gpus=gpus, cpus=cpus, mem=mem,
                  time=time_limit, partition=partition, account=account, extra=extra, setup=setup,
                  backend=backend_name(backend) if backend else None)
    if engine == "kubernetes":
        from sweeper import kubernetes

        if not dry_run:
            raise BadInput("sweeper submit --kubernetes only writes the manifest: add --dry-run and pipe it to "
                           "kubectl apply -f -")
        request = sub_.Submission(**fields)
        manager.open_study(name, url)
        click.echo(kubernetes.manifest(request, image=image or "", secret=secret, claim=claim or None,
                                       namespace=namespace), nl=False)
        return
    folder = Path(artifacts).resolve() if artifacts else kept.folder(url)
    request = sub_.Submission(**fields, python=sys.executable, artifacts=str(folder) if folder else None)
    handle = manager.open_study(name, url)  # an unknown study is the first thing to say
    if not dry_run:
        slurm.command("sbatch")
    for line in sub_.check(handle, request, one_node=one_node):
        click.echo(f"warning: {line}", err=True)
    text = slurm.script(request, Path(logs).resolve())
    if dry_run:
        click.echo(text, nl=False)
        return
    job, script = sub_.slurm_array(handle, text, n_workers, Path(logs).resolve())
    click.echo(job)
    click.echo(f"study '{name}': Slurm array {job} of {n_workers} workers submitted (script {script}); "
               f"sweeper status {name} shows its tasks, sweeper stop {name} cancels the pending ones", err=True)


@cli.command()
@click.argument("name")
@storage_option
@click.option("--n-trials", "n_trials", type=click.IntRange(1, 1_000_000), required=True,
              help="the study's new budget of trials (at least those done and running)")
def extend(name: str, storage: str | None, n_trials: int) -> None:
    """Set study NAME's budget to N trials; running workers take it at their next trial."""
    from sweeper import manager

    handle = manager.open_study(name, _url(storage))
    before = manager.extend(handle, n_trials)
    click.echo(f"study '{name}': budget {n_trials} trials (was {before.budget}; "
               f"{before.done} done, {before.running} running); start workers (sweeper worker {name}) "
               "if none is running", err=True)


@cli.command()
@click.argument("name")
@storage_option
@click.option("--from", "source", required=True, metavar="OTHER", help="the study to copy configurations from")
@click.option("--top", type=click.IntRange(min=1), default=1, show_default=True,
              help="how many of OTHER's best complete trials")
def enqueue(name: str, storage: str | None, source: str, top: int) -> None:
    """Queue the best configurations of study OTHER in study NAME: its workers run them first."""
    from storage.contract.spec import label
    from sweeper import manager

    url = _url(storage)
    handle = manager.open_study(name, url)
    result = manager.enqueue_best(handle, manager.open_study(source, url), top)
    queued, dropped = result
    click.echo(f"study '{name}': {len(queued)} configuration(s) of '{source}' queued to run first", err=True)
    for params in queued:
        click.echo(f"  {label(params)}", err=True)
    if dropped:
        click.echo(f"not copied (study '{name}' does not search them): {', '.join(dropped)}", err=True)
    if result.skipped:
        click.echo(f"skipped {len(result.skipped)}: already queued, running or done in study '{name}'", err=True)


@cli.command()
@click.argument("name")
@storage_option
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def delete(name: str, storage: str | None, yes: bool) -> None:
    """Delete study NAME with its trials and epoch rows, after a confirmation."""
    from sweeper import manager

    handle = manager.open_study(name, _url(storage))
    counts = handle.counts()
    if counts.running:
        click.echo(f"study '{name}' has {counts.running} running trial(s): their workers fail when they next "
                   f"write (sweeper stop {name} first lets them finish)", err=True)
    if not yes:
        click.confirm(f"delete study '{name}' ({counts.total} trials)?", abort=True, err=True)
    rows, files = manager.delete(handle)
    click.echo(f"study '{name}' deleted: {counts.total} trials, {rows} epoch rows, {files} weight files", err=True)


def _set_stopped(name: str, storage: str | None, stopped: bool):
    from storage import stopflag
    from sweeper import manager

    handle = manager.open_study(name, _url(storage))
    stopflag.set_stopped(handle.storage, handle.study_id, stopped)
    counts = handle.counts()
    if stopped:
        click.echo(f"study '{name}' stopped: its {counts.running} running trial(s) finish, then their workers "
                   f"exit; sweeper resume {name} lifts it", err=True)
    else:
        click.echo(f"study '{name}' resumed: {counts.done} of {counts.budget} trials done; "
                   f"start workers (sweeper worker {name} or sweeper run SPEC) to go on", err=True)
    return handle


def _table_command(kind: str):
    @click.argument("name")
    @storage_option
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
    @click.option("--out", type=click.Path(dir_okay=False), default=None, help="write to FILE, not stdout")
    @wide_option
    def command(name: str, storage: str | None, fmt: str, out: str | None, wide: bool) -> None:
        from sweeper import analysis

        _write_table(name, storage, fmt, out,
                     lambda handle: (analysis.trials if kind == "results" else analysis.epochs)(handle), wide)

    return command


cli.command("results", help="One row per trial: state, parameters, validation and test error, epochs, "
            "seconds, why it failed or was pruned (columns: docs/sweep.md).")(_table_command("results"))
cli.command("epochs", help="One row per trial and epoch: train_loss, train_error, valid_error, lr, seconds.")(
    _table_command("epochs"))


def _write_table(name: str, storage: str | None, fmt: str, out: str | None, make, wide: bool = False) -> None:
    """Write `make(handle)` for study `name` as `fmt` to `out` (or stdout), checking the output first."""
    from sweeper import manager, tables

    if fmt == "parquet" and out is None:
        raise BadInput("parquet is binary: add --out FILE.parquet, or use --format csv")
    _out_check(out)
    tables.write(make(manager.open_study(name, _url(storage))), fmt, out, wide)


def _out_check(out: str | None) -> None:
    """An --out FILE whose folder is missing or not writable is bad input, before anything is read."""
    if out is None:
        return
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise BadInput(f"--out {out}: no folder {folder}: create it or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise BadInput(f"--out {out}: folder {folder} is not writable: write elsewhere")
    from storage.contract import files

    files.check_replaceable(out)


@cli.command()
@click.argument("name")
@storage_option
@click.option("--by", "by", multiple=True, metavar="PARAM",
              help="group by these parameters only (repeatable) [default: one row per configuration]")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write to FILE, not stdout")
@wide_option
def summary(name: str, storage: str | None, by: tuple[str, ...], fmt: str, out: str | None, wide: bool) -> None:
    """One row per configuration: n, mean, std and 95 % interval over seeds, beside the posts' figures."""
    from sweeper import analysis

    _write_table(name, storage, fmt, out, lambda handle: analysis.config_stats(handle, by=list(by) or None), wide)


@cli.command()
@click.argument("name")
@storage_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write to FILE, not stdout")
@wide_option
def claims(name: str, storage: str | None, fmt: str, out: str | None, wide: bool) -> None:
    """One row per claim of the study: effect, 95 % interval, p over seeds, verdict."""
    from sweeper import analysis

    _write_table(name, storage, fmt, out, analysis.claims, wide)


@cli.command()
@click.argument("name")
@storage_option
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="folder for the PNG files (made if missing)")
def plot(name: str, storage: str | None, out: str) -> None:
    """Write a study's plots as PNG files: learning curves, accuracy per configuration beside the posts'
    figures; Optuna's importances and slices for sampled studies."""
    from sweeper import writeup

    writeup.check_out(out)
    handle = _open(name, storage)
    paths = writeup.plots_only(handle, out)
    if not paths:
        raise BadInput(f"study '{name}' has no finished trial to plot yet: run it first "
                       "(sweeper run or sweeper worker)")
    for path in paths:
        click.echo(str(path))


@cli.command()
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@storage_option
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="folder for report.md and its PNG files (made if missing)")
def report(names: tuple[str, ...], storage: str | None, out: str) -> None:
    """Write report.md on studies NAME...: setup, our figures beside the posts', claims, plots, time."""
    from sweeper import writeup

    writeup.check_out(out)
    handles = [_open(name, storage) for name in dict.fromkeys(names)]
    title = f"Report: {handles[0].spec.name}" if len(handles) == 1 else f"Report: {len(handles)} studies"
    click.echo(str(writeup.write([writeup.Part("", handles=handles)], out, title=title)))


@cli.command()
@click.argument("sections", nargs=-1, metavar="[SECTION]...")
@click.option("--list", "show", is_flag=True, help="list the sections with one line each, and exit")
@click.option("--dataset", default=None, metavar="D",
              help="train the MNIST studies on D (digits, mnist or idx:DIR) [default: each study's, mnist]")
@click.option("--repeats", default="auto", show_default=True, metavar="N|auto",
              help="seeds per configuration; auto: each study's own (3, the toy problem 10) as a pilot, then as "
                   "many more as the effects its post claims need to be detectable, up to --max-repeats")
@click.option("--max-repeats", "cap", type=click.IntRange(min=2), default=DEFAULT_CAP, show_default=True,
              help="the most seeds per configuration --repeats auto may choose")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="cap every study at N epochs: a quick look, not the posts' length [default: the posts' lengths]")
@click.option("--fraction", type=float, default=None, metavar="F",
              help="train a share F in (0, 1] of each post's length (verdicts then not counted)")
@click.option("--tune-budget", type=click.IntRange(min=1), default=None, metavar="N",
              help="cap each configuration's tuning search ([tune]) at N trials: a quick look [default: each "
                   "study's budget]")
@click.option("--workers", "n_workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="worker processes on this machine")
@click_options("threads", defaults={"threads": "cores / workers"})
@storage_option
@click.option("--out", type=click.Path(file_okay=False), default="reproduction", show_default=True,
              help="folder for report.md and its PNG files (made if missing)")
def reproduce(sections: tuple[str, ...], show: bool, dataset: str | None, repeats: str, cap: int,
              epochs: int | None, fraction: float | None, tune_budget: int | None, n_workers: int,
              threads: int | None, storage: str | None, out: str) -> None:
    """Re-run the posts' explorations (every SECTION by default) with several seeds, then write their report.

    Run again with the same options, it reuses what is done. Sections: sweeper reproduce --list.
    """
    from storage.contract.exits import exit_now
    from storage.contract.options import WorkerOptions
    from sweeper import reproduce as rep
    from sweeper import writeup

    if show:
        click.echo(rep.listing())
        return
    options = dict(dataset=dataset, repeats=_repeats(repeats), epochs=epochs, fraction=fraction, cap=cap,
                   tune_budget=tune_budget)
    planned = rep.plan(list(sections), **options)
    writeup.check_out(out)
    url = _url(storage)
    started = time.monotonic()
    code, done = rep.run(planned, url, n_workers=n_workers, options=WorkerOptions(threads=threads))
    everything = rep.plan([], **options)
    done = rep.with_earlier(everything, done, url)
    if done:
        intro = (f"Every exploration below was re-run under the posts' conditions (each study's conditions table "
                 f"says where ours differ) with several training seeds per configuration. Our figures are means "
                 f"with 95 % Student t intervals over seeds; each conclusion of the posts is checked seed by seed "
                 f"and gets a verdict (supported, contradicted, inconclusive, or untestable with the reason). The "
                 f"studies' wall times are in the overview and in each setup; this invocation took "
                 f"{time.monotonic() - started:.0f} s with {n_workers} worker(s), reusing the studies done before.")
        path = writeup.write(rep.report_parts(done), out, title="Hand-run explorations, re-run with seeds",
                             intro=intro)
        click.echo(str(path))
    exit_now(code)


def _repeats(value: str) -> int | str:
    """--repeats: a whole number of seeds from 1, or auto."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"--repeats {value} is invalid: use a whole number of seeds from 1, or auto")
    return int(value)


def _open(name: str, storage: str | None):
    from sweeper import manager

    return manager.open_study(name, _url(storage))


@cli.command()
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (0.0.0.0 exposes it)")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--allow-writes", is_flag=True, help="let the page change and delete studies [default: read-only]")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="also answer requests for this host name (repeatable) [default: local names and --host]")
def dashboard(storage: str | None, host: str, port: int, allow_writes: bool, allow_hosts: tuple[str, ...]) -> None:
    """Serve optuna-dashboard on the storage, read-only unless --allow-writes (Ctrl-C stops it)."""
    from sweeper import web

    web.serve(_url(storage), host=host, port=port, allow_writes=allow_writes, allow_hosts=allow_hosts)


def _create(spec, url: str):
    import optuna

    from sweeper import manager

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # we say it ourselves, once
    return manager.create(spec, url)


def _say_created(handle, created: bool) -> None:
    from storage import urls

    spec = handle.spec
    what = (f"{handle.counts().budget} trials of {spec.model} on {spec.dataset}, {spec.length} each, "
            f"sampler {spec.sampler['name']}, pruner {spec.pruner['name']}")
    if created:
        click.echo(f"created study '{spec.name}' in {urls.mask(handle.url)}: {what}", err=True)
    else:
        click.echo(f"study '{spec.name}' exists with this spec in {urls.mask(handle.url)}: {what}", err=True)
    from storage import artifacts

    if spec.keeps_files and artifacts.folder(handle.url) is None:
        click.echo(f"note: {artifacts.not_kept_reason(handle.url)}", err=True)


def main() -> None:
    """Entry point: BadInput and usage errors are one line on stderr and exit 2; the rest exit 1."""
    from storage.contract.exits import run_cli

    run_cli(cli)
