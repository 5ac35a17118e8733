"""Parallel workers against threads: the same 16 MLP trials with 1 worker x 1 thread, 2 x 1, and 1 x 2.

Run: python bench/scaling.py [--data DIR] [--epochs 6] [--width 500] [--rounds 3]

Each case is a real `sweeper run SPEC --workers W --threads T` on a fresh SQLite file: a grid of
16 fixed configurations (4 learning rates x 4 L2 lambdas) of a 784-WIDTH-10 MLP on MNIST IDX files
in DIR (default ../shared/data/mnist), so every case trains the same networks. `sweeper run`
pins each worker to its share of the cores (1 thread: one core; XLA sizes its pool by affinity). The
table shows the whole run (starting the workers, loading the data, the summary: what a user
waits for) and the sweep itself (first trial start to last trial end: what grows with the trials).
Target: (b) <= 0.55 x (a), and (b) faster than (c). Run it on an otherwise idle machine.

The machine's speed drifts by 10-20 % within minutes (other tenants of the host), as much as the
effects measured; so the three cases run in `--rounds` rounds, each in another order, and the table
gives each case's median and the median of the ratios within a round (paired, so drift between
rounds cancels).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
[study]
name = "scaling"
model = "mlp"
dataset = "idx:{data}"
epochs = {epochs}
sampler = "grid"
pruner = "none"

[params]
width = {width}
activation = "relu"
optimizer = "sgd"
schedule = "constant"
batch_size = 100
lr = {{grid = [0.05, 0.1, 0.2, 0.4]}}
l2 = {{grid = [0.0, 1e-5, 1e-4, 1e-3]}}
"""

CASES = [("a", "1 worker x 1 thread", 1, 1), ("b", "2 workers x 1 thread", 2, 1), ("c", "1 worker x 2 threads", 1, 2)]


def run_case(spec: Path, workers: int, threads: int) -> tuple[float, float]:
    """(wall seconds of one `sweeper run` on a fresh SQLite file, seconds from first trial start to last end)."""
    import optuna

    with tempfile.TemporaryDirectory(prefix="sweeper-scaling-") as folder:
        env = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
        argv = [sys.executable, "-m", "sweeper", "run", str(spec), "--storage", f"sqlite:///{folder}/s.db",
                "--workers", str(workers), "--threads", str(threads)]
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=folder)
        elapsed = time.perf_counter() - started
        if done.returncode == 0:
            trials = optuna.load_study(study_name="scaling", storage=f"sqlite:///{folder}/s.db").trials
            span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(argv[3:])} failed (exit {done.returncode}): "
                 f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}")
    if "16/16 done" not in done.stderr:
        sys.exit("error: a case did not finish its 16 trials: see its output with sweeper run by hand")
    return elapsed, span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                        help="folder of MNIST IDX files [default: ../shared/data/mnist]")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per trial [default: 6]")
    parser.add_argument("--width", type=int, default=500, help="hidden units [default: 500]")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three cases [default: 3]")
    args = parser.parse_args()
    data = Path(args.data).resolve()
    if not (data / "train-images-idx3-ubyte.gz").exists() and not (data / "train-images-idx3-ubyte").exists():
        sys.exit(f"error: no MNIST IDX files in {data}: pass --data DIR")
    cores = len(os.sched_getaffinity(0))
    print(f"16 MLP trials (784-{args.width}-10, {args.epochs} epochs, batch 100) on {data}, {cores} cores, "
          f"{args.rounds} round(s)")
    rounds = []
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "scaling.toml"
        spec.write_text(SPEC.format(data=data, epochs=args.epochs, width=args.width))
        run_case(spec, 1, 1)  # warm the compile cache, so no case pays the first compilation
        for r in range(args.rounds):
            order = CASES[r % 3:] + CASES[:r % 3]  # each case first, second and third in turn
            rounds.append({key: run_case(spec, workers, threads) for key, _, workers, threads in order})
            print(f"round {r + 1}: " + "  ".join(f"({k}) {rounds[-1][k][0]:.1f} s" for k, *_ in CASES), flush=True)
    print(f"{'case':<26}{'run s':>7}{'vs (a)':>8}{'sweep s':>9}{'vs (a)':>8}{'trials/s':>10}")
    median = {key: [statistics.median(r[key][i] for r in rounds) for i in (0, 1)] for key, *_ in CASES}
    paired = {key: [statistics.median(r[key][i] / r["a"][i] for r in rounds) for i in (0, 1)] for key, *_ in CASES}
    for key, label, _, _ in CASES:
        (run, span), (run_ratio, span_ratio) = median[key], paired[key]
        print(f"({key}) {label:<22}{run:7.1f}{run_ratio:8.2f}{span:9.1f}{span_ratio:8.2f}{16 / span:10.2f}")
    print("run s: the whole `sweeper run` (start-up, data loading, summary); sweep s: first trial start to last end;")
    print("seconds are medians over the rounds, ratios medians of the ratios within each round")
    for i, what in enumerate(("run", "sweep")):
        ratio = paired["b"][i]
        versus = statistics.median(r["b"][i] / r["c"][i] for r in rounds)
        print(f"{what:>5}: (b)/(a) = {ratio:.2f} (target <= 0.55: {'met' if ratio <= 0.55 else 'NOT met'}); "
              f"(b)/(c) = {versus:.2f} (target < 1: {'met' if versus < 1 else 'NOT met'})")


if __name__ == "__main__":
    main()
