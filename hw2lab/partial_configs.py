"""A `_partial_` Hydra config and the partial it makes, both ways: how a TaskModule keeps its net, optimiser
and schedule in a checkpoint's hyper-parameters (plain values, so the checkpoint loads with weights_only)
and how `load_from_checkpoint` makes them again without the run's config.

    as_config(functools.partial(torch.optim.AdamW, lr=1e-3))
    == {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3}
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from hw2lab.errors import check

PLAIN = (str, int, float, bool, type(None))


class NotDescribable(Exception):
    """A value a config cannot hold (an object built already, a lambda): the partial has no config."""


def plain(value: Any) -> Any:
    """`value` in plain containers (lists, dicts of str keys, scalars); NotDescribable if it holds anything
    else. Tuples and OmegaConf containers become lists and dicts; a partial becomes its `_partial_` config."""
    if isinstance(value, ListConfig | DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, functools.partial):
        return _partial_config(value)
    raise NotDescribable(repr(value))


def _partial_config(factory: Callable) -> dict:
    target = getattr(factory, "func", factory)
    name = f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"
    if getattr(factory, "args", ()) or "<" in name:  # positional settings, a lambda or a local class
        raise NotDescribable(repr(factory))
    keywords = {key: plain(value) for key, value in getattr(factory, "keywords", {}).items()}
    return {"_target_": name, "_partial_": True, **keywords}


def as_config(factory: Callable | Mapping | None) -> dict | None:
    """The `_partial_` config that makes `factory` (a partial of keyword settings, or a class or function
    taking no settings), in plain values; a mapping as it is; None for None or for a factory no config
    can describe (one holding a built object, such as a loaded encoder: its checkpoint needs it passed)."""
    if factory is None:
        return None
    if isinstance(factory, Mapping):
        return plain(factory)
    try:
        return _partial_config(factory)
    except NotDescribable:
        return None


def _targets(config: Any) -> list[str]:
    """Every `_target_` in a config, nested ones included."""
    if isinstance(config, Mapping):
        own = [str(config["_target_"])] if "_target_" in config else []
        return own + [target for value in config.values() for target in _targets(value)]
    if isinstance(config, list):
        return [target for value in config for target in _targets(value)]
    return []


def from_config(factory: Callable | Mapping | None, key: str, allowed: tuple[str, ...]) -> Callable | None:
    """The partial a `_partial_` config describes (a checkpoint's); a partial, an object or None as it is.
    A checkpoint loads with weights_only, so its configs may only name targets under the `allowed` module
    prefixes; `key` names the setting in the messages (e.g. "model.net")."""
    if not isinstance(factory, Mapping):
        return factory
    check(factory.get("_partial_") is True, f"{key} from a mapping must be a _partial_ config")
    for target in _targets(factory):
        check(target.startswith(allowed), f"{key} may only name targets under {allowed}, got {target!r}")
    # Not recursive: a nested config (the Transformer's encoder) stays a config in the partial, for the net
    # to make when it is built, so that the partial can be described again.
    return instantiate(dict(factory), _recursive_=False)
