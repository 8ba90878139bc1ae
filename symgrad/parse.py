"""Safe parsing of expression strings into graph nodes.

The text is read with Python's ``ast`` parser (which builds a tree and runs
nothing) and only a whitelist of node kinds is accepted: numbers, names,
``+ - * / ** ^ @``, unary minus, and calls of the activation functions
listed in :data:`FUNCTIONS`.  Names become vars (or params, for the names
asked for); nothing is ever passed to ``eval``.

Examples
--------
>>> from symgrad.parse import parse
>>> expr = parse("sigmoid(w*x + b)", params=["w", "b"])
>>> sorted(expr.names)
['b', 'w', 'x']
>>> expr.node.op.name
'sigmoid'
"""
from __future__ import annotations

import ast
import dataclasses
from typing import Callable, Iterable, Mapping

from . import ops
from .errors import ParseError
from .graph import Node

MAX_LENGTH = 2000

#: functions an expression may call, with the number of node arguments
FUNCTIONS: dict[str, tuple[Callable[..., Node], int]] = {
    "sigmoid": (ops.sigmoid, 1), "tanh": (ops.tanh, 1), "relu": (ops.relu, 1), "softplus": (ops.softplus, 1),
    "exp": (ops.exp, 1), "log": (ops.log, 1), "sqrt": (ops.sqrt, 1), "abs": (ops.abs, 1),
    "sin": (ops.sin, 1), "cos": (ops.cos, 1), "leaky_relu": (ops.leaky_relu, 1), "maximum": (ops.maximum, 2),
}
_NUMBER_KEYWORDS = {"leaky_relu": {"alpha"}}
_BINOPS = {ast.Add: ops.add, ast.Sub: ops.sub, ast.Mult: ops.mul, ast.Div: ops.div, ast.Pow: ops.pow,
           ast.MatMult: ops.matmul}


@dataclasses.dataclass
class Parsed:
    """An expression read into a graph: its root node and its leaves by name."""

    text: str
    node: Node
    names: dict[str, Node]


def _error(text: str, col: int | None, message: str, hint: str = "") -> ParseError:
    hint = f"; {hint}" if hint else ""
    if col is None:
        return ParseError(f"{message}{hint}\n  {text}")
    return ParseError(f"{message} at position {col + 1}{hint}\n  {text}\n  {' ' * col}^")


def parse(text: str, *, params: Iterable[str] = (), values: Mapping[str, float] | None = None) -> Parsed:
    """Read ``text`` into graph nodes without evaluating anything.

    Parameters
    ----------
    text : an expression such as ``"sigmoid(w*x + b)"``.
    params : names to create as params (trainable) rather than vars.
    values : starting values for those params (default 0.0).
    """
    if not isinstance(text, str):
        raise ParseError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise ParseError("empty expression")
    src = text.strip()
    # '^' means power, as in maths and SymPy's convert_xor; keep a map back to the user's columns
    code, back = "", []
    for i, ch in enumerate(src):
        piece = "**" if ch == "^" else ch
        code += piece
        back.extend([i] * len(piece))
    back.append(len(src))

    def error(col: int | None, message: str, hint: str = "") -> ParseError:
        return _error(src, None if col is None else back[min(col, len(back) - 1)], message, hint)

    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError as e:
        col = (e.offset - 1) if e.offset else None
        raise error(col, f"syntax error: {e.msg}") from None
    except (RecursionError, MemoryError, ValueError) as e:
        raise ParseError(f"cannot parse expression: {type(e).__name__}") from None
    wanted = set(params)
    values = dict(values or {})
    names: dict[str, Node] = {}

    def leaf(name: str, col: int) -> Node:
        if name in FUNCTIONS:
            raise error(col, f"{name!r} is a function; call it as {name}(...)")
        if name.startswith("_"):
            raise error(col, f"names may not start with '_' ({name!r})")
        if name not in names:
            if name in wanted:
                names[name] = ops.param(name, float(values.get(name, 0.0)))
            else:
                names[name] = ops.var(name)
        return names[name]

    def number(n: ast.AST, what: str) -> float:
        neg = False
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            neg = isinstance(n.op, ast.USub)
            n = n.operand
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            return -float(n.value) if neg else float(n.value)
        raise error(getattr(n, "col_offset", None), f"{what} must be a number")

    def visit(n: ast.AST) -> Node:
        col = getattr(n, "col_offset", None)
        if isinstance(n, ast.Expression):
            return visit(n.body)
        if isinstance(n, ast.Constant):
            if type(n.value) not in (int, float):
                raise error(col, f"only numbers are allowed as constants, not {type(n.value).__name__}")
            return ops.const(float(n.value))
        if isinstance(n, ast.Name):
            return leaf(n.id, col)
        if isinstance(n, ast.BinOp):
            fn = _BINOPS.get(type(n.op))
            if fn is None:
                raise error(col, f"operator {type(n.op).__name__} is not allowed")
            return fn(visit(n.left), visit(n.right))
        if isinstance(n, ast.UnaryOp):
            if isinstance(n.op, ast.USub):
                return ops.neg(visit(n.operand))
            if isinstance(n.op, ast.UAdd):
                return visit(n.operand)
            raise error(col, f"operator {type(n.op).__name__} is not allowed")
        if isinstance(n, ast.Call):
            if not isinstance(n.func, ast.Name):
                raise error(col, f"calling {type(n.func).__name__.lower()} {ast.unparse(n.func)[:40]!r} is not "
                                 f"allowed, only a function by name such as sigmoid(z)",
                            f"allowed: {', '.join(sorted(FUNCTIONS))}")
            if n.func.id not in FUNCTIONS:
                raise error(col, f"unknown function {n.func.id!r}", f"allowed: {', '.join(sorted(FUNCTIONS))}")
            fn, arity = FUNCTIONS[n.func.id]
            if len(n.args) != arity:
                raise error(col, f"{n.func.id} takes {arity} argument(s), got {len(n.args)}")
            kwargs = {}
            for kw in n.keywords:
                if kw.arg not in _NUMBER_KEYWORDS.get(n.func.id, set()):
                    raise error(col, f"{n.func.id} has no keyword {kw.arg!r}")
                kwargs[kw.arg] = number(kw.value, f"{n.func.id}({kw.arg}=...)")
            return fn(*(visit(a) for a in n.args), **kwargs)
        raise error(col, f"{type(n).__name__} is not allowed in an expression")

    try:
        node = visit(tree)
    except RecursionError:
        raise ParseError("expression is nested too deeply") from None
    return Parsed(src, node, names)
