"""`python -m workers`: the compute side's commands (train once, run a worker).

`sweeper train|evaluate|worker ARGS` run as `python -m workers COMMAND ARGS` (sweeper.cli execs it), as do
`sweeper run`'s workers: a command's help and usage errors name it `sweeper COMMAND`, the way people type
it. The bare group keeps its own name (`python -m workers --help`).
"""

import functools
import sys

from storage.contract.exits import run_cli
from workers.cli import cli

named = len(sys.argv) > 1 and sys.argv[1] in cli.commands
run_cli(functools.partial(cli, prog_name="sweeper" if named else None))
