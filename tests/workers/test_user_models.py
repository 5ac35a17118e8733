"""A researcher's own network and data set through the model contract: the example residual MLP against
NumPy, .npz files against the IDX files they were made from, and every bad entry refused in one line."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from storage.contract.errors import BadInput
from tests.conftest import ROOT
from workers import compiled
from workers.data import load, mnist
from workers.entries import model_of
from workers.entries import resolved as resolve

EXAMPLES = ROOT / "docs" / "examples"
_names = itertools.count()


@pytest.fixture
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


def _numpy_resmlp(arrays: list[np.ndarray], x: np.ndarray, config: dict) -> np.ndarray:
    """The example model's forward pass and softmax by hand (relu), from its weights in layout order."""
    def relu(v):
        return np.maximum(v, 0)

    h = relu(x.reshape(len(x), -1) @ arrays[0] + arrays[1])
    for i in range(config["blocks"]):
        wa, ba, wb, bb = arrays[2 + 4 * i: 6 + 4 * i]
        h = relu(h + config["residual_scale"] * (relu(h @ wa + ba) @ wb + bb))
    logits = h @ arrays[-2] + arrays[-1]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_example_model_predicts_what_numpy_computes_from_its_weights(examples_on_path):
    config = resolve("resmlp:model", {"blocks": 3, "width": 24, "residual_scale": 0.5, "ema": 0.0})
    data = load("digits")
    net = compiled.network("resmlp:model", config, data.image_shape, data.n_classes)
    net.reset("glorot", seed=7)
    assert [p.name for p in net.layout][:4] == ["proj_W", "proj_b", "block0_a_W", "block0_a_b"]
    assert len(net.layout) == 2 + 3 * 4 + 2
    ours = net.probabilities(data.x_test)
    theirs = _numpy_resmlp(net.snapshot(), data.x_test, config)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert ours.shape == (len(data.x_test), 10)


def test_the_models_own_parameters_join_sweepers_and_shape_its_graph(examples_on_path):
    model = model_of("resmlp:model")
    assert set(model.own) == {"blocks", "width", "residual_scale"}
    assert {"blocks", "width", "residual_scale", "optimizer"} <= compiled.shaped_by("resmlp:model")
    config = resolve("resmlp:model", {"blocks": 1})
    assert (config["blocks"], config["width"], config["residual_scale"], config["lr"]) == (1, 64, 1.0, 0.1)
    with pytest.raises(BadInput, match="'depth' belongs to the built-in mlp"):
        resolve("resmlp:model", {"depth": 2})
    with pytest.raises(BadInput, match=r"blocks=17 is invalid: use an integer >= 0 and <= 16"):
        resolve("resmlp:model", {"blocks": 17})


def _mnist_npz(folder: Path, mnist_dir: Path, **extra) -> Path:
    x_train, y_train, x_test, y_test = mnist.read(mnist_dir)
    path = folder / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return path


def test_an_npz_of_the_mnist_files_loads_as_the_idx_folder_does(tmp_path, mnist_dir):
    path = _mnist_npz(tmp_path, mnist_dir)
    ours, theirs = load(f"npz:{path}", split="theano"), load(f"idx:{mnist_dir}", split="theano")
    for part in ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test"):
        a, b = getattr(ours, part), getattr(theirs, part)
        assert a.dtype == b.dtype and np.array_equal(a, b), part
    assert ours.n_classes == 10 and ours.x_train.max() == 1.0


def test_an_npz_with_its_own_validation_pair_validates_on_it(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((50, 6)).astype(np.float64)  # feature rows, float64: (N, 1, D) float32
    y = rng.integers(0, 3, 50)
    path = tmp_path / "rows.npz"
    np.savez(path, x_train=x[:30], y_train=y[:30], x_valid=x[30:40], y_valid=y[30:40], x_test=x[40:], y_test=y[40:])
    data = load(f"npz:{path}")
    assert data.image_shape == (1, 6) and data.x_train.dtype == np.float32 and data.n_classes == 3
    np.testing.assert_array_equal(data.x_valid[:, 0], x[30:40].astype(np.float32))
    np.testing.assert_array_equal(data.y_valid, y[30:40])
    with pytest.raises(BadInput, match="brings its own validation set"):
        load(f"npz:{path}", split_seed=3)


GOOD = dict(x_train=np.zeros((4, 3, 3), np.uint8), y_train=np.arange(4), x_test=np.zeros((2, 3, 3), np.uint8),
            y_test=np.arange(2))


@pytest.mark.parametrize("change, words", [
    (dict(y_test=None), "has no y_test"),
    (dict(x_train=np.zeros((4, 3, 3, 1), np.uint8)), "x_train has shape (4, 3, 3, 1)"),
    (dict(x_train=np.zeros((4, 3, 3), np.int64)), "x_train is int64"),
    (dict(y_train=np.arange(4.0)), "y_train is float64 of shape (4,)"),
    (dict(y_train=np.arange(5)), "x_train has 4 rows but y_train 5 labels"),
    (dict(y_test=np.array([0, -1])), "y_test has a negative label (-1)"),
    (dict(x_test=np.full((2, 3, 3), np.nan)), "x_test holds NaN"),
    (dict(x_test=np.zeros((2, 4, 4), np.uint8)), "its images differ in shape"),
    (dict(x_valid=np.zeros((2, 3, 3), np.uint8)), "has x_valid but no y_valid"),
    (dict(x_test=np.zeros((2, 3, 3), np.float32)), "some of its images are uint8 and some float"),
])
def test_a_bad_array_is_named_in_one_line(tmp_path, change, words):
    arrays = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    path = tmp_path / f"bad{next(_names)}.npz"
    np.savez(path, **arrays)
    with pytest.raises(BadInput) as err:
        load(f"npz:{path}")
    assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_file_that_is_not_an_npz_is_refused(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(BadInput, match="not a readable .npz file"):
        load(f"npz:{path}")


def _module(folder: Path, source: str) -> str:
    """A module of `source` in `folder` under a name of its own (imports are cached per name)."""
    name = f"usermodel_{next(_names)}"
    (folder / f"{name}.py").write_text(source)
    return name


HEADER = textwrap.dedent("""
    from storage.contract.params import Param
    from workers.nn.layers import dense
    from workers.nn.model import Model, dense_params

    def layout(config, image_shape, n_classes):
        return dense_params("out", image_shape[0] * image_shape[1], n_classes)

    def forward(params, x, config, dropout):
        return dense(x.reshape((x.shape[0], 64)), *params)
""")
WRONG_WIDTH = "def model():\n    return Model(layout=lambda c, s, k: dense_params('out', 64, 3), forward=forward)\n"


@pytest.mark.parametrize("body, entry, words", [
    ("", "nosuchmodule_xyz:model", "module nosuchmodule_xyz is not importable here"),
    ("import nosuchdependency_xyz\n", "{m}:model", "it imports nosuchdependency_xyz, which is missing"),
    ("", "{m}:model", "module {m} has no model"),
    ("def model():\n    return 42\n", "{m}:model", "gave int, not a workers.nn.model.Model"),
    ("def model(width):\n    return None\n", "{m}:model", "takes arguments"),
    ("def model():\n    raise RuntimeError('no GPU here')\n", "{m}:model", "raised RuntimeError: no GPU here"),
    ("def model():\n    return Model(layout=lambda c: [], forward=forward)\n", "{m}:model",
     "its layout cannot be called as layout(config, image_shape, n_classes)"),
    ("def model():\n    return Model(layout=layout, forward=lambda p, x: x)\n", "{m}:model",
     "its forward cannot be called as forward(params, x, config, dropout)"),
    ("def model():\n    return Model(layout=lambda c, s, k: [], forward=forward)\n", "{m}:model",
     "its layout gave list, not a non-empty list of ParamSpec"),
    (WRONG_WIDTH, "{m}:model", "its forward pass gives 3 outputs for 10 classes"),
    ("def model():\n    return Model(layout=layout, forward=lambda p, x, c, d: forward(p, x, c, d).sum(axis=1))\n",
     "{m}:model", "its forward pass gave a 1-d float32 tensor, not float logits"),
    ("def model():\n    return Model(layout=layout, forward=lambda p, x, c, d: dense(x, *p))\n", "{m}:model",
     "building or running its network failed"),
    ("def model():\n    return Model(layout=layout, forward=forward,\n"
     "                 params=(Param('lr', float, 'mine', default=1.0),))\n",
     "{m}:model", "its parameter 'lr' is one of sweeper's training parameters"),
    ("def model():\n    return Model(layout=layout, forward=forward, params=(Param('depth2', int, 'mine', low=1),))\n",
     "{m}:model", "its parameter 'depth2' has no default"),
])
def test_a_bad_model_entry_is_refused_in_one_line(tmp_path, monkeypatch, body, entry, words):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = _module(tmp_path, HEADER + body)
    entry, words = entry.format(m=name), words.format(m=name)
    data = load("digits")
    with pytest.raises(BadInput) as err:
        model_of.cache_clear()
        compiled.network(entry, resolve("mlp", {}), data.image_shape, data.n_classes)
    assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert entry in str(err.value)


def _sweeper(*args: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return subprocess.run([sys.executable, "-m", "sweeper", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


STUDY = """
[study]
name = "mine"
model = "{model}"
dataset = "{dataset}"
n_trials = 2
epochs = 1
[params]
{params}
"""


@pytest.mark.slow
@pytest.mark.parametrize("model, dataset, params, words", [
    ("{m}:model", "digits", "", "its forward pass gives 3 outputs for 10 classes"),
    ("resmlp:model", "npz:{npz}", "", "x_train is int64"),
    ("mlp", "npz:{npz}", "", "x_train is int64"),  # a built-in model on a user's arrays: checked as well
    ("resmlp:model", "digits", "depth = 2", "'depth' belongs to the built-in mlp"),
    ("resmlp:model", "digits", "blocks = {int = [0, 40]}", "blocks=40 is invalid"),
])
def test_sweeper_run_refuses_a_bad_model_or_data_set_before_anything_is_made(tmp_path, model, dataset, params,
                                                                             words):
    name = _module(tmp_path, HEADER + WRONG_WIDTH)
    npz = tmp_path / "ints.npz"
    np.savez(npz, **{**GOOD, "x_train": np.zeros((4, 3, 3), np.int64)})
    spec = tmp_path / "mine.toml"
    spec.write_text(STUDY.format(model=model.format(m=name), dataset=dataset.format(npz=npz), params=params))
    done = _sweeper("run", str(spec), "--storage", f"sqlite:///{tmp_path / 'mine.db'}", cwd=tmp_path,
                    path=f"{tmp_path}:{EXAMPLES}")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr
    assert not (tmp_path / "mine.db").exists()


E2E = """
[study]
name = "own"
model = "resmlp:model"
dataset = "npz:{npz}"
n_trials = 4
epochs = 10
heartbeat = 1
grace = 3
checkpoint_every = 2
sampler = {{name = "tpe", n_startup_trials = 4, seed = 1}}

[params]
batch_size = 2
schedule = "constant"
optimizer = "sgd"
lr = 0.05
width = 32
blocks = {{int = [1, 2]}}
residual_scale = {{float = [0.25, 1.0]}}
dropout = 0.1
"""


@pytest.mark.slow
def test_a_users_model_and_npz_are_swept_on_postgresql_through_a_killed_worker(tmp_path, mnist_dir, pg_url):
    """Two workers on PostgreSQL sweep the example residual MLP on an .npz of real MNIST images; one is
    killed mid-trial, its trial is retried from its checkpoint, every epoch is recorded once, and the
    best trial's exported weights evaluate to its recorded test error."""
    import os
    import signal
    import time

    import optuna
    import sqlalchemy as sa

    from storage import epochs

    x_train, y_train, x_test, y_test = mnist.read(mnist_dir)
    npz = tmp_path / "mnist-part.npz"
    # 6,000 images in minibatches of 2: half a second an epoch here, so that a trial is caught mid-way
    np.savez(npz, x_train=x_train[:6000], y_train=y_train[:6000], x_test=x_test[:1000], y_test=y_test[:1000])
    spec = tmp_path / "own.toml"
    spec.write_text(E2E.format(npz=npz))
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES), "SWEEPER_ARTIFACTS": str(tmp_path / "artifacts")}
    made = subprocess.run([sys.executable, "-m", "sweeper", "create", str(spec), "--storage", pg_url], env=env,
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    logs = [open(tmp_path / f"worker-{i}.log", "w+") for i in range(2)]
    workers = [subprocess.Popen([sys.executable, "-m", "workers", "worker", "own", "--storage", pg_url, "--threads",
                                 "1"], stdout=log, stderr=subprocess.STDOUT, env=env) for log in logs]
    engine = sa.create_engine(pg_url)

    def rows():
        try:
            return epochs.read(engine, 1)
        except sa.exc.OperationalError:  # the workers are still making the tables
            return None

    study = optuna.load_study(study_name="own", storage=pg_url)
    try:
        deadline, victim = time.monotonic() + 240, None
        while victim is None and time.monotonic() < deadline:
            assert all(w.poll() is None for w in workers), [p.read_text() for p in tmp_path.glob("*.log")]
            found = rows()
            last = found.groupby("trial")["epoch"].max() if found is not None else {}
            for trial in [int(t) for t, epoch in dict(last).items() if 3 <= epoch <= 7]:
                running = study.get_trials(deepcopy=False)[trial]
                if running.state.name == "RUNNING":
                    victim = next(w for w in workers if running.user_attrs["worker"].endswith(f":{w.pid}"))
                    break
            time.sleep(0.05)
        assert victim is not None, "no trial reached epoch 3 in time"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        killed_at = int(rows().query("trial == @trial")["epoch"].max())
        assert killed_at < 10, "the trial ended before it was killed: give it slower epochs"
        survivor = next(w for w in workers if w is not victim)
        assert survivor.wait(timeout=600) == 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait()
        for log in logs:
            log.close()
    saved = killed_at - killed_at % 2
    out = (tmp_path / f"worker-{workers.index(survivor)}.log").read_text()
    assert f"resumes trial {trial} from its checkpoint at epoch {saved}" in out, out[-3000:]
    trials = optuna.load_study(study_name="own", storage=pg_url).trials
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 1 and "RUNNING" not in states, states
    found = rows()
    engine.dispose()
    assert found.duplicated(["trial", "epoch"]).sum() == 0
    for t in trials:
        mine = found[found["trial"] == t.number]["epoch"].tolist()
        assert mine == (list(range(1, 11)) if t.state.name == "COMPLETE" else list(range(1, killed_at + 1))), t.number
        if t.state.name == "COMPLETE":
            assert set(t.params) == {"blocks", "residual_scale"}

    best = min((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    exported = subprocess.run([sys.executable, "-m", "sweeper", "export", "own", "--storage", pg_url, "--trial",
                               str(best.number), "--out", str(tmp_path / "best.npz")], env=env, capture_output=True,
                              text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    evaluated = subprocess.run([sys.executable, "-m", "sweeper", "evaluate", str(tmp_path / "best.npz"), "--json"],
                               env=env, capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    import json

    figures = json.loads(evaluated.stdout.splitlines()[-1])
    assert figures["test_error"] == best.user_attrs["test_error"]
    assert figures["dataset"] == f"npz:{npz}" and best.user_attrs["test_error"] < 0.2  # it learned


def test_the_dropout_switch_drops_in_training_and_passes_through_in_evaluation():
    import pytensor
    import pytensor.tensor as pt

    from workers.nn.model import Dropout

    x = pt.matrix("x", dtype="float32", shape=(1, 10_000))
    rng = pytensor.shared(np.random.default_rng(0))
    on = Dropout(pt.constant(np.float32(0.25)), pt.constant(np.float32(0.5)), rng)
    hidden, inputs = on.hidden(x), on.input(x)
    out = pytensor.function([x], [hidden, inputs], updates={rng: on.updates[-1]})(np.ones((1, 10_000), np.float32))
    for values, rate in zip(out, (0.25, 0.5)):
        kept = values[values != 0]
        assert abs(1 - len(kept) / values.size - rate) < 0.02  # about `rate` dropped
        np.testing.assert_allclose(kept, 1 / (1 - rate), rtol=1e-6)  # inverted: survivors scaled up
    assert on.on and len(on.updates) == 2
    off = Dropout()
    assert not off.on and off.hidden(x) is x and off.input(x) is x and off.updates == []


def test_a_model_that_never_drops_trains_and_checkpoints_at_any_dropout_rate(tmp_path, monkeypatch):
    from workers.train import train

    monkeypatch.syspath_prepend(str(tmp_path))
    name = _module(tmp_path, HEADER + "def model():\n    return Model(layout=layout, forward=forward)\n")
    saved = []
    result = train(f"{name}:model", {"dropout": 0.3, "input_dropout": 0.2, "batch_size": 64}, load("digits"),
                   epochs=3, every=1, on_checkpoint=saved.append)
    assert [s.epoch for s in saved] == [1, 2] and saved[-1].net["rng"] is None
    assert result.epochs_run == 3 and result.test_error < 0.5


@pytest.mark.slow
def test_the_shipped_example_study_reads_with_the_models_own_parameters_searched(monkeypatch):
    from sweeper import toml_spec

    monkeypatch.setenv("PYTHONPATH", str(EXAMPLES))
    spec = toml_spec.read(EXAMPLES / "resmlp.toml")
    assert spec.model == "resmlp:model" and {"blocks", "width", "residual_scale", "lr"} <= set(spec.space)
    assert set(spec.model_params) == {"blocks", "width", "residual_scale"}
    assert (spec.space["blocks"].low, spec.space["blocks"].high) == (0, 4)


@pytest.mark.slow
@pytest.mark.parametrize("extra, params, words", [
    ('seed_draws = ["init", "split"]', "", 'seed_draws has "split", but npz:'),
    ("", "valid_size = 0.1", "valid_size is set, but npz:"),
    ("", 'loss = "positive_ce"', None),  # two classes: the two-class loss is fine
])
def test_a_study_on_an_npz_is_checked_against_its_arrays_when_it_is_made(tmp_path, extra, params, words):
    from sweeper import toml_spec

    rows = np.random.default_rng(0).random((12, 4))
    path = tmp_path / "two.npz"
    np.savez(path, x_train=rows[:6], y_train=np.array([0, 1] * 3), x_valid=rows[6:9], y_valid=np.array([0, 1, 0]),
             x_test=rows[9:], y_test=np.array([1, 0, 1]))
    text = STUDY.format(model="mlp", dataset=f"npz:{path}", params=params).replace("epochs = 1", f"epochs = 1\n{extra}")
    if words is None:
        assert toml_spec.parse(tomllib.loads(text)).dataset == f"npz:{path}"
        return
    with pytest.raises(BadInput, match=words):
        toml_spec.parse(tomllib.loads(text))
