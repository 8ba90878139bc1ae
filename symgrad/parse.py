"""Safe parsing of expression strings into graph nodes.

The text is read with Python's ``ast`` parser (which builds a tree and runs
nothing) and only a whitelist of node kinds is accepted: numbers, names,
``+ - * / ** ^ @``, unary minus, and calls of the activation functions
listed in :data:`FUNCTIONS`.  Names become vars (or params, for the names
asked for); nothing is ever passed to ``eval``.

Every input is read within budgets, checked before SymPy or NumPy sees
it: at most :data:`MAX_LENGTH` characters, literals of at most
:data:`MAX_LITERAL` characters whose value is a finite float, nesting at
most :data:`MAX_DEPTH` levels deep, and no exact number of more than about
:data:`MAX_DIGITS` digits (``2**100000`` and ``(10*x)**1e10`` would make
SymPy compute one).  Each refusal is a :class:`~symgrad.errors.ParseError`
whose caret points at the place in the text.

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
import math
import unicodedata
from typing import Callable, Iterable, Mapping

import numpy as np

from . import ops
from .errors import ParseError
from .graph import Node

#: longest expression text, in characters
MAX_LENGTH = 2000
#: longest number literal, in characters
MAX_LITERAL = 100
#: deepest nesting of calls, powers and alternating sums and products (formulas print up to ~200 levels)
MAX_DEPTH = 100
#: largest exact number (in decimal digits) the formula of an expression may need
MAX_DIGITS = 1000

#: functions an expression may call, with the number of node arguments
FUNCTIONS: dict[str, tuple[Callable[..., Node], int]] = {
    "sigmoid": (ops.sigmoid, 1), "tanh": (ops.tanh, 1), "relu": (ops.relu, 1), "softplus": (ops.softplus, 1),
    "exp": (ops.exp, 1), "log": (ops.log, 1), "sqrt": (ops.sqrt, 1), "abs": (ops.abs, 1),
    "sin": (ops.sin, 1), "cos": (ops.cos, 1), "leaky_relu": (ops.leaky_relu, 1), "maximum": (ops.maximum, 2),
}
_NUMBER_KEYWORDS = {"leaky_relu": {"alpha"}}
_BINOPS = {ast.Add: ops.add, ast.Sub: ops.sub, ast.Mult: ops.mul, ast.Div: ops.div, ast.Pow: ops.pow,
           ast.MatMult: ops.matmul}
#: the float value of a function applied to a constant (to bound the exact numbers of constant subexpressions)
_CONSTANT_FUNCTIONS: dict[str, Callable[..., float]] = {
    "sigmoid": lambda t: 1.0 / (1.0 + np.exp(-t)), "tanh": np.tanh, "relu": lambda t: max(t, 0.0),
    "softplus": lambda t: np.logaddexp(0.0, t), "exp": np.exp, "log": np.log,
    "sqrt": np.sqrt, "abs": abs, "sin": np.sin, "cos": np.cos,
    "leaky_relu": lambda t, alpha=0.01: t if t >= 0 else alpha * t, "maximum": max,
}
# sums and products flatten in SymPy (a + b + c is one Add): nesting grows where the family changes
_FAMILY = {ast.Add: "add", ast.Sub: "add", ast.Mult: "mul", ast.Div: "mul", ast.USub: "mul"}


@dataclasses.dataclass
class Parsed:
    """An expression read into a graph: its root node and its leaves by name."""

    text: str
    node: Node
    names: dict[str, Node]


@dataclasses.dataclass
class _Info:
    """What the budgets know of a subexpression: its node, nesting depth, the decimal digits of the
    largest exact number its formula may hold, and its float value when it is a constant."""

    node: Node
    depth: int
    digits: float
    value: float | None
    family: str | None


def _width(ch: str) -> int:
    """Columns a character takes in a terminal (combining marks 0, wide East Asian characters 2)."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _error(text: str, col: int | None, message: str, hint: str = "") -> ParseError:
    """A ParseError echoing ``text`` on one line with a caret under character ``col``."""
    hint = f"; {hint}" if hint else ""
    shown = "".join(" " if ch in "\n\r\t\v\f" else ch for ch in text)  # one line, the columns kept
    if col is None:
        return ParseError(f"{message}{hint}\n  {shown}")
    col = max(0, min(col, len(text)))
    pad = sum(_width(ch) for ch in shown[:col])
    return ParseError(f"{message} at position {col + 1}{hint}\n  {shown}\n  {' ' * pad}^")


def _number_digits(v: float) -> float:
    """About log10 of the exact number a formula writes for the constant ``v`` (0.1 is 1/10, 1 is 0)."""
    if v == 0.0:
        return 0.0
    exponent = abs(math.log10(abs(v)))
    return exponent if v == int(v) else exponent + 17.0


def parse(text: str, *, params: Iterable[str] = (), values: Mapping[str, float] | None = None) -> Parsed:
    """Read ``text`` into graph nodes without evaluating anything.

    Parameters
    ----------
    text : an expression such as ``"sigmoid(w*x + b)"``.
    params : names to create as params (trainable) rather than vars.
    values : starting values for those params (default 0.0).

    Raises
    ------
    ParseError
        Anything outside the whitelist, a syntax error, or an input over a
        budget (length, literal size, nesting depth, exact-number size, a
        constant that is not a finite float); the message points at the place.
    """
    if not isinstance(text, str):
        raise ParseError(f"expected an expression string, got {type(text).__name__}")
    if isinstance(params, str) or not isinstance(params, Iterable) or not all(isinstance(p, str) for p in params):
        raise ParseError(f"params must be a list of names, got {params!r}")
    if values is not None and not isinstance(values, Mapping):
        raise ParseError(f"values must be a mapping of names to numbers, got {type(values).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"expression is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise ParseError("empty expression")
    src = text.strip()
    # '^' means power, as in maths and SymPy's convert_xor; keep a map back to the user's columns
    pieces, back = [], []
    for i, ch in enumerate(src):
        piece = "**" if ch == "^" else ch
        pieces.append(piece)
        back.extend([i] * len(piece))
    back.append(len(src))
    code = "".join(pieces)
    line_starts = [0] + [i + 1 for i, ch in enumerate(code) if ch == "\n"]

    def error(col: int | None, message: str, hint: str = "") -> ParseError:
        return _error(src, None if col is None else back[min(max(col, 0), len(back) - 1)], message, hint)

    def column(n: ast.AST) -> int | None:
        """Character index in ``code`` of an AST node (whose col_offset counts UTF-8 bytes of its line)."""
        lineno, offset = getattr(n, "lineno", None), getattr(n, "col_offset", None)
        if lineno is None or offset is None or not 1 <= lineno <= len(line_starts):
            return None
        start = line_starts[lineno - 1]
        line = code[start:].split("\n", 1)[0]
        return start + len(line.encode("utf-8")[:offset].decode("utf-8", "replace"))

    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError as e:  # SyntaxError counts characters (1-based) within its line
        col = None
        if e.offset and e.lineno and 1 <= e.lineno <= len(line_starts):
            col = line_starts[e.lineno - 1] + e.offset - 1
        raise error(col, f"syntax error: {e.msg}") from None
    except (RecursionError, MemoryError) as e:
        raise ParseError(f"expression is nested too deeply to parse ({type(e).__name__}); "
                         f"the limit is {MAX_DEPTH} levels") from None
    except ValueError as e:  # e.g. a NUL character
        raise ParseError(f"cannot parse expression: {e}") from None
    wanted = set(params)
    values = dict(values or {})
    names: dict[str, Node] = {}

    def leaf(name: str, n: ast.AST) -> Node:
        if name in FUNCTIONS:
            raise error(column(n), f"{name!r} is a function; call it as {name}(...)")
        if name.startswith("_"):
            raise error(column(n), f"names may not start with '_' ({name!r})")
        if name not in names:
            if name in wanted:
                names[name] = ops.param(name, float(values.get(name, 0.0)))
            else:
                names[name] = ops.var(name)
        return names[name]

    def literal(n: ast.Constant, what: str = "a number") -> float:
        if type(n.value) not in (int, float):
            raise error(column(n), f"only numbers are allowed as constants, not {type(n.value).__name__}")
        source = ast.get_source_segment(code, n) or ""
        if len(source) > MAX_LITERAL:
            raise error(column(n), f"{what} literal is {len(source)} characters long; the limit is {MAX_LITERAL}")
        try:
            v = float(n.value)
        except OverflowError:
            v = math.inf
        if not math.isfinite(v):
            shown = source if len(source) <= 24 else source[:20] + "..."
            raise error(column(n), f"the number {shown} is beyond the range of a float (±1.8e308)")
        return v

    def number(n: ast.AST, what: str) -> float:
        neg = False
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            neg = isinstance(n.op, ast.USub)
            n = n.operand
        if isinstance(n, ast.Constant) and type(n.value) in (int, float):
            v = literal(n, what)
            return -v if neg else v
        raise error(column(n), f"{what} must be a number")

    def nested(child: _Info, family: str | None) -> int:
        return child.depth if family is not None and child.family == family else child.depth + 1

    def constant(n: ast.AST, fn: Callable[..., float], *args: float, **kwargs: float) -> float | None:
        """The float value of a constant subexpression; refused when it is not finite."""
        with np.errstate(all="ignore"):
            try:
                v = float(fn(*args, **kwargs))
            except (OverflowError, ZeroDivisionError, ValueError):
                v = math.nan
        if not math.isfinite(v):
            seg = ast.get_source_segment(code, n) or ""
            seg = seg if len(seg) <= 40 else seg[:36] + "..."
            raise error(column(n), f"the constant {seg} is not a finite float64 number")
        return v

    def check(n: ast.AST, info: _Info) -> _Info:
        if info.depth > MAX_DEPTH:
            raise error(column(n), f"expression is nested more than {MAX_DEPTH} levels deep here; "
                                   f"the limit is {MAX_DEPTH}")
        if info.digits > MAX_DIGITS:
            raise error(column(n), f"the formula would need exact numbers of about {info.digits:.3g} digits "
                                   f"here; the limit is {MAX_DIGITS}", "use smaller constants or exponents")
        return info

    def children(n: ast.AST) -> list[ast.AST]:
        if isinstance(n, ast.Expression):
            return [n.body]
        if isinstance(n, ast.BinOp):
            return [n.left, n.right]
        if isinstance(n, ast.UnaryOp):
            return [n.operand]
        if isinstance(n, ast.Call):
            if not isinstance(n.func, ast.Name):
                raise error(column(n), f"calling {type(n.func).__name__.lower()} {ast.unparse(n.func)[:40]!r} "
                                       f"is not allowed, only a function by name such as sigmoid(z)",
                            f"allowed: {', '.join(sorted(FUNCTIONS))}")
            if n.func.id not in FUNCTIONS:
                raise error(column(n), f"unknown function {n.func.id!r}", f"allowed: {', '.join(sorted(FUNCTIONS))}")
            arity = FUNCTIONS[n.func.id][1]
            if len(n.args) != arity:
                raise error(column(n), f"{n.func.id} takes {arity} argument(s), got {len(n.args)}")
            for kw in n.keywords:
                if kw.arg not in _NUMBER_KEYWORDS.get(n.func.id, set()):
                    raise error(column(n), f"{n.func.id} has no keyword {kw.arg!r}")
            return list(n.args)
        if isinstance(n, (ast.Constant, ast.Name)):
            return []
        raise error(column(n), f"{type(n).__name__} is not allowed in an expression")

    def build(n: ast.AST, args: list[_Info]) -> _Info:
        if isinstance(n, ast.Expression):
            return args[0]
        if isinstance(n, ast.Constant):
            v = literal(n)
            return _Info(ops.const(v), 0, _number_digits(v), v, None)
        if isinstance(n, ast.Name):
            return _Info(leaf(n.id, n), 0, 0.0, None, None)
        if isinstance(n, ast.BinOp):
            fn = _BINOPS.get(type(n.op))
            if fn is None:
                raise error(column(n), f"operator {type(n.op).__name__} is not allowed")
            a, b = args
            family = _FAMILY.get(type(n.op))
            depth = max(nested(a, family), nested(b, family) + isinstance(n.op, ast.Div))
            value = None
            if a.value is not None and b.value is not None:
                py = {ast.Add: float.__add__, ast.Sub: float.__sub__, ast.Mult: float.__mul__,
                      ast.Div: float.__truediv__, ast.Pow: math.pow, ast.MatMult: float.__mul__}[type(n.op)]
                value = constant(n, py, a.value, b.value)
            # SymPy computes a constant power exactly and distributes a power over a product:
            # (10*x)**n holds 10**n; a sum to a power stays as it is
            if isinstance(n.op, ast.Pow) and b.value is not None and (a.value is not None or a.family != "add"):
                digits = a.digits * max(1.0, abs(b.value)) + b.digits
            else:
                digits = a.digits + b.digits
            family = "pow" if isinstance(n.op, ast.Pow) else family
            return check(n, _Info(fn(a.node, b.node), depth, digits, value, family))
        if isinstance(n, ast.UnaryOp):
            a = args[0]
            if isinstance(n.op, ast.UAdd):
                return a
            if not isinstance(n.op, ast.USub):
                raise error(column(n), f"operator {type(n.op).__name__} is not allowed")
            value = None if a.value is None else -a.value
            return check(n, _Info(ops.neg(a.node), nested(a, "mul"), a.digits, value, "mul"))
        # a whitelisted call (children() checked the function, arity and keyword names)
        fn = FUNCTIONS[n.func.id][0]
        kwargs = {kw.arg: number(kw.value, f"{n.func.id}({kw.arg}=...)") for kw in n.keywords}
        value = None
        if all(a.value is not None for a in args):
            value = constant(n, _CONSTANT_FUNCTIONS[n.func.id], *[a.value for a in args], **kwargs)
        depth = max(a.depth for a in args) + 1
        digits = sum(a.digits for a in args) + sum(_number_digits(v) for v in kwargs.values())
        return check(n, _Info(fn(*(a.node for a in args), **kwargs), depth, digits, value, None))

    # post-order without recursion: a long sum is a left-leaning tree thousands of nodes deep
    done: list[_Info] = []
    stack: list[tuple[ast.AST, bool]] = [(tree, False)]
    while stack:
        n, ready = stack.pop()
        if ready:
            k = len(children(n))
            args = done[len(done) - k:] if k else []
            del done[len(done) - k:]
            done.append(build(n, args))
        else:
            stack.append((n, True))
            stack.extend((c, False) for c in reversed(children(n)))
    return Parsed(src, done[0].node, names)
