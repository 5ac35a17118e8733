"""Errors shared by both sides: bad input (exit 2) says what to fix in one line."""


class BadInput(ValueError):
    """A user mistake: the message is one line that names the problem and the fix."""

    exit_code = 2
