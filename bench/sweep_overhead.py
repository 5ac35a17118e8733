"""How much of a sweep trial is spent outside training: ask, budget check, reports, epoch rows, tell.

Run: python bench/sweep_overhead.py [--data DIR] [--trials 6] [--epochs 10] [--sqlite URL] [--pg URL]

Runs the real worker loop (workers.worker.work) in this process on a fresh study per storage: a
784-500-10 MLP (the posts' baseline, TPE over lr and l2, no pruning) for `--epochs` epochs per
trial on MNIST IDX files in DIR ("idx:DIR"; default ../shared/data/mnist, else the digits set).
For each storage it prints the trials' wall time in the loop, the time inside train(), and the
share outside it. The first trial compiles; the steady-state line leaves it out. Target: <= 3 %.

PostgreSQL: --pg names a server database to create a scratch database next to (default: the
local test server, postgresql://postgres@127.0.0.1:5432/test); --pg none skips it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import logging
import os
import statistics
import sys
import tempfile
import textwrap
import threading
import time
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.contract.options import WorkerOptions  # noqa: E402
from workers import runtime  # noqa: E402

SPEC = """
[study]
name = "overhead"
model = "mlp"
dataset = "{dataset}"
n_trials = {trials}
epochs = {epochs}
sampler = {{name = "tpe", n_startup_trials = 3}}
pruner = "none"

[params]
width = 500
batch_size = 100
lr = {{float = [0.05, 0.8], log = true}}
l2 = {{float = [1e-5, 1e-3], log = true}}
"""


PARTS = collections.Counter()  # seconds per part of the loop, in the worker's main thread only


@contextlib.contextmanager
def timed_parts():
    """Time the real functions the loop calls (wrapped, not replaced), for the breakdown table."""
    import optuna
    import optuna.study._optimize

    import workers.checkpoints
    import workers.keeper
    import workers.objective
    import workers.worker
    from storage import budget, locks

    targets = [(optuna.Study, "ask", "ask (create trial, sampler)"),
               (optuna.Trial, "suggest_float", "suggest (sample, write param)"),
               (optuna.Trial, "report", "report (pruner studies; else async)"),
               (workers.objective.Objective, "_set_attrs", "user attrs"),
               (optuna.study._optimize, "_tell_with_warning", "tell"),
               (optuna.storages, "fail_stale_trials", "stale-trial check"),
               (budget.Gate, "step", "budget count + stop flag"),
               (locks.Lock, "acquire", "budget lock"),
               (locks.Lock, "release", "budget lock"),
               (workers.objective.Objective, "_wait", "waiting for background writes"),
               (workers.checkpoints, "save", "checkpoint"),
               (workers.keeper.Keeper, "__call__", "keep weights")]
    saved = []
    for owner, name, label in targets:
        original = getattr(owner, name)
        saved.append((owner, name, original))

        def timed(*args, _original=original, _label=label, **kwargs):
            begun = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                if threading.current_thread() is threading.main_thread():
                    PARTS[_label] += time.perf_counter() - begun

        setattr(owner, name, functools.wraps(original)(timed))
    try:
        yield PARTS
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def measure(url: str, spec_text: str) -> list[tuple[float, float]]:
    """[(wall_s, train_s)] per trial of a fresh study at `url`, run by the real worker loop."""
    from storage.contract.errors import BadInput
    from sweeper import manager, toml_spec
    from workers.worker import work

    spec = toml_spec.parse(tomllib.loads(spec_text))
    manager.create(spec, url)
    timings: list[tuple[float, float]] = []
    PARTS.clear()
    with timed_parts():
        code = work(spec.name, url, WorkerOptions(worker_index=0),
                    on_trial=lambda wall, train: timings.append((wall, train)))
    if code != 0:
        raise BadInput(f"the worker stopped with code {code}")
    return timings


def report(label: str, timings: list[tuple[float, float]]) -> list[str]:
    """Table lines: all trials, and all but the first (which compiles); then the breakdown."""
    lines = []
    parts = "; ".join(f"{k} {1000 * v / len(timings):.1f}" for k, v in PARTS.most_common())
    breakdown = f"{'':<11} ms per trial outside training: {parts}"
    for what, part in (("all trials", timings), ("without the first", timings[1:])):
        if not part:
            continue
        wall = sum(w for w, _ in part)
        train = sum(t for _, t in part)
        outside = [(w - t) * 1000 for w, t in part]
        lines.append(f"{label:<11} {what:<18} {len(part):>6} {wall / len(part):>8.3f} {train / len(part):>8.3f} "
                     f"{statistics.median(outside):>11.1f} {100 * (wall - train) / wall:>8.2f} %")
    return lines + textwrap.wrap(breakdown, 110, subsequent_indent=" " * 12)


def pg_scratch(admin: str):
    """Create a scratch database on the server of `admin`; (url, drop)."""
    import sqlalchemy as sa

    from storage import urls

    admin = urls.normalize(admin)
    name = f"sweeper_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))

    def drop() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        engine.dispose()

    return admin.rsplit("/", 1)[0] + "/" + name, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                        help="folder of MNIST IDX files (falls back to digits when missing)")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10, help="per trial (a checkpoint every 5 by default)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--sqlite", default=None, help="SQLite URL (default: a temporary file)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL server database to make a scratch database beside, or 'none'")
    args = parser.parse_args()
    runtime.configure(WorkerOptions(threads=args.threads))
    logging.basicConfig(level=logging.WARNING)
    dataset = f"idx:{args.data}" if (Path(args.data) / "train-images-idx3-ubyte.gz").exists() else "digits"
    spec = SPEC.format(dataset=dataset, trials=args.trials, epochs=args.epochs)

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        lines += report("sqlite", measure(args.sqlite or f"sqlite:///{tmp}/bench.db", spec))
    with tempfile.TemporaryDirectory() as tmp:  # PostgreSQL keeps weights and checkpoints where it is told
        os.environ.setdefault("SWEEPER_ARTIFACTS", tmp)
        lines += pg_lines(args, spec)
    print(f"{args.epochs}-epoch trials of a 784-500-10 MLP on {dataset}, backend {runtime.current().backend}; "
          "weights kept and checkpoints written at their defaults")
    print(textwrap.dedent(f"""\
        {'storage':<11} {'trials':<18} {'n':>6} {'wall_s':>8} {'train_s':>8} {'outside_ms':>11} {'outside':>10}"""))
    print("\n".join(lines))


def pg_lines(args, spec: str) -> list[str]:
    """The PostgreSQL lines of the table (a scratch database beside --pg), or why there are none."""
    lines = []
    if args.pg != "none":
        try:
            url, drop = pg_scratch(args.pg)
        except Exception as exc:  # noqa: BLE001 - no server: say so and go on
            lines.append(f"postgresql  skipped: {str(exc).splitlines()[0]}")
        else:
            try:
                lines += report("postgresql", measure(url, spec))
            finally:
                drop()
    return lines


if __name__ == "__main__":
    main()
