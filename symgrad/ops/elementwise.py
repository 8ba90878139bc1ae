"""Elementwise ops: arithmetic, activations, comparisons, per-entry losses.

Each op is one ``elementwise_op`` call: its SymPy meaning, NumPy
implementation, VJP and label.  Broadcasting is undone centrally in
autodiff, so these VJPs return cotangents of the broadcast shape.
"""
from __future__ import annotations

import numpy as np
import sympy

from .. import runtime
from .. import oneline as P
from ..errors import GraphError
from ..graph import Node, broadcast_of, finite_number
from ..oneline import Notation
from .base import apply, as_node, const, get_op
from .declare import elementwise_op
from .kernels import MASK_MUL, XENT_GRAD
from .sympy_funcs import leaky_relu as _sp_leaky_relu
from .sympy_funcs import leaky_step as _sp_leaky_step
from .sympy_funcs import relu as _sp_relu
from .sympy_funcs import sigmoid as _sp_sigmoid
from .sympy_funcs import softplus as _sp_softplus
from .sympy_funcs import step as _sp_step

POSITIVE = (0.3, 3.0)
NO_GRAD = lambda node, g, needs: (None,) * node.op.nin  # noqa: E731  zero gradient a.e.


# ------------------------------------------------------ compile-time rewrites
def _drop_identity(identity: float):
    """x ∘ e -> x for the op's identity element e (when x already has the result's shape)."""
    def rewrite(v, args, shape, ir):
        for i in (0, 1):
            other = args[1 - i]
            if args[i].is_const(identity) and broadcast_of(other.shape, args[i].shape) == other.shape:
                return other
        return None
    return rewrite


def _rewrite_mul(v, args, shape, ir):
    same = _drop_identity(1.0)(v, args, shape, ir)
    if same is not None:
        return same
    for i in (0, 1):  # g * relu'(z) -> g * (relu(z) > 0): a masked product, no float mask
        if args[i].op is STEP and args[i].shape == shape:
            return ir.make(MASK_MUL, [args[1 - i], args[i].args[0]], (), shape)
    return None


def _rewrite_neg(v, args, shape, ir):
    return args[0].args[0] if args[0].op is NEG else None


def _from_primal(primal_name: str, build):
    """A derivative read off its primal's output when the primal is computed anyway
    (σ′(z) = s(1 − s) with s = σ(z)); ``build(ir, out, shape)`` writes it."""
    def rewrite(v, args, shape, ir):
        primal = get_op(primal_name)
        if not ir.computed(primal, v.args):
            return None
        return build(ir, ir.make(primal, args, (), shape), shape)
    return rewrite


def _sub_of_xent(v, args, shape, ir):
    """g − exp(ls)·Σ g  with g = c·one_hot(y), ls = log_softmax(z)  ->  c·(one_hot(y) − softmax(z))."""
    gv, prod = args
    if prod.op is not MUL or gv.op is not MUL or shape != gv.shape:
        return None
    e, s = prod.args
    if s.op is EXP:
        e, s = s, e
    if e.op is not EXP or s.op is not get_op("sum") or s.args[0] is not gv or not s.attr("keepdims"):
        return None
    ls = e.args[0]
    last = ls.ndim - 1
    if ls.op is not get_op("log_softmax") or ls.attr("axis") != last or s.attr("axis") != (last,) \
            or ls.shape != shape:
        return None
    c, oh = gv.args
    if c.op is get_op("one_hot"):
        c, oh = oh, c
    if oh.op is not get_op("one_hot") or c.ndim != 0 or oh.shape != shape:
        return None
    return ir.make(XENT_GRAD, [ls, oh.args[0], c], (), shape)


def _sub(ir, a, b, shape):
    return ir.make(get_op("sub"), [a, b], (), shape)


# ------------------------------------------------------------ arithmetic
elementwise_op("add", lambda a, b: a + b, np.add, nin=2, label="+", vjp=lambda n, g, needs: (g, g),
               matrix=lambda n, a, mx: mx.add(n, a), notation=Notation("infix", "+", P.ADD), ufunc="add",
               infix="+", commutative=True, rewrite=_drop_identity(0.0))
elementwise_op("sub", lambda a, b: a - b, np.subtract, nin=2, label="−",
               vjp=lambda n, g, needs: (g, -g if needs[1] else None), matrix=lambda n, a, mx: mx.sub(n, a),
               notation=Notation("infix", "−", P.ADD), ufunc="subtract", infix="-", rewrite=_sub_of_xent)
MUL = elementwise_op("mul", lambda a, b: a * b, np.multiply, nin=2, label="×",
                     vjp=lambda n, g, needs: (g * n.inputs[1] if needs[0] else None,
                                              g * n.inputs[0] if needs[1] else None),
                     matrix=lambda n, a, mx: mx.mul(n, a), notation=Notation("infix", "·", P.MUL, "⊙", spaced=None),
                     ufunc="multiply", infix="*", commutative=True, rewrite=_rewrite_mul)


# w·x where a zero weight wins over an infinite x (0·(−∞) = 0, the convention 0·log 0 = 0 of
# cross-entropy): −Σ one_hot(y)·log_softmax(z) is finite for a −∞ logit of another class
elementwise_op("weighted", lambda w, x: w * x, runtime.weighted, nin=2, label="×",
               vjp=lambda n, g, needs: (g * n.inputs[1] if needs[0] else None,
                                        g * n.inputs[0] if needs[1] else None),
               matrix=lambda n, a, mx: mx.mul(n, a), notation=Notation("infix", "·", P.MUL, "⊙", spaced=None),
               domain=((0.0, 1.0), (-2.0, 2.0)), preserves_dtype=True)


def _div_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    a, b = n.inputs
    return (g / b if needs[0] else None, -(g * n) / b if needs[1] else None)


elementwise_op("div", lambda a, b: a / b, np.divide, nin=2, label="÷", vjp=_div_vjp,
               domain=((-2.0, 2.0), POSITIVE), matrix=lambda n, a, mx: mx.div(n, a),
               notation=Notation("frac", "/", P.FRAC), ufunc="divide", infix="/")
NEG = elementwise_op("neg", lambda a: -a, np.negative, label="−", vjp=lambda n, g, needs: (-g,),
                     matrix=lambda n, a, mx: mx.neg(n, a), notation=Notation("prefix", "−", P.NEG),
                     ufunc="negative", infix="-", rewrite=_rewrite_neg)


def _pow_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    """∂(aᵇ)/∂a = b·aᵇ⁻¹ and ∂(aᵇ)/∂b = aᵇ·log a, with PyTorch's values at the removable
    singularities: 0 wherever b = 0 (also at a = 0, where aᵇ⁻¹ is ∞), and ∂/∂b = 0 wherever
    a = 0 and b ≥ 0 (where log a is −∞).  A constant side decides the masks when the graph is
    built; otherwise they are ``where`` nodes, so formulas and compiled code carry them too."""
    a, b = n.inputs
    da = db = None
    if needs[0]:
        if b.kind == "const" and np.all(b.value == 0.0):
            da = None  # a**0 is constant: no gradient flows
        elif b.kind == "const" and np.all(b.value != 0.0):
            bm1 = const(b.value - 1.0)
            da = g * b * (a ** bm1) if not np.all(b.value == 2.0) else g * const(2.0) * a
        else:
            da = where(equal(b, const(0.0)), const(0.0), g * b * (a ** (b - 1.0)))
    if needs[1]:
        db = g * n * log(a)
        if not (a.kind == "const" and np.all(a.value != 0.0)):
            db = where(equal(a, const(0.0)) * greater_equal(b, const(0.0)), const(0.0), db)
    return da, db


elementwise_op("pow", lambda a, b: a ** b, np.power, nin=2, label="^", vjp=_pow_vjp,
               domain=(POSITIVE, (-2.0, 2.0)), matrix=lambda n, a, mx: mx.power(n, a),
               notation=Notation("power", "^", P.POW), ufunc="power", infix="**", pyfloat_infix=False)

# --------------------------------------------------------- transcendental
EXP = elementwise_op("exp", sympy.exp, np.exp, label="exp", vjp=lambda n, g, needs: (g * n,), ufunc="exp")
elementwise_op("log", sympy.log, np.log, label="log", vjp=lambda n, g, needs: (g / n.inputs[0],),
               domain=(POSITIVE,), ufunc="log")
elementwise_op("sqrt", sympy.sqrt, np.sqrt, label="√", vjp=lambda n, g, needs: (g * const(0.5) / n,),
               domain=(POSITIVE,), ufunc="sqrt")
elementwise_op("sign", sympy.sign, np.sign, label="sign", vjp=NO_GRAD, ufunc="sign")
elementwise_op("abs", sympy.Abs, np.abs, label="|·|", vjp=lambda n, g, needs: (g * sign(n.inputs[0]),),
               notation=Notation("bars", "|"), ufunc="absolute")
elementwise_op("sin", sympy.sin, np.sin, label="sin", vjp=lambda n, g, needs: (g * cos(n.inputs[0]),),
               ufunc="sin")
elementwise_op("cos", sympy.cos, np.cos, label="cos", vjp=lambda n, g, needs: (-(g * sin(n.inputs[0])),),
               ufunc="cos")

# ------------------------------------------------------------ activations
elementwise_op("sigmoid_prime", lambda t: _sp_sigmoid(t) * (1 - _sp_sigmoid(t)), runtime.sigmoid_prime,
               label="σ′", derivative_of=("sigmoid", 0),
               rewrite=_from_primal("sigmoid", lambda ir, s, shape: ir.make(
                   MUL, [s, _sub(ir, ir.const(1.0), s, shape)], (), shape)))
elementwise_op("sigmoid", _sp_sigmoid, runtime.sigmoid, label="σ", output_range=(0.0, 1.0),
               vjp=lambda n, g, needs: (g * apply("sigmoid_prime", n.inputs[0]),), domain=((-4.0, 4.0),))
elementwise_op("tanh_prime", lambda t: 1 - sympy.tanh(t) ** 2, runtime.tanh_prime, label="tanh′",
               derivative_of=("tanh", 0),
               rewrite=_from_primal("tanh", lambda ir, t, shape: _sub(
                   ir, ir.const(1.0), ir.make(MUL, [t, t], (), shape), shape)))
elementwise_op("tanh", sympy.tanh, np.tanh, label="tanh", output_range=(-1.0, 1.0), ufunc="tanh",
               vjp=lambda n, g, needs: (g * apply("tanh_prime", n.inputs[0]),))
# relu'(z) read off relu(z) > 0: z itself may then be overwritten by relu in place
STEP = elementwise_op("step", _sp_step, runtime.step, label="relu′", vjp=NO_GRAD, derivative_of=("relu", 0),
                      rewrite=_from_primal("relu", lambda ir, r, shape: ir.make(STEP, [r], (), shape)))
elementwise_op("relu", _sp_relu, runtime.relu, label="ReLU", ufunc="maximum", ufunc_args=("0.0",),
               vjp=lambda n, g, needs: (g * apply("step", n.inputs[0]),))
elementwise_op("leaky_relu_prime", lambda t, alpha: _sp_leaky_step(t, sympy.nsimplify(alpha)),
               runtime.leaky_relu_prime, label="LeakyReLU′", vjp=NO_GRAD, attr_names=("alpha",),
               derivative_of=("leaky_relu", 0))
elementwise_op("leaky_relu", lambda t, alpha: _sp_leaky_relu(t, sympy.nsimplify(alpha)), runtime.leaky_relu,
               label="LeakyReLU", attr_names=("alpha",),
               vjp=lambda n, g, needs: (g * apply("leaky_relu_prime", n.inputs[0], alpha=n.attr("alpha")),))
elementwise_op("softplus", _sp_softplus, runtime.softplus, label="softplus",
               vjp=lambda n, g, needs: (g * sigmoid(n.inputs[0]),))

# ------------------------------------------------------------ comparisons
_piece = lambda cond: sympy.Piecewise((1, cond), (0, True))  # noqa: E731
elementwise_op("equal", lambda a, b: _piece(sympy.Eq(a, b)), runtime.equal, nin=2, label="=", vjp=NO_GRAD,
               notation=Notation("infix", "=", P.CMP), commutative=True)
# equal, with NaN matching NaN (NumPy's equal_nan): the max's gradient goes to the NaN entries of a NaN max
elementwise_op("equal_nan", lambda a, b: _piece(sympy.Eq(a, b)), runtime.equal_nan, nin=2, label="=", vjp=NO_GRAD,
               notation=Notation("infix", "=", P.CMP), commutative=True)
elementwise_op("greater", lambda a, b: _piece(a > b), runtime.greater, nin=2, label=">", vjp=NO_GRAD,
               notation=Notation("infix", ">", P.CMP))
elementwise_op("greater_equal", lambda a, b: _piece(a >= b), runtime.greater_equal, nin=2, label="≥",
               vjp=NO_GRAD, notation=Notation("infix", "≥", P.CMP))


def _where_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    c = n.inputs[0]
    zero = const(0.0)
    return (None, where(c, g, zero) if needs[1] else None, where(c, zero, g) if needs[2] else None)


elementwise_op("where", lambda c, a, b: sympy.Piecewise((a, sympy.Ne(c, 0)), (b, True)), runtime.where,
               nin=3, label="where", vjp=_where_vjp, domain=((-1.0, 1.0), (-2.0, 2.0), (-2.0, 2.0)))


def _maximum_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    a, b = n.inputs
    mask = greater_equal(a, b)
    return (g * mask if needs[0] else None, g * (const(1.0) - mask) if needs[1] else None)


def _sym_max(a, b):
    """max(a, b); nan when either is nan, as np.maximum, and complex infinity (SymPy's 1/0) when either
    is that (SymPy's Max refuses to compare either)."""
    for special in (sympy.nan, sympy.zoo):
        if special in (a, b):
            return special
    return sympy.Max(a, b)


elementwise_op("maximum", _sym_max, np.maximum, nin=2, label="max", vjp=_maximum_vjp, ufunc="maximum",
               commutative=True)

# ---------------------------------------------------- per-entry losses
TARGET_RANGE = (0.0, 1.0)  # the targets of binary cross-entropy are probabilities
elementwise_op("bce_dp", lambda p, y: (p - y) / (p * (1 - p)), runtime.bce_dp, nin=2, label="∂bce/∂p",
               domain=((0.2, 0.8), (0.0, 1.0)), derivative_of=("bce", 0))


def _bce_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    p, y = n.inputs
    dy = None
    if needs[1]:
        dy = g * (log(const(1.0) - p) - log(p))
    return (g * apply("bce_dp", p, y) if needs[0] else None, dy)


elementwise_op("bce", lambda p, y: -(y * sympy.log(p) + (1 - y) * sympy.log(1 - p)), runtime.bce, nin=2,
               label="BCE", vjp=_bce_vjp, domain=((0.2, 0.8), (0.0, 1.0)), input_range=(None, TARGET_RANGE))


def _bce_logits_vjp(n: Node, g: Node, needs: tuple) -> tuple:
    z, y = n.inputs
    return (g * (sigmoid(z) - y) if needs[0] else None, -(g * z) if needs[1] else None)


elementwise_op("bce_logits",
               lambda z, y: -(y * sympy.log(_sp_sigmoid(z)) + (1 - y) * sympy.log(1 - _sp_sigmoid(z))),
               runtime.bce_logits, nin=2, label="BCE(logits)", vjp=_bce_logits_vjp,
               domain=((-3.0, 3.0), (0.0, 1.0)), input_range=(None, TARGET_RANGE))


# ------------------------------------------------------ public functions
def add(a, b) -> Node:
    return apply("add", a, b)


def sub(a, b) -> Node:
    return apply("sub", a, b)


def _is_one(n: Node) -> bool:
    return n.kind == "const" and n.value.ndim == 0 and n.value == 1.0


def mul(a, b) -> Node:
    """a * b; multiplying by the scalar constant 1 returns the other operand."""
    a, b = as_node(a, "mul"), as_node(b, "mul")
    if _is_one(a):
        return b
    if _is_one(b):
        return a
    return apply("mul", a, b)


def div(a, b) -> Node:
    return apply("div", a, b)


def neg(a) -> Node:
    return apply("neg", a)


def pow(a, b) -> Node:  # noqa: A001  NumPy's name
    return apply("pow", a, b)


def exp(x, name=None) -> Node:
    return apply("exp", x, name=name)


def log(x, name=None) -> Node:
    return apply("log", x, name=name)


def sqrt(x, name=None) -> Node:
    return apply("sqrt", x, name=name)


def abs(x, name=None) -> Node:  # noqa: A001  NumPy's name
    return apply("abs", x, name=name)


def sign(x, name=None) -> Node:
    return apply("sign", x, name=name)


def sin(x, name=None) -> Node:
    return apply("sin", x, name=name)


def cos(x, name=None) -> Node:
    return apply("cos", x, name=name)


def sigmoid(x, name=None) -> Node:
    """σ(x) = 1 / (1 + e^{-x}), computed without overflow."""
    return apply("sigmoid", x, name=name)


def tanh(x, name=None) -> Node:
    return apply("tanh", x, name=name)


def relu(x, name=None) -> Node:
    return apply("relu", x, name=name)


def leaky_relu(x, alpha: float = 0.01, name=None) -> Node:
    value = finite_number(alpha)
    if value is None:
        raise GraphError(f"leaky_relu: alpha must be a finite number, got {alpha!r}")
    return apply("leaky_relu", x, alpha=value, name=name)


def softplus(x, name=None) -> Node:
    return apply("softplus", x, name=name)


def equal(a, b) -> Node:
    return apply("equal", a, b)


def greater(a, b) -> Node:
    return apply("greater", a, b)


def greater_equal(a, b) -> Node:
    return apply("greater_equal", a, b)


def where(cond, a, b, name=None) -> Node:
    """``a`` where ``cond`` is non-zero, else ``b`` (NumPy's ``where``)."""
    return apply("where", cond, a, b, name=name)


def maximum(a, b, name=None) -> Node:
    return apply("maximum", a, b, name=name)


__all__ = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "sign", "sin", "cos",
           "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "equal", "greater", "greater_equal",
           "where", "maximum", "as_node", "get_op"]
