"""Hostile files on the compute side (issue 20): a compiled-network cache others could write is not loaded,
nor JAX's cache in it, nor a kept file of something else; weights files that lie are one line; train --save
follows the umask and spares read-only files; IDX files that never end or expand past their header are
refused without reading them whole. Real files, real processes."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.clitools import one_line, sweeper_cli
from tests.conftest import ROOT
from tests.workers.test_netcache import train_apart
from workers.data.idx import write_idx

pytestmark = pytest.mark.slow  # real processes or whole runs: not in the fast lane (-m 'not slow')

META = "sweeper.json"


def _sweeper(*args, cwd: Path, umask: int = 0o022, timeout: float = 180, memory: int | None = None):
    """The real CLI with a compile folder of this test's own (not the shared cache)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SWEEPER_STORAGE", "PYTENSOR_FLAGS",
                                                            "JAX_COMPILATION_CACHE_DIR")}
    env["SWEEPER_COMPILEDIR"] = str(cwd / "compiledir")
    return sweeper_cli(*args, cwd=cwd, env=env, umask=umask, timeout=timeout, memory=memory)


# --- 2. the compiled-network cache and JAX's cache in it ------------------------------------------------------

@pytest.fixture(scope="module")
def kept(tmp_path_factory) -> tuple[Path, dict]:
    """(compile folder inside a folder of its own, the first run) after one process compiled and kept the network."""
    cache = tmp_path_factory.mktemp("above") / "compiledir"
    first, _ = train_apart(cache)
    assert first["compiled"] == 1 and len(list((cache / "sweeper-networks").glob("*.pkl.gz"))) == 1
    return cache, first


@pytest.mark.parametrize("which", ["the folder itself", "a folder above it"])
def test_a_compile_folder_others_may_write_is_not_unpickled(kept, which):
    cache, first = kept
    folder = cache if which == "the folder itself" else cache.parent
    mode = folder.stat().st_mode & 0o7777
    folder.chmod(0o777)
    try:
        again, log = train_apart(cache)
    finally:
        folder.chmod(mode)
    assert again == first  # compiled afresh (1), not loaded (0), and trained the same
    assert f"{folder} may be written by other users" in log and "compiling again" in log


def test_a_sticky_folder_above_it_is_trusted_as_tmp_is(kept):
    cache, first = kept
    mode = cache.parent.stat().st_mode & 0o7777
    cache.parent.chmod(0o1777)
    try:
        again, log = train_apart(cache)
    finally:
        cache.parent.chmod(mode)
    assert again == {**first, "compiled": 0}, log


def test_a_kept_file_of_something_else_is_compiled_again(kept):
    cache, first = kept
    path = next((cache / "sweeper-networks").glob("*.pkl.gz"))
    with gzip.open(path, "wb") as f:
        pickle.dump({"not": "a network"}, f)
    again, log = train_apart(cache)
    assert again == first
    assert "holds a dict, not a network: compiling again" in log and "Traceback" not in log


def test_jax_cache_in_a_folder_others_may_write_is_not_used(tmp_path):
    cache = tmp_path / "compiledir"
    cache.mkdir()
    cache.chmod(0o777)
    _, log = train_apart(cache)
    assert f"JAX's compilation cache {cache / 'xla'} not used: {cache} may be written by other users" in log
    assert not [p for p in (cache / "xla").rglob("*") if p.is_file()], "JAX wrote (and would read) its cache"


# --- 3. and 4. weights files: the mode they get, a read-only one, files that lie ---------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """w.npz from `sweeper train --save` under umask 022 (digits, one step)."""
    folder = tmp_path_factory.mktemp("saved")
    done = _sweeper("train", "--dataset", "digits", "--steps", "1", "--param", "width=16", "--save", "w.npz",
                    cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "w.npz"


def test_train_save_gets_the_mode_the_umask_gives(saved):
    assert saved.stat().st_mode & 0o777 == 0o644


def test_train_save_refuses_a_read_only_file_before_training(tmp_path):
    out = tmp_path / "w.npz"
    out.write_text("kept")
    out.chmod(0o444)
    done = _sweeper("train", "--steps", "1", "--save", out, cwd=tmp_path)
    one_line(done, str(out), "read-only")
    assert done.stdout == "" and out.read_text() == "kept"  # nothing trained


def _layers(width: int, depth: int = 1) -> dict:
    """Arrays of an MLP on 8x8 digits, as `weights.of` names them."""
    sizes = [64] + [width] * depth + [10]
    arrays = {}
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        arrays[f"dense{i}_W"], arrays[f"dense{i}_b"] = np.zeros((a, b), np.float32), np.zeros(b, np.float32)
    return arrays


def _consistent(meta: dict, arrays: dict, width: int) -> tuple:
    """`meta` and arrays of another width, its layers describing them: only the parameters disagree."""
    arrays = _layers(width)
    return {**meta, "layers": [dict(name=k, shape=list(a.shape)) for k, a in arrays.items()]}, arrays


LIES = {
    "a list instead of an object": lambda m, a: ([m], a),
    "null params": lambda m, a: ({**m, "params": None}, a),
    "params a list": lambda m, a: ({**m, "params": [1, 2]}, a),
    "an unknown model": lambda m, a: ({**m, "model": "resnet"}, a),
    "a model that is not a name": lambda m, a: ({**m, "model": ["mlp"]}, a),
    "the other model": lambda m, a: ({**m, "model": "lenet"}, a),
    "an unknown activation": lambda m, a: ({**m, "params": {**m["params"], "activation": "bogus"}}, a),
    "a depth its layers lack": lambda m, a: ({**m, "params": {**m["params"], "depth": 2}}, a),
    "shapes that agree with each other only": lambda m, a: _consistent(m, a, 24),
    "string arrays": lambda m, a: (m, {k: np.full(v.shape, "x") for k, v in a.items()}),
    "numbers as strings": lambda m, a: (m, {k: np.full(v.shape, "0.5") for k, v in a.items()}),
    "integer arrays": lambda m, a: (m, {k: v.astype(np.int64) for k, v in a.items()}),
    "an image shape that is a string": lambda m, a: ({**m, "image_shape": "8x8"}, a),
    "n_classes a string": lambda m, a: ({**m, "n_classes": "10"}, a),
    "layers an object": lambda m, a: ({**m, "layers": {x["name"]: x["shape"] for x in m["layers"]}}, a),
    "a null layer shape": lambda m, a: ({**m, "layers": [{**m["layers"][0], "shape": None}, *m["layers"][1:]]}, a),
    "figures a list": lambda m, a: ({**m, "figures": []}, a),
    "no data set named": lambda m, a: ({**m, "figures": {}}, a),
}


def _crafted(saved: Path, folder: Path, lie: str) -> Path:
    """A copy of the weights file `saved` with the lie `lie` told in it."""
    with np.load(saved) as archive:
        meta = json.loads(str(archive[META]))
        arrays = {k: archive[k] for k in archive.files if k != META}
    meta, arrays = LIES[lie](meta, arrays)
    crafted = folder / "crafted.npz"
    with open(crafted, "wb") as f:
        np.savez(f, **arrays, **{META: np.asarray(json.dumps(meta))})
    return crafted


# Through the real command: a lie found when the file is read, one found when its network is built, and one
# the command itself finds (no data set). The others are told to the same functions in this process.
BY_THE_COMMAND = ("null params", "a depth its layers lack", "no data set named")


@pytest.mark.parametrize("lie", BY_THE_COMMAND)
def test_evaluate_of_a_weights_file_that_lies_isone_line(saved, tmp_path, lie):
    crafted = _crafted(saved, tmp_path, lie)
    line = one_line(_sweeper("evaluate", crafted, cwd=tmp_path))
    assert str(crafted) in line or "the weights file " in line, line  # the file, or its layers when built


@pytest.mark.parametrize("lie", [lie for lie in LIES if lie not in BY_THE_COMMAND])
def test_a_weights_file_that_lies_is_refused_in_one_line_when_read_or_built(saved, tmp_path, lie):
    from storage.contract.errors import BadInput
    from workers import weights
    from workers.data import load

    crafted = _crafted(saved, tmp_path, lie)
    with pytest.raises(BadInput) as refused:  # what `sweeper evaluate` does with the file, in its order
        kept = weights.load(crafted)
        weights.evaluate(kept, load(kept.meta["figures"]["dataset"], valid_size=kept.config["valid_size"],
                                    split=kept.config["split"]))
    line = str(refused.value)
    assert "\n" not in line and (str(crafted) in line or "the weights file " in line), line


def test_evaluate_of_the_true_file_still_works(saved, tmp_path):
    done = _sweeper("evaluate", saved, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["type"] == "evaluation"


@pytest.mark.parametrize("kind", ["empty", "fifo", "folder"])
def test_evaluate_of_an_empty_or_irregular_file_isone_line(tmp_path, kind):
    path = tmp_path / "w.npz"
    if kind == "empty":
        path.write_bytes(b"")  # click took numpy's EOFError for Ctrl-D: "aborted", exit 130
    elif kind == "fifo":
        os.mkfifo(path)  # no writer: reading it would wait for ever
    else:
        path.mkdir()
    one_line(_sweeper("evaluate", path, cwd=tmp_path, timeout=60), str(path))


# --- 5. IDX files are read as streams, never past what their header declares --------------------------------------


def _idx_dir(folder: Path) -> Path:
    """Four small valid MNIST-named IDX files in `folder`."""
    folder.mkdir()
    for stem, array in (("train-images-idx3-ubyte", np.zeros((1, 8, 8), np.uint8)),
                        ("train-labels-idx1-ubyte", np.zeros(1, np.uint8)),
                        ("t10k-images-idx3-ubyte", np.zeros((1, 8, 8), np.uint8)),
                        ("t10k-labels-idx1-ubyte", np.zeros(1, np.uint8))):
        write_idx(folder / f"{stem}.gz", array)
    return folder


def _bomb(path: Path) -> None:
    """A gzip IDX file whose header declares one 28x28 image (784 bytes) and whose stream expands to 4 GiB
    (64 gzip members of 64 MiB of zeros: 4 MB on disk)."""
    member = gzip.compress(b"\0" * (1 << 26), mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(bytes([0, 0, 8, 3]) + np.asarray((1, 28, 28), ">u4").tobytes() + b"\0" * 784))
        for _ in range(64):
            f.write(member)


def test_a_gzip_idx_file_expanding_past_its_header_is_refused_under_a_memory_limit(saved, tmp_path):
    folder = _idx_dir(tmp_path / "idx")
    images = folder / "train-images-idx3-ubyte.gz"
    _bomb(images)
    done = _sweeper("evaluate", saved, "--dataset", f"idx:{folder}", cwd=tmp_path, timeout=60, memory=1 << 30)
    one_line(done, str(images), "oversized payload", "needs 784 bytes")


READ = """
import sys
from storage.contract.errors import BadInput
from workers.data.idx import read_idx
try:
    read_idx(sys.argv[1])
except BadInput as exc:
    print(exc)
"""


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_read_idx_refuses_what_is_not_a_regular_file(tmp_path, kind):
    """(mnist.find passes only regular files; read_idx is the last guard for its other callers)"""
    path = tmp_path / "t10k-images-idx3-ubyte"
    if kind == "fifo":
        os.mkfifo(path)  # no writer: reading it would wait for ever
    else:
        path.symlink_to("/dev/zero")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    done = subprocess.run([sys.executable, "-c", READ, str(path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, preexec_fn=limit)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"{path}: not a regular file"), done.stdout
