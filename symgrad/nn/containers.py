"""Containers (:class:`Sequential`, :class:`ModuleList`) and the parameter-free layers that go in them:
the activation modules :class:`ReLU`, :class:`Sigmoid`, :class:`Tanh`, :class:`GELU`, :class:`Softmax`
and :class:`Flatten`.

A container names its ``i``-th child ``<container name>.<i>``, PyTorch's indices, so the parameters of
``Sequential(Linear(4, 3), ReLU(), Linear(3, 2), name="seq")`` are ``seq.0.W``, ``seq.0.b``,
``seq.2.W`` and ``seq.2.b`` whatever the layers were called before.  The child keeps its identity:
the container renames the child (and every module under it) and the parameter and buffer nodes they
own, in place, so ``fc.W`` is still the node that trains.  Put modules in a container before building
graphs with them; a graph built earlier keeps showing the old names.

Outputs are named nodes: an activation module's output is ``<name>.a``, Flatten's ``<name>.out``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..errors import GraphError
from ..graph import Node, check_name
from ..ops import as_node, flatten, gelu, relu, sigmoid, softmax, tanh
from .module import Module


def rename(module: Module, new_name: str) -> Module:
    """Give ``module`` the name ``new_name``, in place: every module under it whose name starts with
    the old name gets the new prefix (others get ``<new_name>.`` put in front), and the parameter and
    buffer nodes each owns are renamed ``<module name>.<local>`` to match.  Returns ``module``.
    A module put in two containers keeps the name the second gave it.

    Examples
    --------
    >>> import symgrad as sg
    >>> from symgrad.nn.containers import rename
    >>> fc = sg.nn.Linear(2, 1, name="fc")
    >>> W = fc.W
    >>> [n for n, _ in rename(fc, "head").named_parameters()], fc.W is W
    (['head.W', 'head.b'], True)
    """
    if not isinstance(module, Module):
        raise GraphError(f"rename expects a Module, got {type(module).__name__}")
    check_name(new_name)
    old = module.name
    if old == new_name:
        return module
    for m in list(module.modules()):
        if m.name == old or m.name.startswith(old + "."):
            m.name = new_name + m.name[len(old):]
        else:
            m.name = f"{new_name}.{m.name}"
        for store in (m._params, getattr(m, "_buffers", {})):
            for local, node in store.items():
                # Nodes are immutable to users; a leaf's name is set here, before any graph reads it,
                # so that the node every layer attribute (fc.W) refers to stays the one that trains.
                object.__setattr__(node, "name", f"{m.name}.{local}")
    return module


def _check_module(container: Module, module: Any, position: int) -> Module:
    if not isinstance(module, Module):
        raise GraphError(f"{type(container).__name__} {container.name!r}: item {position} is "
                         f"{type(module).__name__}, not a Module (layers are sg.nn modules: sg.nn.ReLU(), ...)")
    if module is container:
        raise GraphError(f"{type(container).__name__} {container.name!r} cannot hold itself")
    return module


class _Container(Module):
    """What Sequential and ModuleList share: an indexable list of child modules named by index."""

    def __init__(self, modules: Iterable[Module], name: str):
        super().__init__(name)
        self.layers: list[Module] = []
        for module in modules:
            self.append(module)

    def append(self, module: Module) -> "_Container":
        """Add ``module`` at the end, named ``<name>.<index>``; returns the container.

        A module already in the container may appear again (its parameters are then shared); it
        keeps the name of its first place.
        """
        module = _check_module(self, module, len(self.layers))
        if not any(m is module for m in self.layers):
            rename(module, f"{self.name}.{len(self.layers)}")
            self.add_module(module)
        self.layers.append(module)
        return self

    def extend(self, modules: Iterable[Module]) -> "_Container":
        """Append every module of ``modules``; returns the container."""
        for module in modules:
            self.append(module)
        return self

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def __getitem__(self, index: int) -> Module:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise GraphError(f"{type(self).__name__} {self.name!r}: index with an int, got {index!r}")
        if not -len(self.layers) <= index < len(self.layers):
            raise GraphError(f"{type(self).__name__} {self.name!r}: index {index} out of range for "
                             f"{len(self.layers)} modules")
        return self.layers[int(index)]

    def config(self) -> dict | None:
        """``{"modules": [{"class": ..., "config": ...}, ...], "name": ...}``, or None when a child has
        no config or appears twice (a shared module cannot be rebuilt from configs)."""
        if len({id(m) for m in self.layers}) != len(self.layers):
            return None
        children = []
        for m in self.layers:
            config = m.config()
            if config is None:
                return None
            children.append({"class": type(m).__name__, "config": config})
        return {"modules": children, "name": self.name}

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}(name={self.name!r}"]
        lines += [f"  ({i}): {m!r}" for i, m in enumerate(self.layers)]
        return "\n".join(lines) + ("\n)" if self.layers else ")")


class Sequential(_Container):
    """Modules applied one after another, as ``torch.nn.Sequential``: ``seq(x) = m_n(…m_1(m_0(x)))``.

    Parameters
    ----------
    *modules : the layers, in order (any :class:`~symgrad.nn.Module` whose call takes one node).
    name : the container's name; child ``i`` is renamed ``<name>.<i>``, so its parameters are
        ``<name>.<i>.W`` and so on (see :func:`rename`).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> seq = sg.nn.Sequential(sg.nn.Linear(3, 4, seed=0), sg.nn.ReLU(), sg.nn.Linear(4, 2, seed=1))
    >>> [name for name, _ in seq.named_parameters()]
    ['seq.0.W', 'seq.0.b', 'seq.2.W', 'seq.2.b']
    >>> y = seq(sg.var("X", shape=("batch", 3)))
    >>> y.name, y.shape
    ('seq.2.z', ('batch', 2))
    >>> X = np.ones((1, 3))
    >>> expected = np.maximum(X @ seq[0].W.value, 0) @ seq[2].W.value
    >>> bool(np.allclose(sg.evaluate(y, {"X": X}), expected))
    True
    """

    def __init__(self, *modules: Module, name: str = "seq"):
        super().__init__(modules, name)

    def forward(self, x: Any) -> Any:
        """Each module called on the previous one's output."""
        for module in self.layers:
            x = module(x)
        return x


class ModuleList(_Container):
    """A list of modules, as ``torch.nn.ModuleList``: it registers them (their parameters are the
    list's) and names them ``<name>.<i>``, but is not itself a layer; call its modules.

    Examples
    --------
    >>> import symgrad as sg
    >>> blocks = sg.nn.ModuleList([sg.nn.Linear(2, 2, seed=i) for i in range(3)], name="blocks")
    >>> len(blocks), [n for n, _ in blocks.named_parameters()][:2]
    (3, ['blocks.0.W', 'blocks.0.b'])
    >>> h = sg.var("x", shape=("batch", 2))
    >>> for block in blocks:
    ...     h = sg.tanh(block(h))
    >>> h.shape
    ('batch', 2)
    """

    def __init__(self, modules: Iterable[Module] = (), name: str = "layers"):
        if isinstance(modules, Module):
            raise GraphError(f"ModuleList {name!r}: give a list of modules, not one module")
        super().__init__(modules, name)

    def forward(self, *inputs: Any) -> Any:
        raise GraphError(f"ModuleList {self.name!r} is a list, not a layer: call its modules "
                         f"(for m in {self.name}: x = m(x)), or use Sequential")


# ------------------------------------------------------------------ parameter-free layers
def _named(node: Node, name: str) -> Node:
    """``node`` named ``name`` when it is a new op node (a layer that changed nothing returns its input)."""
    return node if node.is_leaf or node.name == name else node.named(name)


class _Activation(Module):
    """An elementwise activation as a module; its output is ``<name>.a``."""

    fn: Callable[..., Node]

    def forward(self, x: Any) -> Node:
        return self.fn(as_node(x, f"{type(self).__name__} {self.name!r}"), name=f"{self.name}.a")

    def config(self) -> dict | None:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ReLU(_Activation):
    """max(x, 0) elementwise, as ``torch.nn.ReLU``.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.evaluate(sg.nn.ReLU()(sg.const([-1.0, 2.0])))
    array([0., 2.])
    """
    fn = staticmethod(relu)

    def __init__(self, name: str = "relu"):
        super().__init__(name)


class Sigmoid(_Activation):
    """σ(x) = 1 / (1 + e^{−x}) elementwise, as ``torch.nn.Sigmoid``.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.evaluate(sg.nn.Sigmoid()(sg.const([0.0])))
    array([0.5])
    """
    fn = staticmethod(sigmoid)

    def __init__(self, name: str = "sigmoid"):
        super().__init__(name)


class Tanh(_Activation):
    """tanh(x) elementwise, as ``torch.nn.Tanh``.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.evaluate(sg.nn.Tanh()(sg.const([0.0])))
    array([0.])
    """
    fn = staticmethod(tanh)

    def __init__(self, name: str = "tanh"):
        super().__init__(name)


class GELU(_Activation):
    """x·Φ(x) elementwise (the exact, erf form), as ``torch.nn.GELU()``.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.evaluate(sg.nn.GELU()(sg.const([1.0]))).round(6)
    array([0.841345])
    """
    fn = staticmethod(gelu)

    def __init__(self, name: str = "gelu"):
        super().__init__(name)


class Softmax(Module):
    """exp(x) / Σ exp(x) along ``axis``, as ``torch.nn.Softmax(dim=axis)``; output ``<name>.a``.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.evaluate(sg.nn.Softmax(axis=-1)(sg.const([[0.0, 0.0]])))
    array([[0.5, 0.5]])
    """

    def __init__(self, axis: int = -1, name: str = "softmax"):
        super().__init__(name)
        if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
            raise GraphError(f"Softmax {name!r}: axis must be an int, got {axis!r}")
        self.axis = int(axis)

    def forward(self, x: Any) -> Node:
        return softmax(as_node(x, f"Softmax {self.name!r}"), axis=self.axis, name=f"{self.name}.a")

    def config(self) -> dict | None:
        return {"axis": self.axis, "name": self.name}

    def __repr__(self) -> str:
        return f"Softmax(axis={self.axis}, name={self.name!r})"


class Flatten(Module):
    """Axes ``start_axis`` … ``end_axis`` merged into one, as ``torch.nn.Flatten`` (which keeps the
    batch axis: ``start_axis=1``); output ``<name>.out``.

    Examples
    --------
    >>> import symgrad as sg
    >>> sg.nn.Flatten()(sg.var("X", shape=("batch", 32, 4, 4))).shape
    ('batch', 512)
    """

    def __init__(self, start_axis: int = 1, end_axis: int = -1, name: str = "flatten"):
        super().__init__(name)
        for what, value in (("start_axis", start_axis), ("end_axis", end_axis)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                raise GraphError(f"Flatten {name!r}: {what} must be an int, got {value!r}")
        self.start_axis, self.end_axis = int(start_axis), int(end_axis)

    def forward(self, x: Any) -> Node:
        x = as_node(x, f"Flatten {self.name!r}")
        return _named(flatten(x, self.start_axis, self.end_axis), f"{self.name}.out")

    def config(self) -> dict | None:
        return {"start_axis": self.start_axis, "end_axis": self.end_axis, "name": self.name}

    def __repr__(self) -> str:
        return f"Flatten(start_axis={self.start_axis}, end_axis={self.end_axis}, name={self.name!r})"


__all__ = ["Sequential", "ModuleList", "ReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "Flatten", "rename"]
