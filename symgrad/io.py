"""Saving and loading parameters as ``.npz`` files, without pickle.

A file holds one array per parameter, keyed by the parameter name
(``mlp.0.W``), and a JSON string under ``symgrad-meta`` (a name no
parameter can have) with the format version, the parameter names and
shapes, and, for the built-in layers, the constructor arguments that
rebuild the model.  Files are written atomically (temporary file in the
same folder, then ``os.replace``) and read with ``allow_pickle=False``.
"""
from __future__ import annotations

import json
import os
import pickle
import zipfile
from typing import Any, Mapping

import numpy as np

from .errors import GraphError, ShapeError, StateError
from .files import atomic_open
from .graph import check_name
from .nn import MLP, Linear, Module

META_KEY = "symgrad-meta"
FORMAT = "symgrad.params"
VERSION = 1

# the classes ``load`` may rebuild, by name; nothing else is ever constructed
_BUILDERS: dict[str, type[Module]] = {"Linear": Linear, "MLP": MLP}


def _state_of(obj: Any) -> tuple[dict[str, np.ndarray], str | None, dict | None]:
    if isinstance(obj, Module):
        config = obj.config()
        cls = type(obj).__name__ if config is not None and _BUILDERS.get(type(obj).__name__) is type(obj) else None
        return obj.state_dict(), cls, (config if cls else None)
    if isinstance(obj, Mapping):
        state = {}
        for key, value in obj.items():
            try:
                check_name(key)
            except GraphError as e:
                raise StateError(f"save: state dict key {key!r} is not a valid parameter name ({e})") from None
            arr = np.asarray(value)
            if arr.dtype.kind not in "fiu":
                raise StateError(f"save: value for {key!r} has non-numeric dtype {arr.dtype}")
            state[key] = arr
        return state, None, None
    raise StateError(f"save: expected a Module or a dict of name -> array, got {type(obj).__name__}")


def save(path: str | os.PathLike, model: Module | Mapping[str, Any], *, compress: bool = False) -> str:
    """Write the parameters of ``model`` (a Module, or a state dict) to ``path`` as ``.npz``.

    The file is written exactly at ``path`` (no suffix is added), atomically.
    For :class:`~symgrad.nn.Linear` and :class:`~symgrad.nn.MLP` (with named
    activations) the file also records how to rebuild the model, so
    :func:`load` returns a model; for other modules it records the state only.

    Parameters
    ----------
    path : destination file.
    model : a Module or a mapping of parameter names to arrays.
    compress : deflate the arrays (default: stored as is).

    Returns
    -------
    str : the path written.

    Examples
    --------
    >>> import os, tempfile, symgrad as sg
    >>> model = sg.nn.MLP([3, 4, 2], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> _ = sg.save(path, model)
    >>> again = sg.load(path)
    >>> again.sizes, bool((again.layers[0].W.value == model.layers[0].W.value).all())
    ([3, 4, 2], True)
    """
    state, cls, config = _state_of(model)
    meta = {"format": FORMAT, "version": VERSION, "class": cls, "config": config,
            "names": list(state), "shapes": [list(a.shape) for a in state.values()]}
    text = json.dumps(meta, sort_keys=True)
    path = os.fspath(path)
    with atomic_open(path, "wb") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
            for name, arr in [(META_KEY, np.array(text))] + list(state.items()):
                with zf.open(name + ".npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array(entry, np.asarray(arr), allow_pickle=False)
    return path


def _bad(path: str, why: str) -> StateError:
    return StateError(f"load: {path!r} is not a symgrad parameter file: {why}")


def _read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        npz = np.load(path, allow_pickle=False)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        if "pickle" in str(e):
            raise _bad(path, "it cannot be read as .npz without unpickling, and symgrad never unpickles") from None
        raise _bad(path, f"cannot be read as .npz ({e})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise _bad(path, "it holds a single array, not an .npz archive")
    with npz:
        files = list(npz.files)
        if META_KEY not in files:
            raise _bad(path, f"no {META_KEY!r} entry")
        try:
            arrays = {name: npz[name] for name in files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise _bad(path, f"an entry cannot be read without pickle ({e})") from None
    raw = arrays.pop(META_KEY)
    if raw.shape != () or raw.dtype.kind != "U":
        raise _bad(path, f"{META_KEY!r} is not a JSON string")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as e:
        raise _bad(path, f"{META_KEY!r} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, f"{META_KEY!r} does not declare format {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise _bad(path, f"format version {meta.get('version')!r} is not supported (this symgrad reads {VERSION})")
    names, shapes = meta.get("names"), meta.get("shapes")
    if not isinstance(names, list) or not isinstance(shapes, list) or len(names) != len(shapes) \
            or not all(isinstance(n, str) for n in names):
        raise _bad(path, "the names/shapes metadata is malformed")
    if sorted(names) != sorted(arrays):
        raise _bad(path, f"the arrays {sorted(arrays)} do not match the recorded names {sorted(names)}")
    state = {}
    for name, shape in zip(names, shapes):
        arr = arrays[name]
        if arr.dtype.kind not in "fiu":
            raise _bad(path, f"array {name!r} has non-numeric dtype {arr.dtype}")
        if not isinstance(shape, list) or list(arr.shape) != shape:
            raise _bad(path, f"array {name!r} has shape {arr.shape}, the metadata says {shape}")
        state[name] = arr
    return meta, state


def load(path: str | os.PathLike, *, into: Module | None = None) -> Module | dict[str, np.ndarray]:
    """Read a file written by :func:`save`.

    Returns
    -------
    * with ``into``: that module, its parameters set from the file
      (names and shapes must match);
    * for a saved :class:`~symgrad.nn.Linear` or :class:`~symgrad.nn.MLP`:
      a new model of the same structure and the saved parameter values;
    * otherwise (a generic Module or a saved dict): the state dict, name ->
      array, to pass to ``module.load_state_dict``.

    Values round-trip bitwise.

    Raises
    ------
    StateError : the file is not a symgrad parameter file (not an .npz,
        pickled or object data, missing or malformed metadata), or it does
        not fit ``into``.
    ShapeError : a saved array does not fit ``into``'s parameter shape.

    Examples
    --------
    >>> import os, tempfile, numpy as np, symgrad as sg
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> _ = sg.save(path, {"w": np.arange(3.0)})
    >>> sg.load(path)
    {'w': array([0., 1., 2.])}
    """
    path = os.fspath(path)
    meta, state = _read(path)
    if into is not None:
        if not isinstance(into, Module):
            raise StateError(f"load: into must be a Module, got {type(into).__name__}")
        into.load_state_dict(state)
        return into
    cls_name, config = meta.get("class"), meta.get("config")
    if cls_name is None:
        return state
    cls = _BUILDERS.get(cls_name) if isinstance(cls_name, str) else None
    if cls is None or not isinstance(config, dict):
        raise _bad(path, f"unknown model class {cls_name!r} (symgrad rebuilds {sorted(_BUILDERS)})")
    try:
        model = _build(cls, config, state)
    except (GraphError, ShapeError, TypeError, ValueError) as e:
        raise _bad(path, f"its {cls_name} config {config!r} does not build a model ({e})") from None
    try:
        model.load_state_dict(state)
    except (StateError, ShapeError) as e:
        raise _bad(path, f"its parameters do not fit the recorded {cls_name} ({e})") from None
    return model


def _build(cls: type[Module], config: dict, state: Mapping[str, np.ndarray]) -> Module:
    cfg = dict(config)
    if cls is MLP:
        sizes = cfg.pop("sizes")
        dims = list(zip(sizes[:-1], sizes[1:])) if isinstance(sizes, list) else None
    else:
        dims = [(cfg.pop("in_features", None), cfg.pop("out_features", None))]
        sizes = dims[0]
    # refuse configs that do not match the stored arrays before allocating anything
    if not dims or not all(isinstance(d, int) and not isinstance(d, bool) for pair in dims for d in pair):
        raise ValueError(f"sizes {sizes!r} are not a list of ints")
    want = sum(a * b + (b if cfg.get("bias", True) else 0) for a, b in dims)
    have = sum(int(a.size) for a in state.values())
    if want != have:
        raise ValueError(f"it implies {want} parameter values, the file holds {have}")
    if cls is MLP:
        return MLP(sizes, **cfg)
    return Linear(*dims[0], **cfg)


__all__ = ["save", "load"]
