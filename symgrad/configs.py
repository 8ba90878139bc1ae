"""Rebuilding saved modules from their configs, for :func:`symgrad.load`.

A saved file records a module's class name and its :meth:`~symgrad.nn.Module.config` (the
constructor's arguments as JSON data).  Only the classes in :data:`BUILDERS` are ever constructed, and
only from settings their schema allows, each checked for its type.  Before anything is constructed,
the number of values the config implies (parameters and buffers, as ``state_dict`` holds them) is
compared with the number the file holds, so a forged config cannot make ``load`` allocate more than
the file's own arrays.  A class joins by an entry in :data:`BUILDERS` and one in :data:`SCHEMAS`.

Examples
--------
>>> import symgrad as sg
>>> from symgrad.configs import build, rebuildable
>>> seq = sg.nn.Sequential(sg.nn.Linear(2, 3), sg.nn.ReLU(), name="net")
>>> rebuildable(seq)
True
>>> again = build("Sequential", seq.config(), have=9)
>>> [n for n, _ in again.named_parameters()]
['net.0.W', 'net.0.b']
"""
from __future__ import annotations

import math
from typing import Any, Callable

from .graph import finite_number
from .nn import (MLP, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Embedding, Flatten, GELU, LayerNorm,
                 Linear, MaxPool2d, Module, ModuleList, ReLU, Sequential, Sigmoid, Softmax, Tanh)

#: the classes ``load`` may rebuild, by name; nothing else is ever constructed
BUILDERS: dict[str, type[Module]] = {
    "Linear": Linear, "MLP": MLP, "Sequential": Sequential, "ModuleList": ModuleList,
    "Conv2d": Conv2d, "MaxPool2d": MaxPool2d, "AvgPool2d": AvgPool2d, "LayerNorm": LayerNorm,
    "Embedding": Embedding, "ReLU": ReLU, "Sigmoid": Sigmoid, "Tanh": Tanh, "GELU": GELU,
    "Softmax": Softmax, "Flatten": Flatten, "Dropout": Dropout, "BatchNorm1d": BatchNorm1d,
    "BatchNorm2d": BatchNorm2d,
}

#: how deep containers may nest in a saved config
MAX_DEPTH = 16


# ------------------------------------------------------------------ value checks (True when fine)
def _int(v: Any) -> bool:
    return type(v) is int


def _size(v: Any) -> bool:
    return type(v) is int and v >= 1


def _ints(n: int | None, low: int) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return isinstance(v, list) and (n is None or len(v) == n) and len(v) >= 1 \
            and all(type(d) is int and d >= low for d in v)
    return check


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _str(v: Any) -> bool:
    return isinstance(v, str)


def _opt_str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _seed(v: Any) -> bool:
    return v is None or (type(v) is int and v >= 0)


def _number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and finite_number(v) is not None


def _init(v: Any) -> bool:
    """A name, ``[name, {option: number}]`` or None (a callable that was not saved)."""
    if v is None or isinstance(v, str):
        return True
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], dict) \
        and all(isinstance(k, str) and _number(x) for k, x in v[1].items())


# ------------------------------------------------------------------ parameter counts
def _bias(c: dict, n: int) -> int:
    return n if c.get("bias", True) else 0


def _count_mlp(c: dict) -> int:
    s = c["sizes"]
    return sum(a * b + _bias(c, b) for a, b in zip(s[:-1], s[1:]))


def _count_conv(c: dict) -> int:
    groups = c.get("groups", 1)
    if c["in_channels"] % groups or c["out_channels"] % groups:
        raise ValueError(f"groups {groups} does not divide the channels")
    kh, kw = c["kernel_size"]
    return c["out_channels"] * (c["in_channels"] // groups) * kh * kw + _bias(c, c["out_channels"])


def _count_layernorm(c: dict) -> int:
    n = math.prod(c["normalized_shape"])
    if not c.get("elementwise_affine", True):
        return 0
    return n + (n if c.get("bias", True) else 0)


def _count_batchnorm(c: dict) -> int:
    """gamma and beta (when affine) and the two running statistics, all of num_features values."""
    return c["num_features"] * (4 if c.get("affine", True) else 2)


_NAME = {"name": _str}
_POOL = ({"kernel_size": _ints(2, 1)}, {"stride": _ints(2, 1), "padding": _ints(2, 0), **_NAME})

#: class -> (required settings, optional settings, parameter values implied); containers are counted
#: from their children
SCHEMAS: dict[str, tuple[dict, dict, Callable[[dict], int] | None]] = {
    "Linear": ({"in_features": _size, "out_features": _size},
               {"bias": _bool, "seed": _seed, "init": _init, "bias_init": _init, **_NAME},
               lambda c: c["in_features"] * c["out_features"] + _bias(c, c["out_features"])),
    "MLP": ({"sizes": _ints(None, 1)},
            {"activation": _opt_str, "init": _init, "seed": _seed, "output_activation": _opt_str,
             "bias": _bool, **_NAME}, _count_mlp),
    "Conv2d": ({"in_channels": _size, "out_channels": _size, "kernel_size": _ints(2, 1)},
               {"stride": _ints(2, 1), "padding": _ints(2, 0), "dilation": _ints(2, 1), "groups": _size,
                "bias": _bool, "init": _init, "bias_init": _init, "seed": _seed, **_NAME}, _count_conv),
    "MaxPool2d": (*_POOL, lambda c: 0),
    "AvgPool2d": (*_POOL, lambda c: 0),
    "LayerNorm": ({"normalized_shape": _ints(None, 1)},
                  {"eps": _number, "elementwise_affine": _bool, "bias": _bool, **_NAME}, _count_layernorm),
    "Embedding": ({"num_embeddings": _size, "embedding_dim": _size}, {"init": _init, "seed": _seed, **_NAME},
                  lambda c: c["num_embeddings"] * c["embedding_dim"]),
    **{cls: ({}, dict(_NAME), lambda c: 0) for cls in ("ReLU", "Sigmoid", "Tanh", "GELU")},
    "Softmax": ({}, {"axis": _int, **_NAME}, lambda c: 0),
    "Flatten": ({}, {"start_axis": _int, "end_axis": _int, **_NAME}, lambda c: 0),
    "Dropout": ({}, {"p": _number, **_NAME}, lambda c: 0),
    **{cls: ({"num_features": _size}, {"eps": _number, "momentum": _number, "affine": _bool, **_NAME},
             _count_batchnorm) for cls in ("BatchNorm1d", "BatchNorm2d")},
    "Sequential": ({"modules": lambda v: isinstance(v, list)}, dict(_NAME), None),
    "ModuleList": ({"modules": lambda v: isinstance(v, list)}, dict(_NAME), None),
}


def rebuildable(module: Module) -> bool:
    """Whether ``module`` has a config and it (and every child a container holds) is of a class in
    :data:`BUILDERS`, so that :func:`build` can make it again."""
    if BUILDERS.get(type(module).__name__) is not type(module) or module.config() is None:
        return False
    children = getattr(module, "layers", None) if isinstance(module, (Sequential, ModuleList)) else None
    return all(rebuildable(m) for m in children) if children is not None else True


def _check(cls_name: Any, config: Any, depth: int) -> int:
    """Check a config against its class's schema, children too; returns the parameter values it implies."""
    if depth > MAX_DEPTH:
        raise ValueError(f"containers nest deeper than {MAX_DEPTH}")
    if not isinstance(cls_name, str) or cls_name not in SCHEMAS:
        raise ValueError(f"unknown class {cls_name!r} (symgrad rebuilds {sorted(BUILDERS)})")
    if not isinstance(config, dict):
        raise ValueError(f"the {cls_name} config is not a mapping")
    required, optional, count = SCHEMAS[cls_name]
    missing = sorted(set(required) - set(config))
    unknown = sorted(set(config) - set(required) - set(optional))
    if missing or unknown:
        where = f"{cls_name} inside a container: " if depth else ""
        raise ValueError(f"{where}missing {missing}" if missing else f"{where}unknown settings {unknown}")
    for key, value in config.items():
        if not {**required, **optional}[key](value):
            text = repr(value)
            text = text if len(text) <= 80 else text[:77] + "..."
            raise ValueError(f"{key} = {text} is not a plain value of the kind {cls_name} takes")
    if count is not None:
        return count(config)
    total = 0
    for child in config["modules"]:
        if not isinstance(child, dict) or set(child) != {"class", "config"}:
            raise ValueError(f"{cls_name}: a child is not {{'class': ..., 'config': ...}}")
        total += _check(child["class"], child["config"], depth + 1)
    return total


def _init_arg(value: Any) -> Any:
    return (value[0], value[1]) if isinstance(value, list) else value


def _make(cls_name: str, config: dict) -> Module:
    """Construct a checked config (children first)."""
    cfg = dict(config)
    cls = BUILDERS[cls_name]
    for key in ("init", "bias_init"):
        if key in cfg:
            cfg[key] = _init_arg(cfg[key])
    if cls_name == "MLP":
        return MLP(cfg.pop("sizes"), **cfg)
    if cls_name == "Linear":
        return Linear(cfg.pop("in_features"), cfg.pop("out_features"), **cfg)
    if cls_name in ("Sequential", "ModuleList"):
        children = [_make(c["class"], c["config"]) for c in cfg.pop("modules")]
        return Sequential(*children, **cfg) if cls is Sequential else ModuleList(children, **cfg)
    for key in ("kernel_size", "stride", "padding", "dilation", "normalized_shape"):
        if key in cfg:
            cfg[key] = tuple(cfg[key])
    return cls(**cfg)


def build(cls_name: str, config: dict, have: int) -> Module:
    """The module of class ``cls_name`` made from ``config``, after checking every setting and that the
    config implies ``have`` parameter values (the number the file holds).

    Raises
    ------
    ValueError : an unknown class or setting, a setting of the wrong type, or a count that differs.
    SymgradError : the constructor refused the settings.
    """
    want = _check(cls_name, config, 0)
    if want != have:
        raise ValueError(f"it implies {want} parameter values, the file holds {have}")
    return _make(cls_name, config)


__all__ = ["BUILDERS", "SCHEMAS", "build", "rebuildable"]
