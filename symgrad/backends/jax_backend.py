"""``backend="jax"``: the same graph emitted as ``jax.numpy`` source and compiled by ``jax.jit``.

:func:`compile` gives a :class:`JaxFunction` and :func:`compile_step` a :class:`JaxStep`, with the
interface of the NumPy backend's :class:`~symgrad.codegen.CompiledFunction` and
:class:`~symgrad.codegen.StepFunction`.  A training step is *one* XLA computation: forward pass,
backward pass, optimizer update with its state, buffer updates (batch norm's running statistics)
and the random draws; the old params and state are donated to it (``donate_argnums``), so XLA
writes the new ones over them.  :mod:`.jax_writer` writes the source (``.source``: same value names
and comments as the NumPy backend) and :mod:`.jax_ops` holds each op's JAX form.

Params.  symgrad keeps a param's value as a NumPy array in ``p.value`` (``sg.fit``, ``state_dict``
and ``save`` read it).  With ``sync=True`` (the default) a step uploads the params and state at
each call and writes the new values back into the same ``p.value`` arrays (and ``step.state``)
before it returns: ``p.value`` is always current and edits of it in place are seen, as with the
NumPy backend, at the price of a copy each way per call.  With ``sync=False`` the params, buffers
and optimizer state stay on the device between calls (the speed on a GPU) and the call returns
the loss and outputs as JAX arrays without waiting; ``step.sync()`` writes the device values back
into ``p.value`` and ``step.state`` (call it before reading them, saving, or evaluating in NumPy);
a ``p.value`` *replaced* by another array is uploaded at the next call, an edit in place is not
seen until ``step.sync(upload=True)``.

dtype.  ``"float64"`` needs JAX's 64-bit mode: compiling a float64 program turns on
``jax_enable_x64`` for the process (JAX's own default is 32 bits; a float32 program is float32
either way: Python scalars stay weakly typed, constants are cast).

Compile time.  ``compile_seconds`` is writing and loading the source, ``jit_seconds`` the first call
(JAX traces the function and XLA compiles it).  XLA's compiles are kept on disk by JAX's compilation
cache, turned on in ``$SYMGRAD_CACHE/jax`` (see :func:`_persistent_cache`).

Several devices.  ``devices=`` (a list of JAX devices, e.g. ``jax.devices()``) runs a data-parallel
step: a :class:`jax.sharding.Mesh` over the devices with one axis ``"batch"``, each input whose
first dim is named (a batch) split along it by a ``NamedSharding``, params, state and buffers
replicated; XLA inserts the all-reduce of the gradients.  The same call works on several GPUs of
one host, and on several hosts after ``jax.distributed.initialize()``.

Examples
--------
>>> import numpy as np, symgrad as sg
>>> from symgrad.backends import jax_backend
>>> x, y = sg.var("x", shape=("batch",)), sg.var("y", shape=("batch",))
>>> w = sg.param("w", 0.0)
>>> step = jax_backend.compile_step(sg.losses.mse(w * x, y), sg.optim.SGD(lr=0.1), [x, y])
>>> xs = np.array([1.0, 2.0])
>>> for _ in range(50):
...     loss = step(xs, 3 * xs)
>>> round(float(w.value), 6), step.t
(3.0, 50)
>>> "jnp" in step.source or "w - " in step.source
True
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Sequence

import jax
import numpy as np

from ..autodiff import grad
from ..codegen.api import _bind_args, _check_dtype, _check_inputs, _fresh_name, step_arguments
from ..codegen.load import _load
from ..codegen.schedule import DTYPES, Program
from ..errors import FeedError, GraphError, StateError
from ..graph import Graph, Node, as_node_list, format_shape
from ..ops.base import var
from ..ops.state import state_updates
from . import cache_dir
from .jax_writer import JaxWriter, plan, runtime_globals

__all__ = ["compile", "compile_step", "JaxFunction", "JaxStep", "make_key"]


def _enable(dtype: str) -> None:
    if dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)
    _persistent_cache()


_CACHE_CHECKED = False


def _persistent_cache() -> None:
    """Turn on JAX's on-disk compilation cache in symgrad's cache folder (``$SYMGRAD_CACHE/jax``),
    once per process, unless ``jax_compilation_cache_dir`` is set already (yours wins) or
    ``SYMGRAD_JAX_CACHE=0``.  JAX then saves every compile of the process that took longer than its
    ``jax_persistent_cache_min_compile_time_secs`` (1 s by default; symgrad leaves it alone), and a
    later process compiling the same step loads it: the LeNet step's first call, 2.7 s cold, takes
    0.5 s."""
    global _CACHE_CHECKED
    if _CACHE_CHECKED:
        return
    _CACHE_CHECKED = True
    if os.environ.get("SYMGRAD_JAX_CACHE", "1") == "0" or jax.config.jax_compilation_cache_dir:
        return
    try:
        jax.config.update("jax_compilation_cache_dir", cache_dir("jax"))
    except OSError:  # no writable folder: no cache
        pass


class _FirstCall:
    """``compile_seconds`` (writing and loading the source) and ``jit_seconds`` (the first call: JAX
    traces the function and XLA compiles it then, or loads it from the on-disk cache); calls go to the
    class's ``_call``."""

    compile_seconds: float | None = None
    jit_seconds: float | None = None

    def __call__(self, *args: Any, **kwargs: Any):
        if self.jit_seconds is not None:
            return self._call(*args, **kwargs)
        t0 = time.perf_counter()
        out = self._call(*args, **kwargs)
        jax.block_until_ready(out)
        self.jit_seconds = time.perf_counter() - t0
        return out


def make_key(seed: Any, what: str):
    """A ``jax.random`` key from ``seed``: None (fresh entropy), an int >= 0, or a NumPy Generator
    (one draw from it)."""
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2 ** 62))
    elif seed is None:
        seed = int(np.random.default_rng().integers(2 ** 62))
    elif isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GraphError(f"{what}: seed must be None, an int >= 0 or a numpy Generator, got {seed!r}")
    return jax.random.PRNGKey(int(seed))


def _build(fname: str, program: Program, step: bool) -> tuple[Any, str, str, JaxWriter]:
    writer = JaxWriter(plan(program), step=step)
    source = writer.source()
    ns = dict(writer.g.table)
    ns.update(runtime_globals(program.np_dtype))
    ns["__name__"] = f"symgrad_generated_jax_{fname}"
    fn, path = _load(source, fname, ns)
    return fn, source, path, writer


class _Feeder:
    """Input conversion and checks of a compiled function (in Python, before the jitted call)."""

    def __init__(self, what: str, program: Program):
        self.what, self.p = what, program
        self.dt = np.dtype(program.np_dtype)

    def __call__(self, args: tuple) -> list:
        p, dims, out = self.p, {}, []
        for i, (node, value) in enumerate(zip(p.inputs, args)):
            if isinstance(value, jax.Array):
                arr = value if node.dtype == "int" or value.dtype == self.dt else value.astype(self.dt)
            elif type(value) is np.ndarray and (value.dtype == self.dt or (node.dtype == "int" and value.dtype.kind in "iu")):
                arr = value
            else:
                from ..evaluate import feed_array
                arr = feed_array(node, value, f"{self.what}: input {node.name!r}")
                if node.dtype != "int":
                    arr = arr.astype(self.dt, copy=False)
            if arr.ndim != len(node.shape):
                raise FeedError(f"{self.what}: input {node.name!r}: expected shape {format_shape(node.shape)}, "
                                f"got {tuple(arr.shape)}")
            for want, got in zip(node.shape, arr.shape):
                if isinstance(want, int) and want != got:
                    raise FeedError(f"{self.what}: input {node.name!r}: expected shape {format_shape(node.shape)}, "
                                    f"got {tuple(arr.shape)}")
                if isinstance(want, str):
                    if dims.setdefault(want, got) != got:
                        raise FeedError(f"{self.what}: input {node.name!r} of shape {tuple(arr.shape)}: dim {want!r} "
                                        f"is {got} here but {dims[want]} in an earlier input")
            if isinstance(arr, np.ndarray) and arr.size:
                if i in p.class_checks and (arr.min() < 0 or arr.max() >= p.class_checks[i]):
                    k = p.class_checks[i]
                    raise FeedError(f"{self.what}: input {node.name!r}: class index out of range [0, {k}) "
                                    f"(got {arr.min()}..{arr.max()})")
                if i in p.range_checks:
                    lo, hi, ops = p.range_checks[i]
                    if arr.min() < lo or arr.max() > hi:
                        raise FeedError(f"{self.what}: input {node.name!r}: values must lie in [{lo:g}, {hi:g}] for "
                                        f"{ops} (got {arr.min():g}..{arr.max():g})")
            out.append(arr)
        return out


class _Placement:
    """Where arrays go: the default device, or a data-parallel mesh over ``devices``."""

    def __init__(self, devices: Sequence | None, what: str):
        self.mesh = None
        if devices is None:
            return
        devices = list(devices)
        if not devices or not all(isinstance(d, jax.Device) for d in devices):
            raise GraphError(f"{what}: devices must be a non-empty list of JAX devices (jax.devices()), got {devices!r}")
        from jax.sharding import Mesh, NamedSharding, PartitionSpec
        self.mesh = Mesh(np.array(devices), ("batch",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.split = NamedSharding(self.mesh, PartitionSpec("batch"))
        self.n = len(devices)

    def state(self, arrays):
        """Params, state, buffers, keys: replicated over the mesh."""
        return tuple(jax.device_put(list(arrays), None if self.mesh is None else self.replicated))

    def inputs(self, nodes: list[Node], arrays: list) -> list:
        if self.mesh is None:
            return arrays
        out = []
        for node, a in zip(nodes, arrays):
            batch = node.shape and isinstance(node.shape[0], str) and a.shape[0] % self.n == 0
            out.append(jax.device_put(a, self.split if batch else self.replicated))
        return out

    def constrain(self, tree):
        if self.mesh is None:
            return tree
        return jax.lax.with_sharding_constraint(tree, self.replicated)


# ================================================================ compile
class JaxFunction(_FirstCall):
    """A graph compiled to one jitted ``jax.numpy`` function (see :func:`compile`).

    Called like :class:`~symgrad.codegen.CompiledFunction` (inputs in order or by name); returns
    NumPy arrays.  Params are read from their ``.value`` at every call.  Random nodes are drawn from
    ``.key`` (``.rng`` is the same key), a ``jax.random`` key the function holds and splits at every
    call; :meth:`seed` resets it.
    """

    def __init__(self, fn, source: str, path: str, program: Program, param_nodes: list[Node], key, devices,
                 compiler_options: dict | None = None):
        self.source, self.path = source, path
        self.inputs, self.outputs, self.dtype = program.inputs, program.outputs, program.dtype
        self._param_nodes = param_nodes
        self._place = _Placement(devices, "compile")
        self._jit = jax.jit(fn, compiler_options=compiler_options)
        self._feed = _Feeder("compiled function", program)
        self._single = program.single
        self._np_dt = np.dtype(program.np_dtype)
        self.key = key
        self._lock = threading.Lock()

    @property
    def rng(self):
        return self.key

    def seed(self, seed: int) -> None:
        """Reset the key the random nodes are drawn from (the draws of ``seed=seed`` at compile)."""
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise GraphError(f"compiled function: seed must be an int >= 0, got {seed!r}")
        self.key = make_key(int(seed), "compiled function")

    def _call(self, *args: Any, **kwargs: Any):
        if kwargs or len(args) != len(self.inputs):
            args = _bind_args("compiled function", self.inputs, args, kwargs)
        arrays = self._place.inputs(self.inputs, self._feed(args))
        params = self._place.state([np.asarray(p.value, self._np_dt) for p in self._param_nodes])
        with self._lock:
            out, self.key = self._jit(params, self.key, *arrays)
        if self._single:
            return np.asarray(out)
        return tuple(np.asarray(o) for o in out)

    def __repr__(self) -> str:
        return (f"JaxFunction(inputs={[n.name for n in self.inputs]}, outputs={[o.describe() for o in self.outputs]}, "
                f"dtype={self.dtype!r})")


def compile(outputs: Node | Sequence[Node], inputs: Sequence[Node] | None = None, dtype: str = "float64", *,
            reuse_buffers: bool = True, seed: Any = None, devices: Sequence | None = None,
            compiler_options: dict | None = None) -> JaxFunction:  # noqa: A001
    """:func:`symgrad.compile` on the JAX backend: one jitted function (``reuse_buffers`` has no meaning here:
    XLA plans the memory).  ``devices``: see the module docstring; ``compiler_options``: XLA's, passed to
    ``jax.jit`` (``{"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}`` compiles
    several times faster on a CPU, for code that runs once).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> from symgrad.backends import jax_backend
    >>> x = sg.var("x", shape=(3,))
    >>> f = jax_backend.compile(sg.sum(sg.tanh(x)), [x])
    >>> round(float(f(np.array([0.1, 0.2, 0.3]))), 6)
    0.588356
    >>> "jnp.tanh(x)" in f.source
    True
    """
    t0 = time.perf_counter()
    dtype = _check_dtype(dtype)
    _enable(dtype)
    single = isinstance(outputs, Node)
    outs = as_node_list(outputs, "compile")
    if not outs:
        raise GraphError("compile: no outputs given")
    ins = Graph(outs).vars if inputs is None else _check_inputs(inputs, "compile")
    program = Program("fn", dtype, ins, [], outs, [], [], params_writable=False, single=single)
    fn, source, path, writer = _build("fn", program, step=False)
    key = make_key(seed, "compile")
    f = JaxFunction(fn, source, path, program, writer.param_nodes, key, devices, compiler_options)
    f.compile_seconds = time.perf_counter() - t0
    return f


# ================================================================ compile_step
class JaxStep(_FirstCall):
    """One training step as one jitted XLA computation (see :func:`compile_step` and the module
    docstring for ``sync`` and ``devices``).

    The interface of :class:`~symgrad.codegen.StepFunction`: ``step(*batch)`` returns the loss as a
    float (``(loss, *outputs)`` with outputs), updates the params (``p.value``), the optimizer state
    (``.state``) and the buffers; ``.t``, ``.evaluate``, ``.reset``, ``.seed``, ``.source``;
    ``.key`` (also ``.rng``) is the ``jax.random`` key the random nodes are drawn from, split at
    every call.
    """

    def __init__(self, loss: Node, optimizer, inputs: list[Node], outputs: list[Node], params: list[Node],
                 dtype: str, seed: Any = None, evaluation=None, devices: Sequence | None = None, sync: bool = True,
                 compiler_options: dict | None = None):
        from ..optim import Optimizer
        if not isinstance(optimizer, Optimizer):
            raise GraphError(f"compile_step: optimizer must be an sg.optim optimizer, got {type(optimizer).__name__}")
        if not isinstance(sync, bool):
            raise GraphError(f"compile_step: sync must be True or False, got {sync!r}")
        self.loss, self.optimizer, self.inputs, self.outputs = loss, optimizer, inputs, outputs
        self.params, self.dtype, self.t = params, dtype, 0
        self.key = make_key(seed, "compile_step")
        self._sync, self._devices = sync, devices
        self._lock = threading.Lock()
        self._evaluate: JaxFunction | None = None
        self._evaluation = evaluation or (loss, outputs)
        leaves = {n.name for n in Graph([loss] + outputs).leaves if n.name}
        lr, t = var(_fresh_name("lr", leaves)), var(_fresh_name("t", leaves))
        grads = grad(loss, params) if params else []
        plan_ = optimizer.plan(params, grads, lr, t, names=leaves)
        np_dtype = DTYPES[dtype]
        self.state: dict[str, dict[str, np.ndarray]] = {}
        stores = list(zip(params, plan_.new_params))
        updates = state_updates([loss] + outputs)
        self.buffers = [b for b, _ in updates]
        stores += updates
        state_nodes, self._state_list = [], []
        for p, name, leaf, new in plan_.states:
            arr = np.zeros(p.shape, dtype=np_dtype)
            self.state.setdefault(p.name, {})[name] = arr
            state_nodes.append(leaf)
            self._state_list.append(arr)
            stores.append((leaf, new))
        owner = {leaf: p for p, _, leaf, _ in plan_.states}
        program = Program("step", dtype, inputs, [lr, t], [loss] + outputs, stores, state_nodes, params_writable=True,
                          barrier=grads, return_float_first=True, single=not outputs,
                          rule_comment=optimizer.rule_lines(), state_owner=owner)
        fn, self.source, self.path, writer = _build("step", program, step=True)
        self._param_nodes, self._stored = writer.param_nodes, writer.stored_params()
        for n in self._param_nodes:
            if np.asarray(n.value).dtype.kind != "f":
                raise StateError(f"step: param {n.name!r} holds a value of dtype {np.asarray(n.value).dtype}; "
                                 f"a trained param must be float64 or float32")
        self._place = _Placement(devices, "compile_step")
        place = self._place

        def run(params_, state_, key_, *rest):
            outs, new_params, new_state, key2 = fn(params_, state_, key_, *rest)
            return outs, place.constrain(new_params), place.constrain(new_state), key2

        self._jit = jax.jit(run, donate_argnums=(0, 1), compiler_options=compiler_options)
        self._options = compiler_options
        self._feed = _Feeder("step", program)
        self._np_dt = np.dtype(np_dtype)
        self._dev: tuple | None = None  # (params, state, the p.value objects uploaded) with sync=False

    @property
    def rng(self):
        return self.key

    # ------------------------------------------------------------ device <-> p.value
    def _upload(self) -> tuple:
        params = self._place.state([np.asarray(p.value, self._np_dt) for p in self._param_nodes])
        state = self._place.state([a.astype(self._np_dt, copy=False) for a in self._state_list])
        return params, state

    def _write_back(self, params, state) -> None:
        for node, stored, new in zip(self._param_nodes, self._stored, params):
            if stored:
                np.copyto(node.value, np.asarray(new), casting="same_kind")
        for arr, new in zip(self._state_list, state):
            np.copyto(arr, np.asarray(new), casting="same_kind")

    def sync(self, upload: bool = False) -> None:
        """With ``sync=False``: write the device params, buffers and state into ``p.value`` and
        ``step.state``; with ``upload=True`` the other way (after editing ``p.value`` in place)."""
        with self._lock:
            if self._dev is None:
                return
            if upload:
                self._dev = None
                return
            params, state, _ = self._dev
            self._write_back(params, state)

    def _call(self, *args: Any, **kwargs: Any):
        if kwargs or len(args) != len(self.inputs):
            args = _bind_args("step", self.inputs, args, kwargs)
        arrays = self._place.inputs(self.inputs, self._feed(args))
        with self._lock:
            t = self.t + 1
            lr = float(self.optimizer.lr_at(t - 1))
            if self._sync:
                params, state = self._upload()
            else:
                values = [p.value for p in self._param_nodes]
                if self._dev is None or any(a is not b for a, b in zip(values, self._dev[2])):
                    if self._dev is not None:
                        self._write_back(self._dev[0], self._dev[1])  # keep what the device learnt so far
                        self._dev = None
                    params, state = self._upload()
                else:
                    params, state = self._dev[0], self._dev[1]
            outs, new_params, new_state, self.key = self._jit(params, state, self.key, *arrays, lr, float(t))
            if self._sync:
                self._write_back(new_params, new_state)
            else:
                self._dev = (new_params, new_state, [p.value for p in self._param_nodes])
            self.t = t
        if not self._sync:
            return outs[0] if not self.outputs else tuple(outs)
        if not self.outputs:
            return float(outs[0])
        return (float(outs[0]),) + tuple(np.asarray(o) for o in outs[1:])

    def evaluate(self, *args: Any, **kwargs: Any):
        """The loss (and outputs) on a batch without updating anything (the evaluation graph when
        ``compile_step`` was given ``eval_loss``), compiled on first use."""
        self.sync()
        with self._lock:
            if self._evaluate is None:
                eval_loss, eval_outputs = self._evaluation
                self._evaluate = compile([eval_loss] + list(eval_outputs), inputs=self.inputs, dtype=self.dtype,
                                         seed=int(jax.random.randint(self.key, (), 0, 2 ** 30)), devices=self._devices,
                                         compiler_options=self._options)
            res = self._evaluate(*args, **kwargs)
        if not self.outputs:
            return float(res[0])
        return (float(res[0]),) + tuple(res[1:])

    def seed(self, seed: int) -> None:
        """Reset the key of the random nodes: the calls that follow draw what a step compiled with
        ``seed=seed`` draws."""
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise GraphError(f"step: seed must be an int >= 0, got {seed!r}")
        with self._lock:
            self.key = make_key(int(seed), "step")

    def reset(self) -> None:
        """Zero the optimizer state and the update count (params are left as they are)."""
        self.sync()
        with self._lock:
            for arr in self._state_list:
                arr[...] = 0.0
            self._dev = None
            self.t = 0

    def __repr__(self) -> str:
        return (f"JaxStep({type(self.optimizer).__name__}, inputs={[n.name for n in self.inputs]}, "
                f"params={[p.name for p in self.params]}, dtype={self.dtype!r}, t={self.t})")


def compile_step(loss: Node, optimizer, inputs: Sequence[Node] = (), outputs: Sequence[Node] = (), *,
                 params: Sequence[Node] | None = None, dtype: str = "float64", reuse_buffers: bool = True,
                 seed: Any = None, eval_loss: Node | None = None, eval_outputs: Sequence[Node] | None = None,
                 devices: Sequence | None = None, sync: bool = True, compiler_options: dict | None = None) -> JaxStep:
    """:func:`symgrad.compile_step` on the JAX backend: one jitted XLA computation per step, the params
    and optimizer state donated.  ``devices`` (data parallel over a mesh) and ``sync`` (write ``p.value``
    back at every call, or keep everything on the device until ``step.sync()``): see the module docstring;
    ``compiler_options``: see :func:`compile`."""
    t0 = time.perf_counter()
    dtype = _check_dtype(dtype)
    _enable(dtype)
    loss, ins, outs, ps, evaluation = step_arguments(loss, inputs, outputs, params, eval_loss, eval_outputs)
    step = JaxStep(loss, optimizer, ins, outs, list(ps), dtype, seed, evaluation, devices, sync, compiler_options)
    step.compile_seconds = time.perf_counter() - t0
    return step
