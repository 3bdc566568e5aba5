"""A config value of the wrong type is refused before any constructor runs, naming its key: `data.batch_size=1.5`
says that data.batch_size must be an integer, instead of a traceback from `range()` mid-epoch."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig

from hw2lab.errors import HW2LabError

KINDS = {float: "a number", int: "an integer", bool: "true or false"}


def check_value_types(config: DictConfig, path: str = "") -> None:
    """Fail with one line naming the key when a value is not what the `_target_`'s constructor declares for
    it (int, float or bool, alone or with None or other non-string types): a string or fraction for an int,
    a string for a float, a number for a bool, true/false for a number. Nested targets (a model's net, its
    optimizer) are checked the same way; `path` is where `config` sits in the whole config, for the message."""
    target = config.get("_target_") if "_target_" in config else None
    hints = constructor_hints(target) if isinstance(target, str) else {}
    for key in config:
        node = config._get_node(key)
        where = f"{path}.{key}" if path else str(key)
        if isinstance(node, DictConfig):
            check_value_types(node, where)
            continue
        allowed = scalar_kinds(hints.get(key))
        if not allowed or node._is_missing():
            continue
        value = config[key]
        if value is None or not isinstance(value, int | float | str) or fits(value, allowed):
            continue
        raw = node._value()
        named = raw[2:-1] if isinstance(raw, str) and raw.startswith("${") and raw.endswith("}") else where
        shown = named if named == where else f"{named} ({where})"
        expected = next(kind for kind in KINDS if kind in allowed)
        typed = str(value).lower() if isinstance(value, bool) else repr(value)  # true, as the user typed it
        raise HW2LabError(f"{shown} must be {KINDS[expected]}, got {typed}")


def fits(value: int | float | str, allowed: tuple[type, ...]) -> bool:
    """Whether a scalar is one of the allowed kinds; an int is also a number, a bool is only true or false."""
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    return isinstance(value, float) and float in allowed


def scalar_kinds(hint: Any) -> tuple[type, ...]:
    """The scalars a hint allows: `float`, `int | None`, `float | Tensor` (torch's lr) -> (float,), ...; none
    where a string is also allowed or the hint is no scalar (a list, a Literal, a class)."""
    if hint in KINDS:
        return (hint,)
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return ()
    args = typing.get_args(hint)
    return () if str in args else tuple(kind for kind in KINDS if kind in args)


def constructor_hints(target: str) -> dict[str, Any]:
    """The annotations of the parameters a `_target_` takes: a function's own, a class's `__init__`'s and,
    while an `__init__` passes `**kwargs` on, its bases' (TibetanMNISTDataModule(file, ..., **kwargs) ->
    InMemoryImageDataModule's `batch_size: int`)."""
    try:
        found = get_object(target)
    except Exception:  # an unimportable target fails in instantiate with its own message
        return {}
    if isinstance(found, type):
        functions = [vars(cls)["__init__"] for cls in found.__mro__ if "__init__" in vars(cls)]
    else:
        functions = [found]
    hints: dict[str, Any] = {}
    for function in functions:
        try:
            own = typing.get_type_hints(function)
            parameters = inspect.signature(function).parameters.values()
        except Exception:  # annotations that do not resolve: nothing to check against
            break
        for name, hint in own.items():
            hints.setdefault(name, hint)
        if not any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
            break
    hints.pop("return", None)
    return hints
