"""Seconds per epoch on one NVIDIA GPU: the MLP and LeNet through sweeper (JAX) and in PyTorch CUDA.

Run: python bench/gpu.py [--data DIR] [--epochs 4] [--gpu 0]

Sweeper side: a real `sweeper run SPEC --device cuda --gpus GPU` of one trial per model on a fresh
SQLite file; its epoch rows give each epoch's wall time (the first, which compiles, is left out).
PyTorch side: the same networks (784-500-10 ReLU MLP, SGD lr 0.1; LeNet-5 conv 5x5 x20, pool,
conv 5x5 x50, pool, 500, 10, Adam 1e-3), batch 100, the same MNIST training split, data on the
GPU, one epoch = one pass plus the validation error. Target: sweeper <= 1.2 x PyTorch.
Needs jax with CUDA (pip install 'jax[cuda12]') and torch with CUDA; without a GPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPEC = """
[study]
name = "gpu_{model}"
model = "{model}"
dataset = "idx:{data}"
epochs = {epochs}
n_trials = 1
pruner = "none"

[params]
batch_size = 100
schedule = "constant"
{params}
"""
PARAMS = {"mlp": 'width = 500\nactivation = "relu"\noptimizer = "sgd"\nlr = 0.1',
          "lenet": 'width = 500\nconv1_maps = 20\nconv2_maps = 50\nactivation = "relu"\noptimizer = "adam"\nlr = 1e-3'}


def gpu_note() -> str | None:
    """None when both JAX and PyTorch see a CUDA GPU; else one line saying what is missing."""
    probe = ("import jax, sys\ntry:\n    sys.exit(0 if jax.devices('gpu') else 1)\nexcept Exception:\n"
             "    sys.exit(1)\n")
    jax_ok = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                            env={**os.environ, "JAX_PLATFORMS": "cuda"}).returncode == 0
    try:
        import torch

        torch_ok = torch.cuda.is_available()
    except ImportError:
        torch_ok = False
    if jax_ok and torch_ok:
        return None
    missing = [name for name, ok in (("JAX (pip install 'jax[cuda12]')", jax_ok),
                                     ("PyTorch (a CUDA build of torch)", torch_ok)) if not ok]
    return f"no CUDA GPU for {' and '.join(missing)}: run bench/gpu.py on a machine with an NVIDIA GPU"


def sweeper_seconds(model: str, data: Path, epochs: int, gpu: str) -> float:
    """Median wall seconds per epoch (epochs 2..N) of one trial run by `sweeper run --device cuda`."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="sweeper-gpu-") as folder:
        spec = Path(folder) / "spec.toml"
        spec.write_text(SPEC.format(model=model, data=data, epochs=epochs, params=PARAMS[model]))
        url = f"sqlite:///{folder}/s.db"
        env = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
        run = subprocess.run([sys.executable, "-m", "sweeper", "run", str(spec), "--storage", url, "--gpus", gpu],
                             capture_output=True, text=True, env=env)
        if run.returncode != 0:
            sys.exit(f"error: sweeper run on GPU {gpu} failed: {run.stderr.strip().splitlines()[-1]}")
        rows = subprocess.run([sys.executable, "-m", "sweeper", "epochs", f"gpu_{model}", "--storage", url,
                               "--format", "csv"], capture_output=True, text=True, env=env)
        frame = pd.read_csv(io.StringIO(rows.stdout))
    return statistics.median(frame["seconds"].iloc[1:])


def torch_seconds(model: str, data: Path, epochs: int, gpu: str) -> float:
    """Median wall seconds per epoch (epochs 2..N) of the same network in PyTorch on cuda:GPU."""
    import numpy as np
    import torch
    from torch import nn

    from workers import runtime

    runtime.configure()
    from workers.data import load

    ds = load(f"idx:{data}")
    dev = torch.device(f"cuda:{gpu}")
    x = torch.tensor(np.asarray(ds.x_train)[:, None], device=dev)
    y = torch.tensor(np.asarray(ds.y_train), dtype=torch.long, device=dev)
    xv = torch.tensor(np.asarray(ds.x_valid)[:, None], device=dev)
    yv = torch.tensor(np.asarray(ds.y_valid), dtype=torch.long, device=dev)
    torch.manual_seed(0)
    if model == "mlp":
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 500), nn.ReLU(), nn.Linear(500, 10)).to(dev)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
    else:
        net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
                            nn.ReLU(), nn.Flatten(), nn.Linear(50 * 4 * 4, 500), nn.ReLU(), nn.Linear(500, 10)).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        torch.cuda.synchronize()
        begun = time.perf_counter()
        order = torch.randperm(len(x), device=dev)
        for start in range(0, len(x) - 99, 100):
            idx = order[start:start + 100]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            errors = sum((net(xv[i:i + 1000]).argmax(1) != yv[i:i + 1000]).sum().item()
                         for i in range(0, len(xv), 1000))
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - begun)
        assert 0 <= errors <= len(xv)
    return statistics.median(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "mnist"),
                        help="folder of MNIST IDX files [default: ../shared/data/mnist]")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per network (the first is left out)")
    parser.add_argument("--gpu", default="0", help="which GPU [default: 0]")
    args = parser.parse_args()
    note = gpu_note()
    if note is not None:
        print(f"bench/gpu.py: {note}")
        return
    data = Path(args.data).resolve()
    if not (data / "train-images-idx3-ubyte.gz").exists() and not (data / "train-images-idx3-ubyte").exists():
        sys.exit(f"error: no MNIST IDX files in {data}: pass --data DIR")
    print(f"{'model':<8}{'sweeper s/epoch':>17}{'PyTorch s/epoch':>17}{'ratio':>8}")
    for model in ("mlp", "lenet"):
        ours, theirs = sweeper_seconds(model, data, args.epochs, args.gpu), torch_seconds(model, data, args.epochs,
                                                                                           args.gpu)
        verdict = "met" if ours <= 1.2 * theirs else "NOT met"
        print(f"{model:<8}{ours:17.3f}{theirs:17.3f}{ours / theirs:8.2f}  (target <= 1.2: {verdict})")


if __name__ == "__main__":
    main()
