"""Calibration on real training (the bundled digits): claims between two configurations that differ by
nothing that matters are never supported, a large real effect always is, report after report."""

from __future__ import annotations

import pytest

from sweeper import analysis

pytestmark = pytest.mark.slow  # real workers training real networks

# "64 again" validates on one image more than "64": the same network and data in distribution, but every
# minibatch differs from the first step on, so its runs are as good as independent draws of the same thing.
SPEC = """\
[study]
name = "calibration{seed}"
model = "mlp"
dataset = "digits"
epochs = 8
seed = {seed}
repeats = 4
seed_draws = ["init", "order", "dropout", "split"]

[params]
activation = "relu"
optimizer = "sgd"
lr = 0.3
batch_size = 50

[[point]]
name = "64"
width = 64
valid_size = 300

[[point]]
name = "64 again"
width = 64
valid_size = 301

[[point]]
name = "4"
width = 4
valid_size = 300

[[claim]]
text = "A network is more accurate than its twin (no real effect)."
kind = "higher"
metric = "test_accuracy"
x = "64 again"
y = "64"

[[claim]]
text = "The same twin on validation (no real effect)."
kind = "lower"
metric = "valid_error"
x = "64 again"
y = "64"

[[claim]]
text = "64 hidden units are more accurate than 4 (a large real effect)."
kind = "higher"
metric = "test_accuracy"
x = "64"
y = "4"
"""


def test_identical_configurations_are_never_supported_and_a_large_effect_always_is(sweeper, write_spec, tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    for seed in (0, 100, 200):  # three reports, each on its own seeds
        spec = write_spec(SPEC.format(seed=seed), f"c{seed}.toml")
        done = sweeper("run", spec, "--storage", url, "--workers", "2", timeout=600)
        assert done.returncode == 0, done.stderr
        claims = analysis.open(f"calibration{seed}", storage=url).claims()
        assert claims["verdict"].iloc[:2].tolist() == ["inconclusive"] * 2, claims  # neither way: no effect
        assert claims["verdict"].iloc[2] == "supported", claims
        assert claims["n"].tolist() == [4, 4, 4]
