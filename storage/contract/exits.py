"""How both commands (sweeper, python -m workers) exit: one-line errors with their codes, and at once."""

from __future__ import annotations

import logging
import os
import sys


def exit_now(code: int) -> None:
    """Flush logs and output, then exit at once with `code`.

    Tearing down XLA, pandas and idle thread pools takes a worker ~0.8 s and `sweeper run` ~0.4 s
    after their last line; a sweep waits for both. Call only when every write is committed.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_cli(cli) -> None:
    """Run the click group `cli`: BadInput and usage errors are one line on stderr and exit 2, an
    unconfirmed prompt exits 130; anything else is a traceback (exit 1)."""
    import click

    from storage.contract.errors import BadInput

    try:
        cli(standalone_mode=False)
    except BadInput as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # usage errors: one line, with where to read more
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
