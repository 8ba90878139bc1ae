"""Saving and loading parameters as ``.npz`` files, without pickle.

A file holds one array per parameter, keyed by the parameter name
(``mlp.0.W``), and a JSON string under ``symgrad-meta`` (a name no
parameter can have) with the format version, the parameter names and
shapes, and, for the built-in layers, the constructor arguments that
rebuild the model.  Files are written atomically (temporary file in the
same folder, then ``os.replace``) and read without pickle.

``load`` trusts nothing in the file: every member must be an ``.npy`` array
with a valid parameter name (the rules ``save`` applies), a numeric dtype and
a shape whose size matches the bytes the member really holds, and no member
may claim more bytes than the archive can hold, all checked before an array
is allocated; any failure is a :class:`~symgrad.errors.StateError` naming the
file and the member.
"""
from __future__ import annotations

import json
import math
import os
import struct
import zipfile
import zlib
from typing import Any, Mapping

import numpy as np

from .errors import GraphError, OutputError, ShapeError, StateError, SymgradError
from .configs import BUILDERS as _BUILDERS
from .configs import build as _build
from .configs import rebuildable
from .files import atomic_open
from .graph import check_name
from .nn import Module

META_KEY = "symgrad-meta"
FORMAT = "symgrad.params"
VERSION = 1


def _state_of(obj: Any) -> tuple[dict[str, np.ndarray], str | None, dict | None]:
    if isinstance(obj, Module):
        cls = type(obj).__name__ if rebuildable(obj) else None
        return obj.state_dict(), cls, (obj.config() if cls else None)
    if isinstance(obj, Mapping):
        state = {}
        for key, value in obj.items():
            try:
                check_name(key)
            except GraphError as e:
                raise StateError(f"save: state dict key {key!r} is not a valid parameter name ({e})") from None
            try:
                arr = np.asarray(value)
            except (ValueError, TypeError, OverflowError) as e:
                raise StateError(f"save: value for {key!r} is not an array ({e})") from None
            if arr.dtype.kind not in "fiu":
                raise StateError(f"save: value for {key!r} has non-numeric dtype {arr.dtype}")
            state[key] = arr
        return state, None, None
    raise StateError(f"save: expected a Module or a dict of name -> array, got {type(obj).__name__}")


def save(path: str | os.PathLike, model: Module | Mapping[str, Any], *, compress: bool = False) -> str:
    """Write the parameters of ``model`` (a Module, or a state dict) to ``path`` as ``.npz``.

    The file is written exactly at ``path`` (no suffix is added), atomically.
    For the built-in layers (:class:`~symgrad.nn.Linear`, :class:`~symgrad.nn.MLP`
    with named activations, :class:`~symgrad.nn.Conv2d`, the pools, activation
    modules, :class:`~symgrad.nn.Flatten`, :class:`~symgrad.nn.LayerNorm`,
    :class:`~symgrad.nn.Embedding`, and a :class:`~symgrad.nn.Sequential` or
    :class:`~symgrad.nn.ModuleList` of them) the file also records how to
    rebuild the model, so :func:`load` returns a model; for other modules it
    records the state only.

    Parameters
    ----------
    path : destination file.
    model : a Module or a mapping of parameter names to arrays.
    compress : deflate the arrays (default: stored as is).

    Returns
    -------
    str : the path written.

    Raises
    ------
    StateError : ``model`` is not a Module or a dict of valid names to
        numeric arrays, or ``compress`` is not a bool.
    OutputError : ``path`` cannot be written (missing folder, a folder,
        no permission, full disk), or is not a str or path.

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
    if not isinstance(path, (str, os.PathLike)):
        raise OutputError(f"save: path must be a str or os.PathLike, got {type(path).__name__}")
    if not isinstance(compress, bool):
        raise StateError(f"save: compress must be True or False, got {compress!r}")
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


def _short(obj: Any, limit: int = 200) -> str:
    """``repr(obj)``, cut short: crafted files can hold names and configs of any length."""
    return _clip(repr(obj), limit)


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _bad(path: str, why: str) -> StateError:
    return StateError(f"load: {path!r} is not a symgrad parameter file: {why}")


# deflate cannot expand data more than 1032:1, so a member claiming more is forged
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 24
_MAX_NDIM = 32
# what zipfile raises on a damaged or forged archive (a bad offset even gives OSError)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, struct.error,
               NotImplementedError, RuntimeError, zlib.error, OverflowError)


def _read(path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and check a parameter file: every member's name, dtype and shape, and every size
    against the bytes the file really holds, before any array is allocated."""
    with open(path, "rb") as fh:  # a missing file or a folder: the OSError as is
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(8)
        fh.seek(0)
        if head.startswith(b"\x93NUMPY"):
            raise _bad(path, "it holds a single array, not an .npz archive")
        if head[:1] == b"\x80":
            raise _bad(path, "it looks like a pickle, and symgrad never unpickles")
        try:
            zf = zipfile.ZipFile(fh)
        except _ZIP_ERRORS as e:
            raise _bad(path, f"it cannot be read as .npz ({type(e).__name__}: {_clip(str(e))})") from None
        with zf:
            try:
                return _read_archive(path, zf, size)
            except StateError:
                raise
            except _ZIP_ERRORS as e:
                raise _bad(path, f"the archive is damaged ({type(e).__name__}: {_clip(str(e))})") from None


def _members(path: str, zf: zipfile.ZipFile, size: int) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name, each checked before anything is decompressed."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        member = info.filename
        if not member.endswith(".npy"):
            raise _bad(path, f"member {_short(member)} is not an .npy array")
        name = member[:-4]
        if name in members:
            raise _bad(path, f"member {_short(member)} appears twice")
        if name != META_KEY:
            try:
                check_name(name)
            except GraphError:
                raise _bad(path, f"member {_short(member)}: it is not a valid parameter name") from None
        if info.flag_bits & 0x1:
            raise _bad(path, f"member {_short(member)} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad(path, f"member {_short(member)} uses compression method {info.compress_type} "
                             f"(symgrad reads stored or deflated members)")
        if info.header_offset + info.compress_size > size:
            raise _bad(path, f"member {_short(member)} claims {info.compress_size} bytes, more than the file holds")
        most = info.compress_size if info.compress_type == zipfile.ZIP_STORED \
            else info.compress_size * _MAX_DEFLATE_RATIO + 64
        if info.file_size > most:
            raise _bad(path, f"member {_short(member)} claims {info.file_size} bytes from {info.compress_size} "
                             f"stored, more than that can hold")
        members[name] = info
    return members


def _read_array(path: str, zf: zipfile.ZipFile, info: zipfile.ZipInfo, kinds: str,
                shape_wanted: list | None = None) -> np.ndarray:
    """One member's array: header read and checked (dtype, shape, size against the member's
    length) before the array is allocated; never unpickled."""
    member = info.filename
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"format version {version} is not supported")
        except ValueError as e:
            raise _bad(path, f"member {_short(member)} has no valid .npy header ({e})") from None
        if dtype.hasobject:
            raise _bad(path, f"member {_short(member)} holds Python objects, which cannot be read without pickle, "
                             f"and symgrad never unpickles")
        if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in kinds:
            raise _bad(path, f"member {_short(member)} has dtype {dtype}, "
                             f"{'not a JSON string' if kinds == 'U' else 'not a numeric dtype'}")
        if len(shape) > _MAX_NDIM or any(d < 0 for d in shape):
            raise _bad(path, f"member {_short(member)} has an invalid shape {shape}")
        if shape_wanted is not None and list(shape) != shape_wanted:
            raise _bad(path, f"array {_short(member[:-4])} has shape {shape}, the metadata says {shape_wanted}")
        nbytes = math.prod(shape) * dtype.itemsize
        if f.tell() + nbytes != info.file_size:
            raise _bad(path, f"member {_short(member)} declares shape {shape} of {dtype} ({nbytes} bytes) "
                             f"but holds {info.file_size - f.tell()} bytes of data")
        arr = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        view = memoryview(arr.reshape(-1, order="A").view(np.uint8)) if arr.size else memoryview(b"")
        done = 0
        while done < nbytes:
            chunk = f.read(min(_CHUNK, nbytes - done))
            if not chunk:
                raise _bad(path, f"member {_short(member)} ends after {done} of {nbytes} bytes of data")
            view[done:done + len(chunk)] = chunk
            done += len(chunk)
        f.read(1)  # reaching the end of the member checks its CRC
    return arr


def _read_archive(path: str, zf: zipfile.ZipFile, size: int) -> tuple[dict, dict[str, np.ndarray]]:
    members = _members(path, zf, size)
    if META_KEY not in members:
        raise _bad(path, f"no {META_KEY!r} entry")
    raw = _read_array(path, zf, members.pop(META_KEY), "U")
    if raw.shape != ():
        raise _bad(path, f"{META_KEY!r} is not a JSON string")
    try:
        meta = json.loads(str(raw[()]))
    except (ValueError, RecursionError) as e:
        raise _bad(path, f"{META_KEY!r} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _bad(path, f"{META_KEY!r} does not declare format {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise _bad(path, f"format version {_short(meta.get('version'))} is not supported "
                         f"(this symgrad reads {VERSION})")
    names, shapes = meta.get("names"), meta.get("shapes")
    if not isinstance(names, list) or not isinstance(shapes, list) or len(names) != len(shapes) \
            or not all(isinstance(n, str) for n in names) \
            or not all(isinstance(s, list) and all(type(d) is int and d >= 0 for d in s) for s in shapes):
        raise _bad(path, "the names/shapes metadata is malformed")
    for name in names:
        try:
            check_name(name)
        except GraphError:
            raise _bad(path, f"the metadata names {_short(name)}, which is not a valid parameter name") from None
    if len(set(names)) != len(names):
        raise _bad(path, "the metadata names a parameter twice")
    if sorted(names) != sorted(members):
        raise _bad(path, f"the arrays {_short(sorted(members))} do not match the recorded names "
                         f"{_short(sorted(names))}")
    state = {name: _read_array(path, zf, members[name], "fiu", shape) for name, shape in zip(names, shapes)}
    return meta, state


def load(path: str | os.PathLike, *, into: Module | None = None) -> Module | dict[str, np.ndarray]:
    """Read a file written by :func:`save`.

    Returns
    -------
    * with ``into``: that module, its parameters set from the file
      (names and shapes must match);
    * for a saved built-in layer, or a Sequential of them (see :func:`save`):
      a new model of the same structure and the saved parameter values;
    * otherwise (a generic Module or a saved dict): the state dict, name ->
      array, to pass to ``module.load_state_dict``.

    Values round-trip bitwise.

    Raises
    ------
    StateError : the file is not a symgrad parameter file (not an .npz,
        pickled or object data, missing or malformed metadata, a member
        whose name, dtype or size is invalid or forged), or it does not fit
        ``into``, or ``path``/``into`` have the wrong type.
    ShapeError : a saved array does not fit ``into``'s parameter shape.
    OSError : the file cannot be opened (missing, a folder, no permission).

    Examples
    --------
    >>> import os, tempfile, numpy as np, symgrad as sg
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npz")
    >>> _ = sg.save(path, {"w": np.arange(3.0)})
    >>> sg.load(path)
    {'w': array([0., 1., 2.])}
    """
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise StateError(f"load: path must be a str or os.PathLike, got {type(path).__name__}")
    if into is not None and not isinstance(into, Module):
        raise StateError(f"load: into must be a Module, got {type(into).__name__}")
    path = os.fspath(path)
    meta, state = _read(path)
    if into is not None:
        into.load_state_dict(state)
        return into
    cls_name, config = meta.get("class"), meta.get("config")
    if cls_name is None:
        return state
    cls = _BUILDERS.get(cls_name) if isinstance(cls_name, str) else None
    if cls is None or not isinstance(config, dict):
        raise _bad(path, f"unknown model class {_short(cls_name)} (symgrad rebuilds {sorted(_BUILDERS)})")
    have = sum(int(a.size) for a in state.values())
    try:
        model = _build(cls_name, config, have)
    except (SymgradError, TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as e:
        raise _bad(path, f"its {cls_name} config {_short(config)} does not build a model ({_clip(str(e))})") \
            from None
    try:
        model.load_state_dict(state)
    except (StateError, ShapeError) as e:
        raise _bad(path, f"its parameters do not fit the recorded {cls_name} ({e})") from None
    return model


__all__ = ["save", "load"]
