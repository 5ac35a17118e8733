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
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from storage.contract import files
from storage.contract.errors import BadInput
from storage.contract.params import is_user_model

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

    @property
    def config(self) -> dict:
        """The full training configuration: the file's parameters over the defaults (a file from before
        a parameter existed gets its default), checked as `sweeper train` checks them."""
        from storage.contract.params import resolve

        return resolve(self.model, self.meta["params"])


def of(net, model: str, config: dict, n_classes: int, figures: dict) -> Weights:
    """The weights a trained workers.compiled.Network evaluates with (the moving average where it is on)."""
    arrays = [np.asarray(a) for a in net.snapshot()]
    layers = [dict(name=spec.name, shape=list(a.shape)) for spec, a in zip(net.layout, arrays)]
    from storage.contract.params import param_to_json
    from workers.entries import model_of

    own = {k: param_to_json(p) for k, p in model_of(model).own.items()}
    meta = dict(format=FORMAT, version=VERSION, model=model, model_params=own, params=_plain(config),
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
    files.check_replaceable(path)  # a read-only file is refused before the training, not after
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
    """Read a file written by `save`; BadInput saying what is wrong with any other file, including one
    whose description is not one sweeper writes (see `_check_meta`)."""
    path = Path(path)
    not_ours = f"{path} is not a sweeper weights file (write one with sweeper export or sweeper train --save)"
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block, a device never end
            raise BadInput(f"{path} is not a regular file: give a .npz written by sweeper export or train --save")
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile) or META not in archive.files:
                raise BadInput(not_ours)
            meta = json.loads(str(archive[META]))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise BadInput(not_ours)
            if meta.get("version") != VERSION:
                raise BadInput(f"{path} is a sweeper weights file of version {meta.get('version')!r}, this sweeper "
                               f"reads version {VERSION}: use the sweeper that wrote it")
            _check_meta(path, meta)
            arrays = []
            for layer in meta["layers"]:
                if layer["name"] not in archive.files:
                    raise BadInput(f"{path} lacks layer {layer['name']}: the file is damaged; export it again")
                array = archive[layer["name"]]
                if array.dtype.kind != "f":
                    raise BadInput(f"{path}: layer {layer['name']} holds {array.dtype} values, not floats: the "
                                   "file is damaged or was edited; export it again")
                if list(array.shape) != list(layer["shape"]):
                    raise BadInput(f"{path}: layer {layer['name']} has shape {list(array.shape)}, not "
                                   f"{layer['shape']}: the file is damaged; export it again")
                arrays.append(array)
    except BadInput:
        raise
    except FileNotFoundError:
        raise BadInput(f"no file {path}: check the path") from None
    except MemoryError:
        raise BadInput(f"{path}: a layer too large to hold in memory: the file is damaged or not one sweeper "
                       "wrote; export it again") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError):
        raise BadInput(not_ours) from None  # EOFError: an empty file (click would take it for Ctrl-D)
    return Weights(meta, arrays)


def _check_meta(path: Path, meta: dict) -> None:
    """BadInput unless `meta` describes a network as `of` writes it: a known model, parameters `sweeper
    train` accepts, an image shape of two positive integers, at least two classes, a list of named
    layers with shapes, and figures naming the data set. Whether the layers are those the parameters
    build is checked when the network is built (`evaluate`)."""
    from storage.contract.params import declare, params_from_json, resolve

    def bad(what: str) -> BadInput:
        return BadInput(f"{path}: {what}: the file is damaged or was edited; export it again")

    def count(value, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    model = meta.get("model")
    if not isinstance(model, str):
        raise bad(f"model {model!r} is not a name")
    if not isinstance(meta.get("params"), dict):
        raise bad(f"params {meta.get('params')!r} is not a table of training parameters")
    try:
        if is_user_model(model):  # its own parameters, as the file recorded them
            own = meta.get("model_params")
            declare(model, params_from_json(own) if isinstance(own, dict) else {})
        resolve(model, meta["params"])
    except (BadInput, KeyError, TypeError) as exc:
        raise bad(f"its model and parameters are refused ({exc})") from None
    shape = meta.get("image_shape")
    if not (isinstance(shape, list) and len(shape) == 2 and all(count(d, 1) for d in shape)):
        raise bad(f"image_shape {shape!r} is not two positive integers (height, width)")
    if not count(meta.get("n_classes"), 2):
        raise bad(f"n_classes {meta.get('n_classes')!r} is not an integer of at least 2")
    layers = meta.get("layers")
    if not (isinstance(layers, list) and layers and all(
            isinstance(la, dict) and isinstance(la.get("name"), str) and isinstance(la.get("shape"), list)
            and all(count(d, 0) for d in la["shape"]) for la in layers)):
        raise bad("layers is not a list of {name, shape} entries")
    figures = meta.get("figures", {})
    if not isinstance(figures, dict) or not isinstance(figures.get("dataset", ""), str):
        raise bad(f"figures {figures!r} is not a table naming the data set")


def evaluate(weights: Weights, data) -> dict:
    """Test figures of `weights` on `data` (a workers.data.Dataset), computed as a trial computes them:
    test_error, the per-class report, the confident precision."""
    from workers import compiled, metrics

    want = tuple(weights.meta["image_shape"])
    if tuple(data.image_shape) != want or data.n_classes != weights.meta["n_classes"]:
        raise BadInput(f"the network takes {'x'.join(map(str, want))} images of {weights.meta['n_classes']} classes; "
                       f"{data!r} has {'x'.join(map(str, data.image_shape))} images of {data.n_classes}: "
                       "evaluate it on a data set like the one it was trained on")
    net = compiled.network(weights.model, weights.config, want, weights.meta["n_classes"])
    _check_layers(weights, net)
    net.restore([a.astype(now.dtype) for a, now in zip(weights.arrays, net.snapshot())])
    probs = net.probabilities(data.x_test)
    return dict(test_error=metrics.error(probs, data.y_test),
                report=metrics.report(probs, data.y_test), confident=metrics.confident_precision(probs, data.y_test))


def _check_layers(weights: Weights, net) -> None:
    """BadInput unless the file's layers are, in order, the names and shapes of the network its own
    parameters build (a file can describe itself consistently and still not be that network)."""
    have = [(layer["name"], list(a.shape)) for layer, a in zip(weights.meta["layers"], weights.arrays)]
    need = [(spec.name, list(a.shape)) for spec, a in zip(net.layout, net.snapshot())]
    if have == need:
        return
    what = (f"holds {len(have)} layers, the {weights.model} its parameters describe has {len(need)}"
            if len(have) != len(need) else
            next(f"has {h[0]} {h[1]} as layer {i}, the {weights.model} its parameters describe has {n[0]} {n[1]}"
                 for i, (h, n) in enumerate(zip(have, need)) if h != n))
    raise BadInput(f"the weights file {what}: the file is damaged or was edited; export it again")


def _plain(values: dict) -> dict:
    """JSON-ready: NumPy scalars as Python numbers."""
    return json.loads(json.dumps(values, default=lambda v: v.item() if hasattr(v, "item") else str(v)))
