"""Errors and warnings shared by both sides: bad input (exit 2) says what to fix in one line."""

import contextlib
import difflib
import warnings


class BadInput(ValueError):
    """A user mistake: the message is one line that names the problem and the fix (the CLIs exit 2)."""


def did_you_mean(value, known, *, otherwise: str | None = None, cutoff: float = 0.6) -> str:
    """"did you mean 'X'?" for the name of `known` nearest to `value` (difflib), else `otherwise`
    (default: "use one of A, B, ...")."""
    known = [str(k) for k in known]
    near = difflib.get_close_matches(str(value), known, n=1, cutoff=cutoff)
    if near:
        return f"did you mean '{near[0]}'?"
    return "use one of " + ", ".join(known) if otherwise is None else otherwise


@contextlib.contextmanager
def optuna_experimental():
    """Use Optuna's experimental features (metric names, heartbeat retries, plots) without its warning
    that they are: sweeper pins the Optuna it is tested with."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def first_line(exc: BaseException) -> str:
    """The first line of a (driver) error, without SQLAlchemy's background links or a final '.' or ':'."""
    inner = getattr(exc, "orig", None) or exc.__cause__ or exc
    text = str(inner).strip().splitlines()
    return (text[0] if text else type(inner).__name__).rstrip(".:")
