"""`python -m workers`: the compute side's commands (train once, run a worker)."""

from workers.cli import main

main()
