"""The `sweeper` command: thin click wrappers; compute commands run `python -m workers` in a process."""

from __future__ import annotations

import os
import sys

import click

from storage.errors import BadInput

PASS_THROUGH = dict(ignore_unknown_options=True, allow_extra_args=True, help_option_names=[])


def _exec_workers(command: str, args: list[str]) -> None:
    """Replace this process by `python -m workers COMMAND ARGS` (the compute side)."""
    argv = [sys.executable, "-m", "workers", command, *args]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


@click.group(context_settings=dict(help_option_names=["-h", "--help"]))
def cli() -> None:
    """Hyperparameter sweeps of PyTensor networks on MNIST, stored in Optuna's database."""


@cli.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train(args: tuple[str, ...]) -> None:
    """Train one network once, without a database (`sweeper train --help`)."""
    _exec_workers("train", list(args))


def main() -> None:
    """Entry point: run the CLI, turning BadInput into one line on stderr and exit 2."""
    try:
        cli(standalone_mode=True)
    except BadInput as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
