"""Seconds per epoch and compile seconds: sweeper (PyTensor) vs PyTorch CPU eager vs sklearn, same network and data.

An epoch is the same work for every row: one pass of minibatch updates over the training images,
then the validation error (sweeper's training loop does both every epoch).

Each measurement runs in its own process (backends and thread pools are per process). Usage:
    python bench/train_speed.py [--data DIR] [--epochs 3] [--backends jax,numba,c] [--lenet-backends jax]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist"
MLP = dict(width=500, depth=1, optimizer="sgd", lr=0.1, schedule="constant", batch_size=100, ema=0.0)
LENET = dict(width=500, conv1_maps=20, conv2_maps=50, optimizer="adam", lr=1e-3, batch_size=100)


def dataset_spec(data: str) -> str:
    return f"idx:{data}" if data != "digits" else "digits"


def run_sweeper(model: str, backend: str, data: str, epochs: int) -> dict:
    from storage.contract.options import WorkerOptions
    from workers import runtime

    runtime.configure(WorkerOptions(backend=backend))
    from workers.data import load
    from workers.train import train

    ds = load(dataset_spec(data))
    params = MLP if model == "mlp" else LENET
    times = []
    train(model, params, ds, epochs=epochs, seed=0, on_epoch=lambda r: times.append(r.seconds))
    first_call = times[0]
    steady = sorted(times[1:])[len(times[1:]) // 2]
    return dict(epoch=steady, compile=max(0.0, first_call - steady), images=len(ds.x_train))


def run_torch(model: str, data: str, epochs: int) -> dict:
    import numpy as np
    import torch
    from torch import nn

    from workers.data import load

    ds = load(dataset_spec(data))
    x = torch.from_numpy(np.ascontiguousarray(ds.x_train))
    y = torch.from_numpy(ds.y_train.astype(np.int64))
    torch.manual_seed(0)
    h, w = ds.image_shape
    if model == "mlp":
        net = nn.Sequential(nn.Flatten(), nn.Linear(h * w, 500), nn.ReLU(), nn.Linear(500, 10))
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
    else:
        s = (((h - 4) // 2) - 4) // 2
        net = nn.Sequential(nn.Unflatten(1, (1, h)), nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
                            nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                            nn.Linear(50 * s * s, 500), nn.ReLU(), nn.Linear(500, 10))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x_valid, y_valid = torch.from_numpy(np.ascontiguousarray(ds.x_valid)), torch.from_numpy(ds.y_valid.astype(np.int64))
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(x))
        for i in range(0, len(x) - 99, 100):
            idx = order[i:i + 100]  # gather per minibatch, as sweeper does (no full shuffled copy)
            opt.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
        with torch.no_grad():  # the validation error, as every sweeper epoch ends with (chunks of 1000)
            wrong = sum(int((net(x_valid[i:i + 1000]).argmax(1) != y_valid[i:i + 1000]).sum())
                        for i in range(0, len(x_valid), 1000))
        times.append(time.perf_counter() - t0)
    assert 0 <= wrong <= len(y_valid)
    return dict(epoch=sorted(times[1:])[len(times[1:]) // 2], compile=0.0, images=len(x),
                threads=torch.get_num_threads())


def run_sklearn(data: str, epochs: int) -> dict:
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    from workers.data import load

    ds = load(dataset_spec(data))
    x = ds.x_train.reshape(len(ds.x_train), -1)
    clf = MLPClassifier(hidden_layer_sizes=(500,), activation="relu", solver="sgd", batch_size=100,
                        learning_rate_init=0.1, momentum=0.0, alpha=0.0, random_state=0)
    x_valid = ds.x_valid.reshape(len(ds.x_valid), -1)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        clf.partial_fit(x, ds.y_train, classes=np.arange(10))
        np.mean(clf.predict(x_valid) != ds.y_valid)  # the validation error, as every sweeper epoch ends with
        times.append(time.perf_counter() - t0)
    return dict(epoch=sorted(times[1:])[len(times[1:]) // 2], compile=0.0, images=len(x))


def measure(kind: str, data: str, epochs: int) -> dict | None:
    """Run one measurement in a fresh process; None (with the reason on stderr) when it cannot run."""
    proc = subprocess.run([sys.executable, __file__, "--one", kind, "--data", data, "--epochs", str(epochs)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        print(f"  {kind}: skipped ({(proc.stderr.strip().splitlines() or ['failed'])[-1]})", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists() else "digits",
                    help="MNIST IDX directory, or 'digits'")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--backends", default="jax,numba,c", help="sweeper backends for the MLP")
    ap.add_argument("--lenet-backends", default="jax", help="sweeper backends for LeNet (numba: ~5 min compile)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        who, model = args.one.rsplit("-", 1)
        if who.startswith("sweeper:"):
            out = run_sweeper(model, who.split(":")[1], args.data, args.epochs)
        elif who == "torch":
            out = run_torch(model, args.data, args.epochs)
        else:
            out = run_sklearn(args.data, args.epochs)
        print(json.dumps(out))
        return

    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("note: torch is not installed (pip install -e '.[bench]'): PyTorch rows skipped", file=sys.stderr)
    rows = []
    for model, backends in (("mlp", args.backends), ("lenet", args.lenet_backends)):
        peers = [f"sweeper:{b}" for b in backends.split(",") if b] + (["torch"] if have_torch else [])
        peers += ["sklearn"] if model == "mlp" else []
        results = {p: measure(f"{p}-{model}", args.data, args.epochs) for p in peers}
        ref = results.get("torch")
        for peer, r in results.items():
            if r is not None:
                ratio = f"{r['epoch'] / ref['epoch']:.2f}x" if ref else "n/a"
                rows.append((model, peer.replace("sweeper:", "sweeper "), r["epoch"], r["compile"], ratio, r["images"]))
    print(f"\ndata: {args.data}  float32, batch 100, {os.cpu_count()} cores, median of epochs 2..{args.epochs}")
    print(f"{'model':6} {'implementation':16} {'s/epoch':>8} {'compile s':>10} {'vs torch':>9} {'images':>7}")
    for model, peer, epoch, comp, ratio, images in rows:
        print(f"{model:6} {peer:16} {epoch:8.3f} {comp:10.1f} {ratio:>9} {images:7d}")
    print("targets: MLP sweeper (default backend) <= 0.60x torch, LeNet <= 1.00x torch")


if __name__ == "__main__":
    main()
