"""A trained network's kept weights as a documented .npz: write it, read it back checked, evaluate it on a data set.

The file is a plain NumPy archive: one array per parameter tensor, named as the network's layers
(`dense0_W`, `dense0_b`, ... for the MLP; `conv1_W`, ... for LeNet; shapes as PyTensor holds them),
plus `sweeper.json`, a 0-d string array with what is needed to rebuild and judge the network:
format and version, model, the resolved training parameters, image shape, number of classes, the
layers in order with their shapes, and the figures it was trained to (dataset, valid and test
error, trial and study when it came from one). `numpy.load(path)` reads it without sweeper.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storage.contract import files
from storage.contract.errors import BadInput

FORMAT = "sweeper-weights"
VERSION = 1
META = "sweeper.json"


@dataclass(frozen=True)
class Weights:
    """A network's evaluation weights and what it was trained with (see the module docstring)."""

    meta: dict
    arrays: list  # np.ndarray per layer, in the order of meta["layers"]

    @property
    def model(self) -> str:
        return self.meta["model"]


def of(net, model: str, config: dict, n_classes: int, figures: dict) -> Weights:
    """The weights a trained workers.compiled.Network evaluates with (the moving average where it is on)."""
    arrays = [np.asarray(a) for a in net.snapshot()]
    layers = [dict(name=spec.name, shape=list(a.shape)) for spec, a in zip(net.layout, arrays)]
    meta = dict(format=FORMAT, version=VERSION, model=model, params=_plain(config),
                image_shape=list(net.image_shape), n_classes=int(n_classes), layers=layers, figures=_plain(figures))
    return Weights(meta, arrays)


def writable(path: str | Path) -> Path:
    """`path`'s folder, checked before anything is trained: BadInput if it is missing or not writable."""
    path = Path(path)
    folder = path.resolve().parent
    if not folder.is_dir():
        raise BadInput(f"cannot write {path}: folder {folder} does not exist: create it or choose another path")
    if not os.access(folder, os.W_OK):
        raise BadInput(f"cannot write {path}: folder {folder} is not writable: choose another path")
    return folder


def save(weights: Weights, path: str | Path) -> Path:
    """Write `weights` to `path` whole or not at all (a temporary file beside it, then renamed)."""
    path = Path(path)
    writable(path)
    named = {layer["name"]: a for layer, a in zip(weights.meta["layers"], weights.arrays)}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as out:  # a file object: given a name, np.savez would append .npz to it
            np.savez(out, **named, **{META: np.asarray(json.dumps(weights.meta))})

    try:
        files.replace_atomically(path, write)
    except files.NotCreated as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}: choose another path") from None
    except OSError as exc:
        raise BadInput(f"cannot write {path}: {exc.strerror or exc}: free some space or choose another path") from None
    return path


def load(path: str | Path) -> Weights:
    """Read a file written by `save`; BadInput saying what is wrong with any other file."""
    path = Path(path)
    not_ours = f"{path} is not a sweeper weights file (write one with sweeper export or sweeper train --save)"
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile) or META not in archive.files:
                raise BadInput(not_ours)
            meta = json.loads(str(archive[META]))
            if meta.get("format") != FORMAT:
                raise BadInput(not_ours)
            if meta.get("version") != VERSION:
                raise BadInput(f"{path} is a sweeper weights file of version {meta.get('version')}, this sweeper "
                               f"reads version {VERSION}: use the sweeper that wrote it")
            arrays = []
            for layer in meta["layers"]:
                if layer["name"] not in archive.files:
                    raise BadInput(f"{path} lacks layer {layer['name']}: the file is damaged; export it again")
                array = archive[layer["name"]]
                if list(array.shape) != list(layer["shape"]):
                    raise BadInput(f"{path}: layer {layer['name']} has shape {list(array.shape)}, not "
                                   f"{layer['shape']}: the file is damaged; export it again")
                arrays.append(array)
    except BadInput:
        raise
    except FileNotFoundError:
        raise BadInput(f"no file {path}: check the path") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError):
        raise BadInput(not_ours) from None
    return Weights(meta, arrays)


def evaluate(weights: Weights, data) -> dict:
    """Test figures of `weights` on `data` (a workers.data.Dataset), computed as a trial computes them:
    test_error, the per-class report, the confident precision."""
    from workers import compiled, metrics

    want = tuple(weights.meta["image_shape"])
    if tuple(data.image_shape) != want or data.n_classes != weights.meta["n_classes"]:
        raise BadInput(f"the network takes {'x'.join(map(str, want))} images of {weights.meta['n_classes']} classes; "
                       f"{data!r} has {'x'.join(map(str, data.image_shape))} images of {data.n_classes}: "
                       "evaluate it on a data set like the one it was trained on")
    from storage.contract.params import DEFAULTS

    config = {**DEFAULTS[weights.model], **weights.meta["params"]}  # a file from before a parameter existed
    net = compiled.network(weights.model, config, want, weights.meta["n_classes"])
    net.restore([a.astype(now.dtype) for a, now in zip(weights.arrays, net.snapshot())])
    probs = net.probabilities(data.x_test)
    return dict(test_error=metrics.error(probs, data.y_test),
                report=metrics.report(probs, data.y_test), confident=metrics.confident_precision(probs, data.y_test))


def _plain(values: dict) -> dict:
    """JSON-ready: NumPy scalars as Python numbers."""
    return json.loads(json.dumps(values, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
