"""The :class:`Module` base: a named holder of parameters and sub-modules.

A module owns ``sg.param`` nodes whose names are namespaced by the module
name (``mlp.0.W``), so drawings and formulas can group them, and a saved
file or state dict is keyed by the same names.  Calling a module on a node
builds graph nodes; nothing is computed until the graph is evaluated or
compiled.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ..errors import GraphError, ShapeError, StateError
from ..graph import Node, check_name, format_shape
from ..ops import param as _param


class Module(abc.ABC):
    """Base class of layers and models.

    Subclasses call ``super().__init__(name)``, create their parameters with
    :meth:`param` (which prefixes the module name), register sub-modules with
    :meth:`add_module`, and define :meth:`forward`, which maps input nodes to
    output nodes.

    Parameters
    ----------
    name : the module's name; parameter ``W`` of module ``"mlp.0"`` is
        named ``"mlp.0.W"``.

    Examples
    --------
    >>> import symgrad as sg
    >>> class Scale(sg.nn.Module):
    ...     def __init__(self, name="scale"):
    ...         super().__init__(name)
    ...         self.s = self.param("s", 2.0)
    ...     def forward(self, x):
    ...         return x * self.s
    >>> m = Scale()
    >>> [name for name, _ in m.named_parameters()]
    ['scale.s']
    >>> float(sg.evaluate(m(sg.var("x")), {"x": 1.5}))
    3.0
    """

    def __init__(self, name: str):
        self.name = check_name(name)
        self._params: dict[str, Node] = {}
        self._buffers: dict[str, Node] = {}
        self._modules: list[Module] = []
        self.training = True

    # ------------------------------------------------------- building
    def param(self, local: str, value: Any = None, *, shape: Any = None, init: str | Callable | None = None,
              seed: int | None = None, **init_kwargs: Any) -> Node:
        """Create the parameter ``<module name>.<local>`` and register it.

        Arguments are those of :func:`symgrad.param`.
        """
        check_name(local)
        if local in self._params:
            raise GraphError(f"module {self.name!r} already has a parameter {local!r}")
        node = _param(f"{self.name}.{local}", value, shape=shape, init=init, seed=seed, **init_kwargs)
        self._params[local] = node
        return node

    def add_module(self, module: "Module") -> "Module":
        """Register ``module`` as a child; its parameters become part of this one's."""
        if not isinstance(module, Module):
            raise GraphError(f"module {self.name!r}: add_module expects a Module, got {type(module).__name__}")
        if any(m is module for m in self._modules):
            raise GraphError(f"module {self.name!r}: {module.name!r} is already a child")
        self._modules.append(module)
        return module

    def buffer(self, local: str, value: Any) -> Node:
        """Create the buffer ``<module name>.<local>``: state that is not trained by gradients
        (batch norm's running statistics), updated by a compiled training step, read by the
        evaluation graph, and saved with the parameters (:meth:`state_dict`)."""
        from ..ops.state import buffer as _buffer
        check_name(local)
        if local in self._buffers or local in self._params:
            raise GraphError(f"module {self.name!r} already has a parameter or buffer {local!r}")
        node = _buffer(f"{self.name}.{local}", value)
        self._buffers[local] = node
        return node

    # ------------------------------------------------------- modes
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (the default) on this module and every sub-module; returns ``self``.

        The mode is read when the module is *called*: a graph built in training mode
        keeps dropout and batch statistics, one built after :meth:`eval` does not.
        Both graphs share the parameters.

        Examples
        --------
        >>> import symgrad as sg
        >>> m = sg.nn.MLP([2, 3, 1])
        >>> m.eval().training, all(not s.training for s in m.modules())
        (False, True)
        >>> m.train().training
        True
        """
        if not isinstance(mode, (bool, np.bool_)):
            raise GraphError(f"module {self.name!r}: train() expects True or False, got {mode!r}")
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Set evaluation mode on this module and every sub-module (``train(False)``); returns ``self``."""
        return self.train(False)

    @abc.abstractmethod
    def forward(self, *inputs: Any) -> Any:
        """Build the output nodes for the given input nodes."""

    def __call__(self, *inputs: Any, **options: Any) -> Any:
        return self.forward(*inputs, **options)

    # ------------------------------------------------------- reading
    def modules(self) -> Iterator["Module"]:
        """This module and every sub-module, depth first, each once."""
        seen: set[int] = set()
        stack: list[Module] = [self]
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield m
            stack.extend(reversed(m._modules))

    def named_parameters(self) -> list[tuple[str, Node]]:
        """``(name, param node)`` pairs: own parameters first, then children's, in creation order.

        Examples
        --------
        >>> import symgrad as sg
        >>> [(n, p.shape) for n, p in sg.nn.Linear(3, 2, name="fc").named_parameters()]
        [('fc.W', (3, 2)), ('fc.b', (2,))]
        """
        out: list[tuple[str, Node]] = []
        by_name: dict[str, Node] = {}
        for m in self.modules():
            for node in m._params.values():
                other = by_name.get(node.name)
                if other is node:  # the same node held by two modules
                    continue
                if other is not None:
                    raise GraphError(f"module {self.name!r}: two different parameters are both named "
                                     f"{node.name!r}; give sub-modules distinct names")
                by_name[node.name] = node
                out.append((node.name, node))
        return out

    def named_buffers(self) -> list[tuple[str, Node]]:
        """``(name, buffer node)`` pairs (batch norm's running statistics), in the order of
        :meth:`named_parameters`."""
        out: list[tuple[str, Node]] = []
        seen: set[Node] = set()
        for m in self.modules():
            for node in m._buffers.values():
                if node not in seen:
                    seen.add(node)
                    out.append((node.name, node))
        return out

    def _state_nodes(self) -> dict[str, Node]:
        nodes = dict(self.named_parameters())
        for name, node in self.named_buffers():
            if name in nodes:
                raise GraphError(f"module {self.name!r}: a parameter and a buffer are both named {name!r}")
            nodes[name] = node
        return nodes

    def parameters(self) -> list[Node]:
        """The parameter nodes, in the order of :meth:`named_parameters`."""
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        """Total number of scalar parameters."""
        return int(sum(p.value.size for p in self.parameters()))

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter value, keyed by parameter name, and of every buffer
        (running statistics), keyed by buffer name.

        Examples
        --------
        >>> import symgrad as sg
        >>> sg.nn.Linear(2, 1, init="ones", name="fc").state_dict()
        {'fc.W': array([[1.],
               [1.]]), 'fc.b': array([0.])}
        """
        return {name: p.value.copy() for name, p in self._state_nodes().items()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Set parameter and buffer values from ``state`` (name -> array), in place.

        Every array is checked before any is assigned, so a failed load
        leaves the module unchanged.

        Parameters
        ----------
        state : mapping from parameter names to arrays of the parameter's shape.
        strict : when true (default), missing or unexpected names raise
            :class:`~symgrad.errors.StateError`; when false, only the names
            present in both are loaded.

        Raises
        ------
        StateError : missing or unexpected names, non-numeric or non-finite values.
        ShapeError : an array's shape differs from its parameter's.

        Examples
        --------
        >>> import symgrad as sg
        >>> a, b = sg.nn.Linear(2, 1, seed=0), sg.nn.Linear(2, 1, seed=1)
        >>> b.load_state_dict(a.state_dict())
        >>> bool((a.W.value == b.W.value).all())
        True
        """
        if not isinstance(state, Mapping):
            raise StateError(f"module {self.name!r}: load_state_dict expects a mapping of names to arrays, "
                             f"got {type(state).__name__}")
        if not isinstance(strict, (bool, np.bool_)):
            raise StateError(f"module {self.name!r}: load_state_dict's strict must be True or False, got {strict!r}")
        params = self._state_nodes()
        missing = [n for n in params if n not in state]
        unexpected = [k for k in state if k not in params]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if unexpected:
                parts.append(f"unexpected {unexpected}")
            raise StateError(f"module {self.name!r}: state dict does not fit: {'; '.join(parts)} "
                             f"(the module's parameters are {list(params)})")
        new: dict[Node, np.ndarray] = {}
        for name, node in params.items():
            if name not in state:
                continue
            try:
                arr = np.asarray(state[name])
            except (TypeError, ValueError, OverflowError) as e:
                raise StateError(f"module {self.name!r}: value for {name!r} is not an array of numbers ({e})") from None
            if arr.dtype.kind not in "fiu":
                raise StateError(f"module {self.name!r}: value for {name!r} has non-numeric dtype {arr.dtype}")
            if arr.shape != node.shape:
                raise ShapeError(f"module {self.name!r}: value for {name!r} has shape {format_shape(arr.shape)}, "
                                 f"the parameter has shape {format_shape(node.shape)}")
            if not np.all(np.isfinite(arr)):
                raise StateError(f"module {self.name!r}: value for {name!r} has non-finite entries")
            new[node] = arr
        for node, arr in new.items():
            node.value = arr.astype(np.float64, copy=True)

    def config(self) -> dict | None:
        """The constructor arguments that rebuild this module, as JSON-able data,
        or None when it cannot be rebuilt from data (used by :func:`symgrad.save`)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, parameters={self.num_parameters()})"
