"""The public compiler: :func:`compile` (outputs to one function) and :func:`compile_step`
(forward, backward and optimizer update in one training step)."""
from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import numpy as np

from ..autodiff import grad
from ..backends import get_backend
from ..errors import FeedError, GraphError
from ..graph import Graph, Node, as_node_list, format_shape
from ..ops.base import var
from ..ops.state import state_updates
from ..random import make_rng
from .load import ParamDtypeChanged, build
from .schedule import DTYPES, Program

__all__ = ["compile", "compile_step", "CompiledFunction", "StepFunction"]


def _check_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise GraphError(f"compile: dtype must be 'float64' or 'float32', got {dtype!r}")
    return dtype


def _check_inputs(inputs: Any, what: str) -> list[Node]:
    nodes = as_node_list(inputs if inputs is not None else [], what)
    seen: set[Node] = set()
    for n in nodes:
        if n.kind != "var":
            raise GraphError(f"{what}: inputs must be vars (sg.var), got {n.describe()} of kind {n.kind}")
        if n in seen:
            raise GraphError(f"{what}: input {n.name!r} is listed twice")
        seen.add(n)
    return nodes


# ================================================================ public API
class CompiledFunction:
    """A graph compiled to one Python + NumPy function.

    Call it with the inputs in the order given to :func:`compile` (or by
    name as keywords).  ``.source`` is the generated code and ``.path`` the
    file it was loaded from, so tracebacks and ``inspect`` show it.
    Params are read from their ``.value`` at every call.

    Random nodes (:mod:`symgrad.random`) are drawn afresh at every call
    from ``.rng``, a ``numpy.random.Generator`` the function owns (seeded by
    ``compile(..., seed=)``; :meth:`seed` reseeds it).

    Safe to call from several threads at once: the function writes only
    into arrays it makes during the call (it keeps no work buffers between
    calls) and changes no param or buffer (NumPy's Generator serialises
    the draws).
    """

    def __init__(self, fn: Callable, source: str, path: str, inputs: list[Node], outputs: list[Node],
                 dtype: str, rng: np.random.Generator | None = None):
        self.fn, self.source, self.path = fn, source, path
        self.inputs, self.outputs, self.dtype = inputs, outputs, dtype
        self.rng = rng if rng is not None else np.random.default_rng()
        self._n = len(inputs)

    def seed(self, seed: int) -> None:
        """Reseed the generator the random nodes are drawn from (the same draws as ``seed=`` at compile)."""
        reseed(self.rng, seed, "compiled function")

    def __call__(self, *args: Any, **kwargs: Any):
        if kwargs or len(args) != self._n:
            args = _bind_args("compiled function", self.inputs, args, kwargs)
        return self.fn(*args)

    def __repr__(self) -> str:
        return (f"CompiledFunction(inputs={[n.name for n in self.inputs]}, "
                f"outputs={[o.describe() for o in self.outputs]}, dtype={self.dtype!r})")


def reseed(rng: np.random.Generator, seed: Any, what: str) -> None:
    """Put ``rng`` in the state a fresh generator seeded with ``seed`` has (the same object stays bound
    in the generated code)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise GraphError(f"{what}: seed must be an int >= 0, got {seed!r}")
    rng.bit_generator.state = type(rng.bit_generator)(int(seed)).state


def _bind_args(what: str, inputs: list[Node], args: tuple, kwargs: dict) -> tuple:
    names = [n.name for n in inputs]
    if len(args) > len(inputs):
        raise FeedError(f"{what}: takes {len(inputs)} input(s) {names}, got {len(args)}")
    values: dict[str, Any] = dict(zip(names, args))
    for k, val in kwargs.items():
        if k not in names:
            raise FeedError(f"{what}: unknown input {k!r}; the inputs are {names}")
        if k in values:
            raise FeedError(f"{what}: input {k!r} given twice")
        values[k] = val
    missing = [n for n in names if n not in values]
    if missing:
        raise FeedError(f"{what}: missing input(s) {missing}; the inputs are {names}")
    return tuple(values[n] for n in names)


def compile(outputs: Node | Sequence[Node], inputs: Sequence[Node] | None = None, dtype: str = "float64", *,
            reuse_buffers: bool = True, seed: Any = None, backend: str = "numpy",
            **options: Any) -> CompiledFunction:  # noqa: A001
    # (the natural name, as in jax/theano)
    """Compile output nodes to one Python + NumPy function.

    Parameters
    ----------
    outputs : a node or a list of nodes (forward values, gradients, ...).
    inputs : the vars, in the order the function takes them; default: the
        graph's vars in creation order.
    dtype : ``"float64"`` or ``"float32"``: the float type of every array
        inside (inputs are converted; params whose value has the other
        dtype are cast at each call).
    reuse_buffers : let elementwise ops write into temporaries whose last
        use has passed (``np.add(a, b, out=a)``).
    seed : for the random nodes: None (fresh entropy), an int >= 0 or a
        ``numpy.random.Generator`` the function then draws from.  With the
        same seed, a float64 function draws what :func:`symgrad.evaluate`
        draws with that seed.
    backend : ``"numpy"`` (this compiler), ``"numba"`` (fused loops compiled by
        Numba, ``pip install 'symgrad[numba]'``) or another name of
        :data:`symgrad.backends.BACKENDS`.

    Returns
    -------
    CompiledFunction
        Callable returning an array (a tuple of them for a list of outputs);
        ``.source`` holds the generated code.

    Raises
    ------
    GraphError : a var of the graph is not among ``inputs``; bad dtype.
    FeedError : (when called) wrong number of inputs, or an input of the
        wrong shape or dtype.

    Examples
    --------
    >>> import symgrad as sg
    >>> x, y = sg.var("x"), sg.var("y")
    >>> w, b = sg.param("w", 0.5), sg.param("b", 0.1)
    >>> L = (sg.sigmoid(w * x + b) - y) ** 2
    >>> dw, db = sg.grad(L, [w, b])
    >>> f = sg.compile([L, dw, db], inputs=[x, y])
    >>> loss, gw, gb = f(1.5, 1.0)
    >>> round(float(loss), 6), round(float(gw), 6)
    (0.08966, -0.188439)
    >>> "# grad of:" in f.source
    True
    """
    dtype = _check_dtype(dtype)
    if backend != "numpy":
        return get_backend(backend).compile(outputs, inputs, dtype, reuse_buffers=reuse_buffers, seed=seed,
                                            **options)
    _no_options(options, "compile")
    single = isinstance(outputs, Node)
    outs = as_node_list(outputs, "compile")
    if not outs:
        raise GraphError("compile: no outputs given")
    if inputs is None:
        ins = Graph(outs).vars
    else:
        ins = _check_inputs(inputs, "compile")
    rng = make_rng(seed, "compile")
    program = Program("fn", dtype, ins, [], outs, [], [], params_writable=False, reuse=reuse_buffers,
                       single=single)
    fn, source, path = build("fn", program, rng=rng)
    return CompiledFunction(fn, source, path, ins, outs, dtype, rng)


class StepFunction:
    """One training step, compiled: forward, backward and the optimizer update.

    ``step(*batch)`` updates every param's ``.value`` array in place (the
    same array objects, so ``p.value[...] = x`` done elsewhere is seen) and
    the optimizer state, and returns the loss as a float, or
    ``(loss, *outputs)`` when ``outputs`` were asked for.
    ``step.evaluate(*batch)`` returns the same without updating.

    Threads: a step keeps work buffers and the optimizer state between
    calls and updates the params in place, so its calls are serialised by
    a lock (``step.evaluate`` and ``step.reset`` take it too): two threads
    calling the same step get the result of the same calls made one after
    the other, in the order the lock grants them.  The lock is the step's
    own: two *different* steps that train the same params, or other code
    that reads or sets ``p.value`` while a step runs in another thread,
    are not synchronised with it.

    Attributes
    ----------
    inputs : the input vars, in call order.
    params : the trained params.
    optimizer : the optimizer (:mod:`symgrad.optim`).
    t : number of updates done so far (Adam's bias correction and
        learning-rate schedules read it); settable.
    state : ``{param name: {state name: array}}``, the optimizer state
        (updated in place).
    buffers : the buffers the step updates (batch norm's running statistics,
        :mod:`symgrad.ops.state`), in place in their ``.value`` arrays, after
        the forward pass.
    rng : the ``numpy.random.Generator`` the random nodes (dropout masks, ε)
        are drawn from, afresh at every call; seeded by ``seed=``, reseeded
        by :meth:`seed`.
    source : the generated source of the step.

    With ``dtype="float32"`` the forward and backward passes, gradients and
    optimizer state are float32.  A param whose ``.value`` is float32
    (``p.value = p.value.astype(np.float32)``) is computed on and updated
    in place like a float64 param in a float64 step; a float64 ``.value``
    stays a float64 master copy: each step casts it into a float32 working
    array on entry and applies the update to it at the end (two more
    passes over it per step).  The same holds the other way round for a
    float32 param in a float64 step.  The step is compiled for the dtypes
    the params' values have; if one is given a value of the other dtype
    later, the next call compiles (once) a step for the new combination,
    before anything is updated.
    """

    def __init__(self, loss: Node, optimizer, inputs: list[Node], outputs: list[Node], params: list[Node],
                 dtype: str, reuse_buffers: bool = True, seed: Any = None,
                 evaluation: tuple[Node, list[Node]] | None = None):
        from ..optim import Optimizer
        if not isinstance(optimizer, Optimizer):
            raise GraphError(f"compile_step: optimizer must be an sg.optim optimizer, got {type(optimizer).__name__}")
        self.loss, self.optimizer, self.inputs, self.outputs = loss, optimizer, inputs, outputs
        self.params, self.dtype = params, dtype
        self.t = 0
        self.rng = make_rng(seed, "compile_step")
        self._lock = threading.Lock()  # one call at a time: work buffers, state and params are shared
        self._reuse = reuse_buffers
        self._evaluate: CompiledFunction | None = None
        self._evaluation = evaluation or (loss, outputs)  # what evaluate (and fit's validation) computes
        leaves = {n.name for n in Graph([loss] + outputs).leaves if n.name}
        lr = var(_fresh_name("lr", leaves))
        t = var(_fresh_name("t", leaves))
        grads = grad(loss, params) if params else []
        plan = optimizer.plan(params, grads, lr, t, names=leaves)
        np_dtype = DTYPES[dtype]
        self.state: dict[str, dict[str, np.ndarray]] = {}
        state_nodes, state_arrays, stores = [], [], []
        for p, new_p in zip(params, plan.new_params):
            stores.append((p, new_p))
        updates = state_updates([loss] + outputs)
        self.buffers = [b for b, _ in updates]
        stores += updates
        for p, name, leaf, new in plan.states:
            arr = np.zeros(p.shape, dtype=np_dtype)
            self.state.setdefault(p.name, {})[name] = arr
            state_nodes.append(leaf)
            state_arrays.append(arr)
            stores.append((leaf, new))
        self._state_list = state_arrays
        owner = {leaf: p for p, _, leaf, _ in plan.states}
        rule = optimizer.rule_lines()
        self._make = lambda: Program("step", dtype, inputs, [lr, t], [loss] + outputs, stores, state_nodes,
                                     params_writable=True, barrier=grads, reuse=reuse_buffers,
                                     return_float_first=True, single=not outputs, rule_comment=rule,
                                     state_owner=owner)
        whole = Graph([loss] + outputs + [v for _, v in stores])
        self._graph_params = whole.params + whole.buffers
        self._variants: dict[tuple, tuple[Callable, str, str]] = {}
        self._fn, self.source, self.path = self._compile()
        self._n = len(inputs)

    def _compile(self) -> tuple[Callable, str, str]:
        """The step for the dtypes the params' values have now (compiled once per combination)."""
        key = tuple(np.asarray(p.value).dtype.str for p in self._graph_params)
        if key not in self._variants:
            self._variants[key] = build("step", self._make(), self._state_list, self.rng)
        return self._variants[key]

    def __call__(self, *args: Any, **kwargs: Any):
        if kwargs or len(args) != self._n:
            args = _bind_args("step", self.inputs, args, kwargs)
        with self._lock:
            t = self.t + 1
            lr = self.optimizer.lr_at(t - 1)  # a schedule's value is checked there (finite, >= 0)
            try:
                out = self._fn(*args, lr, float(t))
            except ParamDtypeChanged:  # a param was given a value of the other float type: recompile
                self._fn, self.source, self.path = self._compile()
                out = self._fn(*args, lr, float(t))
            self.t = t
        return out

    def evaluate(self, *args: Any, **kwargs: Any):
        """The loss (and outputs) on a batch, without updating anything (under the step's lock, so it
        sees the params before or after a step running in another thread, never half-updated); of the
        evaluation graph when ``compile_step`` was given one (``eval_loss=``), so no dropout masks are
        drawn and batch norm reads its running statistics."""
        with self._lock:
            if self._evaluate is None:
                eval_loss, eval_outputs = self._evaluation
                self._evaluate = self._compile_function([eval_loss] + list(eval_outputs), inputs=self.inputs,
                                                        dtype=self.dtype, reuse_buffers=self._reuse, seed=self.rng)
            res = self._evaluate(*args, **kwargs)
        if not self.outputs:
            return float(res[0])
        return (float(res[0]),) + tuple(res[1:])

    @staticmethod
    def _compile_function(outputs, **options) -> "CompiledFunction":
        """How this step's backend compiles a function (``evaluate``'s): :func:`compile` here."""
        return compile(outputs, **options)

    def seed(self, seed: int) -> None:
        """Reseed the generator of the random nodes: the calls that follow draw what a step compiled
        with ``seed=seed`` draws."""
        with self._lock:
            reseed(self.rng, seed, "step")

    def reset(self) -> None:
        """Zero the optimizer state and the update count (params are left as they are)."""
        with self._lock:
            for arr in self._state_list:
                arr[...] = 0.0
            self.t = 0

    def __repr__(self) -> str:
        return (f"StepFunction({type(self.optimizer).__name__}, inputs={[n.name for n in self.inputs]}, "
                f"params={[p.name for p in self.params]}, dtype={self.dtype!r}, t={self.t})")


def _fresh_name(stem: str, taken: set[str]) -> str:
    name = f"symgrad_{stem}"
    k = 0
    while name in taken:
        k += 1
        name = f"symgrad_{stem}{k}"
    taken.add(name)
    return name


def _no_options(options: dict, what: str) -> None:
    """Keywords of another backend (``devices=`` of the JAX backend) given to the NumPy one."""
    if options:
        raise GraphError(f"{what}: backend 'numpy' takes no option(s) {sorted(options)} (a backend's own keywords, "
                         f"such as the JAX backend's devices=, go with its backend=)")


def compile_step(loss: Node, optimizer, inputs: Sequence[Node] = (), outputs: Sequence[Node] = (), *,
                 params: Sequence[Node] | None = None, dtype: str = "float64",
                 reuse_buffers: bool = True, seed: Any = None, eval_loss: Node | None = None,
                 eval_outputs: Sequence[Node] | None = None, backend: str = "numpy", **options: Any) -> StepFunction:
    """Compile forward, backward and optimizer update into one function.

    Parameters
    ----------
    loss : scalar loss node.
    optimizer : an optimizer from :mod:`symgrad.optim` (its update rule is
        built as graph nodes and compiled together with the gradients).
    inputs : the vars fed at each step, in call order.
    outputs : extra nodes to return with the loss (e.g. the logits).
    params : the params to train; default: every param of the loss graph.
    dtype : ``"float64"`` or ``"float32"`` (see :class:`StepFunction`).
    seed : for the random nodes (dropout masks, a VAE's ε), drawn afresh at
        every step: None, an int >= 0 or a ``numpy.random.Generator``.
    eval_loss, eval_outputs : the same loss and outputs built from the model
        in evaluation mode (``model.eval()``: no dropout, batch norm's running
        statistics); ``step.evaluate`` and ``sg.fit``'s validation compute
        these instead of the training graph.  ``eval_outputs`` defaults to
        none when ``eval_loss`` is given with no outputs, and must match
        ``outputs`` in number and shapes.
    backend : ``"numpy"`` (default) or another compiler of
        :data:`symgrad.backends.BACKENDS` (``"numba"``: see :func:`compile`).

    Buffer updates recorded in the loss's graph (batch norm's running
    statistics in training mode, :mod:`symgrad.ops.state`) are applied at
    every step too.

    Returns
    -------
    StepFunction

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> x, y = sg.var("x", shape=("batch",)), sg.var("y", shape=("batch",))
    >>> w = sg.param("w", 0.0)
    >>> step = sg.compile_step(sg.losses.mse(w * x, y), sg.optim.SGD(lr=0.1), inputs=[x, y])
    >>> xs = np.array([1.0, 2.0])
    >>> for _ in range(50):
    ...     loss = step(xs, 3 * xs)
    >>> round(float(w.value), 6), step.t
    (3.0, 50)
    """
    dtype = _check_dtype(dtype)
    if backend != "numpy":
        return get_backend(backend, "compile_step").compile_step(
            loss, optimizer, inputs, outputs, params=params, dtype=dtype, reuse_buffers=reuse_buffers, seed=seed,
            eval_loss=eval_loss, eval_outputs=eval_outputs, **options)
    _no_options(options, "compile_step")
    loss, ins, outs, ps, evaluation = step_arguments(loss, inputs, outputs, params, eval_loss, eval_outputs)
    return StepFunction(loss, optimizer, ins, outs, ps, dtype, reuse_buffers, seed, evaluation)


def step_arguments(loss: Node, inputs, outputs, params, eval_loss, eval_outputs) -> tuple:
    """:func:`compile_step`'s arguments checked (for every backend): ``(loss, inputs, outputs, params,
    evaluation)``, evaluation None or ``(eval_loss, eval_outputs)``."""
    if not isinstance(loss, Node):
        raise GraphError(f"compile_step: loss must be a Node, got {type(loss).__name__}")
    if loss.shape != ():
        raise GraphError(f"compile_step: the loss must be a scalar, got {loss.describe()} of shape "
                         f"{format_shape(loss.shape)}")
    ins = _check_inputs(inputs, "compile_step")
    outs = as_node_list(list(outputs) if outputs is not None else [], "compile_step")
    graph = Graph([loss] + outs)
    if params is None:
        ps = Graph(loss).params
    else:
        ps = as_node_list(params, "compile_step")
        for p in ps:
            if p.kind != "param":
                raise GraphError(f"compile_step: params must be sg.param nodes, got {p.describe()}")
            if p not in graph:
                raise GraphError(f"compile_step: param {p.name!r} is not in the graph of the loss")
        if len(set(ps)) != len(ps):
            raise GraphError("compile_step: a param is listed twice")
    evaluation = None
    if eval_loss is not None or eval_outputs is not None:
        if not isinstance(eval_loss, Node) or eval_loss.shape != ():
            raise GraphError(f"compile_step: eval_loss must be a scalar node (the loss of the evaluation-mode "
                             f"model), got {eval_loss!r}")
        eouts = as_node_list(list(eval_outputs) if eval_outputs is not None else [], "compile_step")
        if [o.shape for o in eouts] != [o.shape for o in outs]:
            raise GraphError(f"compile_step: eval_outputs must match outputs in number and shapes: "
                             f"{[format_shape(o.shape) for o in eouts]} vs {[format_shape(o.shape) for o in outs]}")
        extra = [v.name for v in Graph([eval_loss] + eouts).vars if v not in ins]
        if extra:
            raise GraphError(f"compile_step: the evaluation graph uses vars {extra} that are not among the inputs "
                             f"{[n.name for n in ins]}")
        evaluation = (eval_loss, eouts)
    return loss, ins, outs, list(ps), evaluation
