"""What a compiled function computes, in which order, and for how long each value lives.

:class:`Program` lowers the graph (:mod:`.ir`), rewrites it (:mod:`.rewrite`)
and then plans: the dtype each param is held in (a float64 master of a
float32 step is loaded into a working array), which values are live (dead
ones are dropped), a schedule in two phases (outputs and gradients, then
parameter and state updates, each in graph order), which values are Python
floats, and each value's last use (a view keeps its base alive).
"""
from __future__ import annotations

import heapq
from typing import Sequence

import numpy as np

from ..errors import StateError
from ..graph import Node
from .ir import Value, lower
from .rewrite import Rewriter

FOREVER = 1 << 60  # the last use of a returned value
DTYPES = {"float64": np.float64, "float32": np.float32}


def fresh(v: Value) -> bool:
    """Whether ``v`` is always a new array (never a view of an input)."""
    return v.role == "op" and v.op.fresh


def overwrites_input(v: Value) -> bool:
    """Whether ``v``'s op may write its result over an input of its own shape."""
    return v.role == "op" and ((v.op.ufunc is not None and v.op.elementwise) or v.op.inplace)


def writes_out(v: Value) -> bool:
    """Whether ``v``'s op can write into a given array (``out=``)."""
    return v.role == "op" and (v.op.ufunc is not None or v.op.inplace)


def ownable(v: Value) -> bool:
    """Whether ``v`` can own a buffer: a fresh float array that is not a Python float."""
    return v.ndim > 0 and v.dtype == "float" and fresh(v) and not v.pyscalar


class Program:
    """One function to compile: its inputs, outputs, stores (``leaf ← new value``) and plan.

    ``inputs`` are the vars passed as arrays, ``scalars`` the vars passed as
    Python floats (learning rate, step count), ``bound`` the optimizer
    state vars, ``barrier`` values computed in the first phase although
    only updates use them (the gradients).
    """

    def __init__(self, fname: str, dtype: str, inputs: list[Node], scalars: list[Node],
                 outputs: list[Node], stores: list[tuple[Node, Node]], bound: list[Node],
                 params_writable: bool, barrier: Sequence[Node] = (), reuse: bool = True,
                 return_float_first: bool = False, single: bool = False, rule_comment: Sequence[str] = (),
                 state_owner: dict | None = None):
        self.fname, self.dtype = fname, dtype
        self.float32 = dtype == "float32"
        self.np_dtype = DTYPES[dtype]
        self.inputs, self.scalars, self.outputs = inputs, scalars, outputs
        self.stores, self.bound = stores, bound
        self.params_writable = params_writable
        self.reuse = reuse
        self.return_float_first = return_float_first
        self.single = single
        self.rule_comment = list(rule_comment)
        self.state_owner = dict(state_owner or {})  # state var -> the param it belongs to

        roles: dict[Node, tuple[str, int]] = {}
        for i, n in enumerate(inputs):
            roles[n] = ("input", i)
        for i, n in enumerate(scalars):
            roles[n] = ("scalar", i)
        for i, n in enumerate(bound):
            roles[n] = ("state", i)
        roots = list(outputs) + [v for _, v in stores] + list(barrier)
        for leaf, _ in stores:
            if leaf not in roots:
                roots.append(leaf)
        table, node_vals = lower(roots, roles, dtype)
        remap = Rewriter(table, self.float32).run()
        self.val = {n: remap[id(v)] for n, v in node_vals.items()}
        self.out_vals = [self.val[n] for n in outputs]
        self.store_vals = [(self.val[leaf], self.val[v]) for leaf, v in stores]
        self.barrier_vals = [self.val[n] for n in barrier]
        self.input_vals = [self.val.get(n) for n in inputs]
        self.class_checks = self._class_checks(node_vals)
        self.range_checks = self._range_checks(node_vals)

    def _class_checks(self, node_vals) -> dict[int, int]:
        """input index -> smallest bound on the integer values an op reads from it (checked at entry)."""
        checks: dict[int, int] = {}
        for n, v in node_vals.items():
            if n.kind == "op" and n.op.index_bound and n.inputs[0].kind == "var":
                src = node_vals[n.inputs[0]]
                if src.role == "input":
                    k = n.attr(n.op.index_bound)
                    checks[src.index] = min(k, checks.get(src.index, k))
        return checks

    def _range_checks(self, node_vals) -> dict[int, tuple[float, float, str]]:
        """input index -> the range ``(low, high, op name)`` ops declare for it (``input_range``),
        checked at entry; several ops reading one input check the intersection."""
        checks: dict[int, tuple[float, float, str]] = {}
        for n in node_vals:
            if n.kind != "op":
                continue
            for i, bounds in enumerate(n.op.input_range):
                src = node_vals.get(n.inputs[i]) if bounds is not None and n.inputs[i].kind == "var" else None
                if src is None or src.role != "input":
                    continue
                lo, hi = float(bounds[0]), float(bounds[1])
                if src.index in checks:
                    lo0, hi0, name = checks[src.index]
                    lo, hi, name = max(lo, lo0), min(hi, hi0), name if name == n.op.name else f"{name}, {n.op.name}"
                else:
                    name = n.op.name
                checks[src.index] = (lo, hi, name)
        return checks

    def direct(self, v: Value) -> bool:
        """Whether param ``v`` is computed on in its own array (its value has the compute dtype)."""
        return self.param_dtypes[id(v)] == self.np_dtype

    # ---------------------------------------------------------------- planning
    def plan(self) -> None:
        self._param_dtypes()
        self._stores()
        self._schedule()
        self._liveness()

    def _param_dtypes(self) -> None:
        """The dtype each param's value has now; the generated code checks it at every call."""
        self.param_dtypes: dict[int, np.dtype] = {}
        for v in self.val.values():
            if v.role == "param":
                node = v.nodes[0]
                held = np.asarray(node.value).dtype
                for dt in (np.dtype(np.float64), np.dtype(np.float32)):
                    if held == dt:
                        held = dt
                        break
                else:
                    if self.params_writable:
                        raise StateError(f"{self.fname}: param {node.name!r} holds a value of dtype {held}; "
                                         f"a trained param must be float64 or float32")
                self.param_dtypes[id(v)] = held

    def _stores(self) -> None:
        """A param held in another dtype than the compute dtype (the float64 master of a float32
        step) is loaded into a working array; θ' = θ − u lands in it as np.subtract(master, u, out=master)."""
        self.master_updates: dict[int, tuple[Value, Value]] = {}
        stores = []
        for leaf, v in self.store_vals:
            if leaf.role == "param" and not self.direct(leaf) and v.role == "op" and v.op.ufunc == "subtract" \
                    and v.args[0] is leaf and v not in self.out_vals and v.args[1].shape == leaf.shape:
                self.master_updates[id(leaf)] = (leaf, v.args[1])
                stores.append((leaf, None))
            else:
                stores.append((leaf, v))
        self.plan_stores: list[tuple[Value, Value | None]] = stores

    def _schedule(self) -> None:
        roots = list(self.out_vals) + [v for _, v in self.plan_stores if v is not None] + \
            [u for _, u in self.master_updates.values()]
        live: dict[int, Value] = {}
        stack = list(roots)
        while stack:
            v = stack.pop()
            if id(v) not in live:
                live[id(v)] = v
                stack.extend(v.args)
        # phase 0: what outputs and gradients need; phase 1: the updates
        phase0: set[int] = set()
        stack = list(self.out_vals) + list(self.barrier_vals)
        while stack:
            v = stack.pop()
            if id(v) not in phase0:
                phase0.add(id(v))
                stack.extend(v.args)
        ops = [v for v in live.values() if v.role == "op"]
        users: dict[int, list[Value]] = {id(v): [] for v in live.values()}
        indeg: dict[int, int] = {}
        for v in ops:
            deps = {id(a) for a in v.args if a.role == "op"}
            indeg[id(v)] = len(deps)
            for d in deps:
                users[d].append(v)
        heap = [((0 if id(v) in phase0 else 1), v.order, i, v) for i, v in enumerate(ops) if indeg[id(v)] == 0]
        heapq.heapify(heap)
        seq = len(ops)
        schedule: list[Value] = []
        while heap:
            *_, v = heapq.heappop(heap)
            schedule.append(v)
            for u in users[id(v)]:
                indeg[id(u)] -= 1
                if indeg[id(u)] == 0:
                    seq += 1
                    heapq.heappush(heap, ((0 if id(u) in phase0 else 1), u.order, seq, u))
        assert len(schedule) == len(ops), "cycle in the IR"
        self.schedule, self.live, self.phase0 = schedule, live, phase0
        # Python floats: () values computed from scalars/consts only (learning rate, step count, counts)
        for v in live.values():
            if v.role == "scalar":
                v.pyscalar = True
        for v in schedule:
            v.pyscalar = v.ndim == 0 and (v.op.python_scalar or (
                v.op.elementwise and all(a.pyscalar or (a.role == "const" and a.ndim == 0) for a in v.args)
                and any(a.pyscalar for a in v.args)))

    def _liveness(self) -> None:
        n = len(self.schedule)
        self.pos = {id(v): i for i, v in enumerate(self.schedule)}
        last: dict[int, int] = {}
        consumers: dict[int, set] = {}
        for i, v in enumerate(self.schedule):
            for a in v.args:
                last[id(a)] = max(last.get(id(a), -1), i)
                consumers.setdefault(id(a), set()).add(id(v))
        for _, v in self.plan_stores:
            if v is not None:
                last[id(v)] = max(last.get(id(v), -1), n)
        for _, u in self.master_updates.values():
            last[id(u)] = max(last.get(id(u), -1), n)
        for v in self.out_vals:
            last[id(v)] = FOREVER
        for v in reversed(self.schedule):  # a view keeps its base alive
            if not fresh(v):
                for a in v.args:
                    last[id(a)] = max(last.get(id(a), -1), last.get(id(v), -1))
        self.last: dict[int, int] = last
        self.consumers: dict[int, set] = consumers

    def update_of(self) -> dict[int, Node]:
        """Scheduled update value id -> the param whose update it belongs to (values that only one
        param's new value or state reads), for the comments that open each update block."""
        owner: dict[int, Node] = {}
        for leaf, v in self.plan_stores:
            node = leaf.nodes[0]
            param = node if leaf.role == "param" else self.state_owner.get(node)
            if param is None:
                continue
            for u in ([v] if v is not None else []) + \
                    ([self.master_updates[id(leaf)][1]] if id(leaf) in self.master_updates else []):
                stack = [u]
                while stack:
                    x = stack.pop()
                    if x.role != "op" or id(x) in self.phase0:
                        continue
                    prev = owner.get(id(x), param)
                    owner[id(x)] = param if prev is param else None
                    if prev is param:
                        stack.extend(x.args)
        return {k: p for k, p in owner.items() if p is not None}


def dims_before(inputs: list[Node], upto: int) -> list[str]:
    """Named dims bound by the inputs before input ``upto`` (in binding order)."""
    seen: list[str] = []
    for n in inputs[:upto]:
        for d in n.shape:
            if isinstance(d, str) and d not in seen:
                seen.append(d)
    return seen


__all__ = ["Program", "fresh", "overwrites_input", "writes_out", "ownable", "dims_before", "FOREVER", "DTYPES"]
