"""A user's model or data loader named package.module:function, imported and checked on the worker."""

from __future__ import annotations

import functools
import importlib
import inspect

from storage.contract.errors import BadInput, first_line
from storage.contract.params import Param, declare, is_user_model, resolve
from workers.nn.model import Model

MODEL_FIX = "see docs/models.md for the contract"


def imported(entry: str, what: str):
    """The object `entry` (package.module:function) names, imported on this machine; BadInput, one line,
    when the module does not import or lacks the name."""
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        own = exc.name is None or module_name == exc.name or module_name.startswith(f"{exc.name}.")
        where = "" if own else f" (it imports {exc.name}, which is missing)"
        raise BadInput(f"{what} {entry}: module {module_name} is not importable here{where}: install it or "
                       "add its folder to PYTHONPATH on every worker") from None
    except Exception as exc:  # noqa: BLE001 - the user's module raised while importing: its own words
        raise BadInput(f"{what} {entry}: importing {module_name} failed: {type(exc).__name__}: "
                       f"{first_line(exc)}: fix the module") from None
    if not hasattr(module, attr):
        raise BadInput(f"{what} {entry}: module {module_name} has no {attr}: name a function it defines")
    return getattr(module, attr)


@functools.lru_cache(maxsize=None)
def model_of(name: str) -> Model:
    """The Model called `name`: a built-in one (mlp, lenet), or a user's own entry, imported, checked
    and its own parameters declared (storage.contract.params.declare)."""
    if not is_user_model(name):
        from workers.nn.models import BUILT_IN

        return BUILT_IN[name]
    factory = imported(name, "model")
    model = _called(factory, name) if callable(factory) and not isinstance(factory, Model) else factory
    if not isinstance(model, Model):
        raise BadInput(f"model {name} gave {type(model).__name__}, not a workers.nn.model.Model: return "
                       f"Model(layout=..., forward=...), {MODEL_FIX}")
    if not isinstance(model.params, (tuple, list)) or not all(isinstance(p, Param) for p in model.params):
        raise BadInput(f"model {name}: its params are not a tuple of storage.contract.params.Param: {MODEL_FIX}")
    _check_signature(name, "layout", model.layout, ("config", "image_shape", "n_classes"))
    _check_signature(name, "forward", model.forward, ("params", "x", "config", "dropout"))
    declare(name, model.own)
    return model


def _called(factory, name: str):
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise BadInput(f"model {name} takes arguments: make it a function of none that returns a Model, "
                       f"{MODEL_FIX}") from None
    except ValueError:  # no signature to read (a builtin): call it and see
        pass
    try:
        return factory()
    except Exception as exc:  # noqa: BLE001 - the user's function raised: its own words
        raise BadInput(f"model {name} raised {type(exc).__name__}: {first_line(exc)}: fix it") from None


def _check_signature(name: str, part: str, fn, args: tuple[str, ...]) -> None:
    """BadInput unless `fn` is callable with the contract's positional arguments `args`."""
    fix = f"define {part}({', '.join(args)}), {MODEL_FIX}"
    if not callable(fn):
        raise BadInput(f"model {name}: its {part} is not a function: {fix}")
    try:
        inspect.signature(fn).bind(*args)
    except TypeError:
        raise BadInput(f"model {name}: its {part} cannot be called as {part}({', '.join(args)}): {fix}") from None
    except ValueError:
        pass


def resolved(model: str, params: dict | None = None) -> dict:
    """`model`'s full configuration for `params` (storage.contract.params.resolve), a user's model
    imported first so that its own parameters are known."""
    model_of(model)
    return resolve(model, params)
