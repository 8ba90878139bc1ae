"""Every built-in op, gradient-checked against central finite differences
over several shapes, including broadcasting and a symbolic batch dim."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.ops import BUILTIN_OPS, REGISTRY, apply
from symgrad.ops.linalg import broadcast_like, broadcast_to, reshape_like

from op_cases import all_cases

BATCH = 4  # size the symbolic dim "batch" takes when fed

UNARY_SHAPES = [(), (3,), (2, 3), ("batch", 3)]
BINARY_SHAPES = [((), ()), ((3,), (3,)), ((2, 3), (3,)), (("batch", 3), (1, 3)), ((2, 1), (1, 3)), ((), (2, 2))]
TERNARY_SHAPES = [((), (), ()), ((3,), (3,), (3,)), ((2, 3), (3,), (2, 1)), (("batch", 3), (3,), ())]


def _elementwise_cases(name: str):
    op = REGISTRY[name]
    shapes = {1: UNARY_SHAPES, 2: BINARY_SHAPES, 3: TERNARY_SHAPES}[op.nin]
    attrs = {"alpha": 0.1} if "alpha" in op.attr_names else {}
    for shp in shapes:
        shp = (shp,) if op.nin == 1 else shp
        yield name, shp, (lambda *xs, _op=name, _a=attrs: apply(_op, *xs, **_a)), op.domain


def _cases():
    for name in sorted(BUILTIN_OPS):
        op = REGISTRY[name]
        if op.elementwise:
            yield from _elementwise_cases(name)
    any_ = ((-2.0, 2.0),)
    two = ((-2.0, 2.0), (-2.0, 2.0))
    for red in ("sum", "mean", "max"):
        fn = getattr(sg, red)
        yield red, ((3,),), lambda x, f=fn: f(x), any_
        yield red, ((2, 3),), lambda x, f=fn: f(x, axis=0), any_
        yield red, ((2, 3, 4),), lambda x, f=fn: f(x, axis=(0, 2), keepdims=True), any_
        yield red, (("batch", 3),), lambda x, f=fn: f(x, axis=0), any_
        yield red, (("batch", 3),), lambda x, f=fn: f(x, axis=-1, keepdims=True), any_
        yield red, (("batch", 3),), lambda x, f=fn: f(x), any_
    for sa, sb in [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), (("batch", 3), (3, 2)),
                   ((2, 2, 3), (3, 4)), ((2, 1, 2, 3), (3, 3, 2)), ((3,), (2, 3, 4))]:
        yield "matmul", (sa, sb), lambda a, b: a @ b, two
    yield "transpose", ((2, 3),), lambda x: x.T, any_
    yield "transpose", ((2, 3, 4),), lambda x: sg.transpose(x, (1, 0, 2)), any_
    yield "transpose", (("batch", 3),), lambda x: x.T, any_
    yield "transpose", ((3,),), lambda x: x.T, any_
    yield "reshape", ((2, 3),), lambda x: sg.reshape(x, (3, 2)), any_
    yield "reshape", ((2, 3),), lambda x: sg.reshape(x, (-1,)), any_
    yield "reshape", ((6,),), lambda x: sg.reshape(x, (2, 1, 3)), any_
    yield "reshape", (("batch", 3, 2),), lambda x: sg.reshape(x, ("batch", 6)), any_
    yield "reshape_like", ((6,), (2, 3)), reshape_like, two
    yield "reshape_like", ((6,), (3, 2)), reshape_like, two
    yield "reshape_like", ((2, 3), (6,)), reshape_like, two
    yield "reshape_like", (("batch", 2), ("batch", 2)), reshape_like, two
    yield "broadcast_like", ((3,), ("batch", 3)), broadcast_like, two
    yield "broadcast_like", ((), (2, 3)), broadcast_like, two
    yield "broadcast_like", ((2, 1), (2, 3)), broadcast_like, two
    yield "broadcast_like", ((1, 3), ("batch", 3)), broadcast_like, two
    yield "broadcast_to", ((3,),), lambda x: broadcast_to(x, (2, 3)), any_
    yield "broadcast_to", ((1, 3),), lambda x: broadcast_to(x, (4, 3)), any_
    yield "broadcast_to", ((),), lambda x: broadcast_to(x, (2,)), any_
    yield "broadcast_to", ((2, 1),), lambda x: broadcast_to(x, (3, 2, 4)), any_
    yield "expand_dims", ((3,),), lambda x: sg.expand_dims(x, 0), any_
    yield "expand_dims", ((3,),), lambda x: sg.expand_dims(x, -1), any_
    yield "expand_dims", (("batch", 3),), lambda x: sg.expand_dims(x, 2), any_
    yield "expand_dims", ((),), lambda x: sg.expand_dims(x, (0, 1)), any_
    for sm in ("softmax", "log_softmax"):
        fn = getattr(sg, sm)
        yield sm, ((3,),), lambda x, f=fn: f(x), any_
        yield sm, ((2, 3),), lambda x, f=fn: f(x, axis=0), any_
        yield sm, (("batch", 4),), lambda x, f=fn: f(x, axis=-1), any_
        yield sm, ((2, 3, 2),), lambda x, f=fn: f(x, axis=1), any_
    for c in all_cases():  # the op families of tests/op_cases/
        yield c.op, c.shapes, c.build, tuple(c.range_of(i) for i in range(len(c.shapes))), c


CASES = list(_cases())
NON_DIFFERENTIABLE = {"one_hot", "count"}  # tested separately below


def _feed(shape, lo_hi, rng, int_=False):
    shape = tuple(BATCH if isinstance(d, str) else d for d in shape)
    lo, hi = lo_hi
    return rng.integers(int(lo), int(hi), size=shape) if int_ else rng.uniform(lo, hi, size=shape)


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_op_gradient_matches_finite_differences(case):
    name, shapes, build, domain, *extra = case
    spec = extra[0] if extra else None  # an op_cases.Case
    ints = spec.int_inputs if spec is not None else ()
    rng = np.random.default_rng(abs(hash((name, str(shapes)))) % 2**32)
    xs = [sg.var(f"x{i}", shape=s, dtype="int" if i in ints else "float") for i, s in enumerate(shapes)]
    out = build(*xs)
    assert any(n.op is not None and n.op.name == name for n in sg.Graph(out).order)
    # a non-linear, entry-distinguishing scalar of the output
    y = sg.sum(sg.sin(out) + 0.5 * out)
    feeds = {x: _feed(x.shape, domain[i] if i < len(domain) else (-2, 2), rng, int_=i in ints)
             for i, x in enumerate(xs)}
    wrt = [x for i, x in enumerate(xs) if i not in ints]
    if spec is not None and spec.wrt is not None:
        wrt = [xs[i] for i in spec.wrt]
    elif name == "where":
        wrt = xs[1:]  # the condition carries no gradient
    if name in ("reshape_like", "broadcast_like"):
        wrt = xs[:1]  # the second input only gives a shape
    err = sg.check_grad(y, wrt, feeds, rtol=1e-4, atol=1e-6)
    assert err < 1e-4


def test_every_builtin_op_has_a_gradient_case():
    needed = set(BUILTIN_OPS) - NON_DIFFERENTIABLE
    counts = {name: sum(1 for c in CASES if c[0] == name) for name in needed}
    too_few = {name: n for name, n in counts.items() if n < 4}
    assert not too_few, f"ops with fewer than 4 gradient test shapes: {too_few}"


def test_cases_include_broadcasting_and_symbolic_dims():
    for name in {c[0] for c in CASES}:
        shape_sets = [c[1] for c in CASES if c[0] == name]
        assert any(any("batch" in s for s in shapes) for shapes in shape_sets) or name in (
            "broadcast_to", "reshape_like"), f"{name} has no symbolic-dim case"


def test_one_hot_values_and_not_differentiable():
    y = sg.var("y", shape=("batch",), dtype="int")
    oh = sg.one_hot(y, 3)
    assert oh.shape == ("batch", 3)
    np.testing.assert_array_equal(sg.evaluate(oh, {"y": [2, 0]}), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(sg.GradError, match="integers"):
        sg.grad(sg.sum(oh), y)


def test_count_is_the_runtime_size_and_blocks_gradient():
    x = sg.var("x", shape=("batch", 3))
    n = apply("count", x, axis=(0,))
    assert float(sg.evaluate(n, {"x": np.ones((7, 3))})) == 7.0
    g = sg.grad(sg.sum(x) * n, x)
    np.testing.assert_allclose(sg.evaluate(g, {"x": np.ones((5, 3))}), np.full((5, 3), 5.0))


def test_mean_over_symbolic_batch_divides_by_fed_size():
    x = sg.var("x", shape=("batch",))
    g = sg.grad(sg.mean(x * x), x)
    for n in (2, 5):
        v = np.arange(n, dtype=float)
        np.testing.assert_allclose(sg.evaluate(g, {"x": v}), 2 * v / n)


@pytest.mark.parametrize("fn,x0,d1,d2", [
    (lambda x: x ** 3, 1.3, 3 * 1.3 ** 2, 6 * 1.3),
    (lambda x: sg.sin(x) * x, 0.7, np.cos(0.7) * 0.7 + np.sin(0.7), -np.sin(0.7) * 0.7 + 2 * np.cos(0.7)),
    (lambda x: sg.sigmoid(x), 0.4, None, None),
    (lambda x: sg.exp(-x * x), 0.5, -2 * 0.5 * np.exp(-0.25), (4 * 0.25 - 2) * np.exp(-0.25)),
    (lambda x: sg.log(x) / x, 1.7, (1 - np.log(1.7)) / 1.7 ** 2, (2 * np.log(1.7) - 3) / 1.7 ** 3),
    (lambda x: sg.tanh(x) + sg.softplus(x), -0.3, None, None),
])
def test_grad_of_grad(fn, x0, d1, d2):
    x = sg.var("x")
    g1 = sg.grad(fn(x), x)
    g2 = sg.grad(g1, x)
    v1, v2 = sg.evaluate([g1, g2], {x: x0})
    if d1 is None:  # compare with finite differences of the first derivative
        eps = 1e-5
        d1 = (float(sg.evaluate(fn(x), {x: x0 + eps})) - float(sg.evaluate(fn(x), {x: x0 - eps}))) / (2 * eps)
        d2 = (float(sg.evaluate(g1, {x: x0 + eps})) - float(sg.evaluate(g1, {x: x0 - eps}))) / (2 * eps)
        np.testing.assert_allclose([v1, v2], [d1, d2], rtol=1e-6, atol=1e-8)
    else:
        np.testing.assert_allclose([v1, v2], [d1, d2], rtol=1e-12)
    sg.check_grad(g1, x, {x: x0})  # the backward graph is itself differentiable


def test_hessian_vector_product():
    a = sg.param("a", np.array([0.1, -0.2, 0.3]))
    v = sg.var("v", shape=(3,))
    f = sg.sum(sg.exp(a) * a) + sg.sum(a) ** 2
    g = sg.grad(f, a)
    hv = sg.grad(sg.sum(g * v), a)
    vv = np.array([1.0, 2.0, -1.0])
    hessian = np.diag(np.exp(a.value) * (2 + a.value)) + 2 * np.ones((3, 3))
    np.testing.assert_allclose(sg.evaluate(hv, {v: vv}), hessian @ vv, rtol=1e-12)


def test_custom_elementwise_op_derivative_by_sympy():
    swish = sg.elementwise(lambda t: t * sg.sympy_sigmoid(t), "swish_test")
    x = sg.var("x", shape=("batch", 3))
    y = sg.sum(swish(x) ** 2)
    feeds = {x: np.random.default_rng(0).normal(size=(4, 3))}
    sg.check_grad(y, x, feeds)
    g = sg.grad(y, x)
    sg.check_grad(sg.sum(g * g), x, feeds)  # second derivative op derived by SymPy too
    xs = feeds[x]
    s = 1 / (1 + np.exp(-xs))
    np.testing.assert_allclose(sg.evaluate(swish(x), feeds), xs * s, rtol=1e-12)
