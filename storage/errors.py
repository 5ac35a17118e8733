"""Errors shared by both sides: bad input (exit 2) says what to fix in one line."""


class BadInput(ValueError):
    """A user mistake: the message is one line that names the problem and the fix."""

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """The first line of a (driver) error, without SQLAlchemy's background links or a final '.' or ':'."""
    inner = getattr(exc, "orig", None) or exc.__cause__ or exc
    text = str(inner).strip().splitlines()
    return (text[0] if text else type(inner).__name__).rstrip(".:")
