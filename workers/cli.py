"""`python -m workers`: train once (`train`) or pull trials from a study (`worker`); thin click commands."""

from __future__ import annotations

import json
import sys

import click

from storage.contract.errors import BadInput
from workers.worker_cli import worker

EXIT_DIVERGED = 3  # the training diverged (bad input is 2: storage.contract.exits.run_cli)


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
def cli() -> None:
    """sweeper's compute side."""


def _param(ctx, option, values) -> dict:
    """Parse repeated NAME=VALUE options into a dict (values checked later against storage.contract.params)."""
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BadInput(f"--param {item!r} is malformed: write NAME=VALUE, e.g. --param lr=0.1")
        out[name.strip()] = value.strip()
    return out


@cli.command()
@click.option("--model", default="mlp", show_default=True, help="mlp, lenet or your own as package.module:function")
@click.option("--dataset", default="digits", show_default=True,
              help="digits, mnist, idx:DIR, npz:FILE or your loader as package.module:function")
@click.option("--param", "params", multiple=True, callback=_param, metavar="NAME=VALUE",
              help="a training parameter (repeatable), e.g. --param lr=0.1")
@click.option("--epochs", default=None, type=click.IntRange(min=1), help="passes over the training set [default: 10]")
@click.option("--steps", default=None, type=click.IntRange(min=1),
              help="or a length in optimizer steps (minibatch updates), the last epoch cut short")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**32 - 1))
@click.option("--backend", default=None, help="jax (default), numba or c; or $SWEEPER_BACKEND")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="BLAS/OpenMP/XLA threads for this process")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: one object per epoch, then a final one")
@click.option("--save", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="write the evaluated weights to FILE (.npz; sweeper evaluate reads it)")
def train(model, dataset, params, epochs, steps, seed, backend, threads, as_json, save) -> None:
    """Train one network once, without a database, and report epoch by epoch."""
    if epochs is not None and steps is not None:
        raise BadInput("--epochs and --steps both give the training length: use one of them")
    if steps is None:
        epochs = epochs or 10
    from storage.contract.options import WorkerOptions
    from storage.contract.params import check_model, is_user_model, resolve
    from workers import runtime, weights

    setup = None
    if is_user_model(check_model(model)):  # its parameters are known once it is imported, with PyTensor
        setup = runtime.configure(WorkerOptions(threads=threads, backend=backend))
        from workers.entries import model_of

        model_of(model)
    config = resolve(model, params)  # bad model or parameters fail before any data is read or compiled
    if save is not None:
        weights.writable(save)
    setup = setup or runtime.configure(WorkerOptions(threads=threads, backend=backend))
    from workers.data import load
    from workers.train import Diverged
    from workers.train import train as run

    data = load(dataset, valid_size=config["valid_size"], split=config["split"])

    def show(rec) -> None:
        if as_json:
            click.echo(json.dumps(dict(type="epoch", **rec.__dict__)))
        else:
            click.echo(f"epoch {rec.epoch:4d}  loss {rec.train_loss:.4f}  train_error {rec.train_error:7.2%}  "
                       f"valid_error {rec.valid_error:7.2%}  lr {rec.lr:.3g}  {rec.seconds:.2f}s")

    if not as_json:
        click.echo(f"{model} on {data!r}, backend {setup.backend}")
    try:
        result = run(model, params, data, epochs=epochs, steps=steps, seed=seed, on_epoch=show)
    except Diverged as exc:
        if as_json:
            click.echo(json.dumps(dict(type="diverged", epoch=exc.epoch, error=str(exc))))
        click.echo(f"error: {exc}: lower the learning rate or add a schedule", err=True)
        sys.exit(EXIT_DIVERGED)
    if save is not None:
        weights.save(result.weights, save)
    if as_json:
        click.echo(json.dumps(dict(type="result", **result.to_dict())))
        return
    click.echo(f"test_error {result.test_error:.2%}  valid_error {result.valid_error:.2%}  "
               f"epochs {result.epochs_run} ({result.steps_run} steps)"
               f"{' (early stop)' if result.stopped_early else ''}  "
               f"{result.seconds:.1f}s")
    _say_test_figures(result.report, result.confident)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dataset", default=None, help="digits, mnist or idx:DIR [default: the one it was trained on]")
@click.option("--backend", default=None, help="jax (default), numba or c; or $SWEEPER_BACKEND")
@click.option("--json", "as_json", is_flag=True, help="one JSON object")
def evaluate(file, dataset, backend, as_json) -> None:
    """Test figures of a weights file (sweeper export, sweeper train --save) on a data set's test images."""
    from storage.contract.options import WorkerOptions
    from workers import runtime, weights

    kept = weights.load(file)  # a file that is not ours fails before anything is imported or read
    dataset = dataset or kept.meta.get("figures", {}).get("dataset")
    if not dataset:
        raise BadInput(f"{file} does not name the data set it was trained on: pass --dataset")
    runtime.configure(WorkerOptions(backend=backend))
    from workers.data import load
    from workers.entries import model_of

    model_of(kept.model)  # a user's own model: imported, its parameters known
    config = kept.config
    data = load(dataset, valid_size=config["valid_size"], split=config["split"])
    figures = weights.evaluate(kept, data)
    if as_json:
        click.echo(json.dumps(dict(type="evaluation", file=str(file), dataset=data.name, **figures)))
        return
    click.echo(f"{kept.model} of {file} on {data!r}")
    click.echo(f"test_error {figures['test_error']!r} ({figures['test_error']:.2%})")
    _say_test_figures(figures["report"], figures["confident"])


@cli.command()
@click.argument("model")
@click.option("--dataset", default="digits", show_default=True, help="the data set to load and build it for")
@click.option("--json", "as_json", is_flag=True, help="one JSON object: its own parameters, the data's classes")
def check(model, dataset, as_json) -> None:
    """Check MODEL (mlp, lenet or package.module:function) on DATASET as a worker will run them: the
    model imported, the data loaded and checked, the network built with its defaults and run once."""
    from storage.contract.options import WorkerOptions
    from storage.contract.params import check_model, param_to_json, resolve
    from workers import runtime

    runtime.configure(WorkerOptions(threads=1))
    from storage.contract import datasets
    from workers import compiled
    from workers.data import has_own_validation, load
    from workers.entries import model_of

    net_model = model_of(check_model(model))
    config = resolve(model)
    data = load(dataset, valid_size=config["valid_size"], split=config["split"])
    compiled.network(model, config, data.image_shape, data.n_classes)
    own_validation = datasets.is_users(dataset) and has_own_validation(dataset)
    if as_json:
        click.echo(json.dumps({"params": {k: param_to_json(p) for k, p in net_model.own.items()},
                               "n_classes": data.n_classes, "own_validation": own_validation}))
        return
    click.echo(f"{model} ({net_model.name or 'no name'}) builds and runs on {data!r}"
               + (", its own validation set" if own_validation else ""))
    for p in net_model.params:
        click.echo(f"  {p.name} = {p.default!r}  ({p.describe()}): {p.doc}")


def _say_test_figures(report: dict, confident: dict) -> None:
    """The per-class report and the confident precision, as train and evaluate print them."""
    from workers.metrics import report_text

    click.echo(report_text(report))
    click.echo(f"confident predictions (p > 0.5): n={confident['n']}  precision={confident['precision']:.2%}")


cli.add_command(worker)


def main() -> None:
    """Run the compute CLI: BadInput and usage errors are one line and exit 2."""
    from storage.contract.exits import run_cli

    run_cli(cli)
