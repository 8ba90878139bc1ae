"""tril/triu, masked_fill, minimum, clip, logsumexp, variance, std, norm, step, GELU, ELU and SiLU:
values against NumPy and math references written here, gradients at the points where conventions
matter (bounds, ties, zeros, −∞), silence and finiteness at extreme inputs (warnings are errors),
index notation and printed formulas, PyTorch when installed, and errors for bad arguments."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.formulas.index import IndexBuilder, index_formula, numeric
from symgrad.ops.activations import erf, normal_cdf

RNG = np.random.default_rng(14)


@pytest.fixture
def no_warnings():
    """Every warning fails the test, and so does any NumPy overflow, invalid value or division by zero
    (underflow to 0 is the expected result of exp at large negative arguments)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            yield


def _ev(node, **feeds):
    """sg.evaluate with the feeds of the vars the node depends on (a gradient may depend on none)."""
    names = {n.name for n in sg.Graph(node).vars}
    return sg.evaluate(node, {k: v for k, v in feeds.items() if k in names})


def _compiled(outputs, inputs, *values):
    return sg.compile(outputs, inputs=inputs)(*values)


# ------------------------------------------------------------------ tril, triu
@pytest.mark.parametrize("k", [-1, 0, 1, 2])
def test_tril_triu_equal_numpy_on_a_batch_with_named_dims(k):
    S = sg.var("S", shape=("batch", "seq", "seq"))
    s = RNG.normal(size=(2, 4, 4))
    np.testing.assert_array_equal(_ev(sg.tril(S, k=k), S=s), np.tril(s, k))
    np.testing.assert_array_equal(_ev(sg.triu(S, k=k), S=s), np.triu(s, k))
    assert sg.tril(S, k=k).shape == ("batch", "seq", "seq")


def test_tril_gradient_is_the_same_triangle_of_the_cotangent():
    X = sg.var("X", shape=(3, 4))
    w = RNG.normal(size=(3, 4))
    g = sg.grad(sg.sum(sg.tril(X, k=1) * w), X)
    np.testing.assert_array_equal(_ev(g, X=np.zeros((3, 4))), np.tril(w, 1))
    g = sg.grad(sg.sum(sg.triu(X, k=-1) * w), X)
    np.testing.assert_array_equal(_ev(g, X=np.zeros((3, 4))), np.triu(w, -1))


def test_tril_compiles_to_numpy_tril():
    S = sg.var("S", shape=("batch", 3, 3))
    f = sg.compile(sg.tril(S, k=-1), inputs=[S])
    assert "np.tril(" in f.source
    s = RNG.normal(size=(2, 3, 3))
    np.testing.assert_array_equal(f(s), np.tril(s, -1))


# ------------------------------------------------------------------ masked_fill
def test_masked_fill_with_an_int_mask_broadcast_over_rows():
    X = sg.var("X", shape=("batch", 3))
    m = sg.var("m", shape=(3,), dtype="int")
    x = RNG.normal(size=(2, 3))
    out = _ev(sg.masked_fill(X, m, 7.5), X=x, m=np.array([0, 2, 0]))
    np.testing.assert_array_equal(out, [[x[0, 0], 7.5, x[0, 2]], [x[1, 0], 7.5, x[1, 2]]])


def test_masked_fill_with_a_float_mask_fills_where_non_zero():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    out = _ev(sg.masked_fill(sg.var("x", shape=(4,)), sg.const([0.0, 0.5, -1.0, 0.0]), -2.0), x=x)
    np.testing.assert_array_equal(out, [1.0, -2.0, -2.0, 4.0])


def test_causal_attention_with_minus_inf_mask_has_no_nan_and_zero_gradient_at_the_mask(no_warnings):
    S = sg.var("S", shape=("batch", 4, 4))
    future = sg.const(np.triu(np.ones((4, 4)), k=1))
    A = sg.softmax(sg.masked_fill(S, future, -np.inf), axis=-1)
    w = RNG.normal(size=(4, 4))
    L = sg.sum(A * w)
    g = sg.grad(L, S)
    s = RNG.normal(size=(3, 4, 4)) * 50.0
    a, gs = sg.evaluate([A, g], {S: s})
    # reference: the softmax of each row over its first i+1 entries
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    e = np.where(np.triu(np.ones((4, 4)), 1) == 1, 0.0, e)
    ref = e / e.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(a, ref, rtol=1e-12, atol=1e-300)
    assert np.all(np.isfinite(gs))
    assert np.all(gs[:, np.triu(np.ones((4, 4)), 1) == 1] == 0.0)
    ref_g = ref * (w - np.sum(ref * w, axis=-1, keepdims=True))
    np.testing.assert_allclose(gs, ref_g, rtol=1e-10, atol=1e-12)
    got_a, got_g = _compiled([A, g], [S], s)
    np.testing.assert_allclose(got_a, a, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got_g, gs, rtol=1e-12, atol=1e-300)


def test_masked_fill_gradient_reaches_x_only_where_not_filled():
    X = sg.var("X", shape=(2, 3))
    m = sg.var("m", shape=(2, 3), dtype="int")
    mask = np.array([[1, 0, 0], [0, 0, 1]])
    g = sg.grad(sg.sum(sg.masked_fill(X, m, 1.0) ** 2), X)
    x = RNG.normal(size=(2, 3))
    np.testing.assert_array_equal(_ev(g, X=x, m=mask), np.where(mask != 0, 0.0, 2 * x))


# ------------------------------------------------------------------ minimum, clip
def test_minimum_values_and_gradient_to_the_smaller_input_ties_to_the_first():
    a, b = sg.var("a", shape=(4,)), sg.var("b", shape=(4,))
    av, bv = np.array([1.0, 5.0, 2.0, -3.0]), np.array([2.0, 4.0, 2.0, -3.0])
    np.testing.assert_array_equal(_ev(sg.minimum(a, b), a=av, b=bv), np.minimum(av, bv))
    ga, gb = sg.grad(sg.sum(sg.minimum(a, b)), [a, b])
    np.testing.assert_array_equal(sg.evaluate(ga, {a: av, b: bv}), [1.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(sg.evaluate(gb, {a: av, b: bv}), [0.0, 1.0, 0.0, 0.0])
    # the same convention as maximum: a tie goes to the first input
    ga_max = sg.grad(sg.sum(sg.maximum(a, b)), a)
    np.testing.assert_array_equal(sg.evaluate(ga_max, {a: av, b: bv})[[2, 3]], [1.0, 1.0])


def test_clip_values_and_gradient_one_inside_bounds_included_zero_outside():
    x = sg.var("x", shape=(7,))
    xv = np.array([-3.0, -1.0, -0.999, 0.0, 0.999, 1.0, 3.0])
    np.testing.assert_array_equal(_ev(sg.clip(x, -1.0, 1.0), x=xv), np.clip(xv, -1.0, 1.0))
    g = sg.grad(sg.sum(sg.clip(x, -1.0, 1.0)), x)
    np.testing.assert_array_equal(_ev(g, x=xv), [0, 1, 1, 1, 1, 1, 0])  # torch.clamp's gradient
    np.testing.assert_array_equal(_ev(sg.grad(sg.sum(sg.clip(x, low=0.0)), x), x=xv), [0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(_ev(sg.grad(sg.sum(sg.clip(x, high=0.0)), x), x=xv), [1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(_ev(sg.clip(x, -np.inf, 0.5), x=xv), np.minimum(xv, 0.5))


def test_clip_compiled_keeps_float32():
    x = sg.var("x", shape=(3,))
    f = sg.compile(sg.clip(x, -1.0, 1.0), inputs=[x], dtype="float32")
    out = f(np.array([-2.0, 0.25, 2.0], dtype=np.float32))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [-1.0, 0.25, 1.0])


# ------------------------------------------------------------------ logsumexp
def _lse_reference(row):
    finite = [float(v) for v in row if v != -math.inf]
    if not finite:
        return -math.inf
    m = max(finite)
    return m + math.log(math.fsum(math.exp(v - m) for v in finite))


def test_logsumexp_equals_math_reference_with_extreme_and_minus_inf_entries(no_warnings):
    Z = sg.var("Z", shape=("batch", 3))
    z = np.array([[1e308, 1e308, -1e308], [-1e308, -1e308, -1e308], [0.0, -np.inf, 1.0],
                  [-np.inf, -np.inf, -np.inf], [1000.0, 1000.0, 1000.0]])
    out = _ev(sg.logsumexp(Z, axis=1), Z=z)
    ref = np.array([_lse_reference(r) for r in z])
    np.testing.assert_allclose(out, ref, rtol=1e-15)
    assert out[3] == -np.inf
    np.testing.assert_allclose(_compiled(sg.logsumexp(Z, axis=1), [Z], z), ref, rtol=1e-15)


def test_logsumexp_over_several_axes_and_keepdims():
    x = RNG.normal(size=(2, 3, 4)) * 10
    X = sg.var("X", shape=(2, 3, 4))
    out = _ev(sg.logsumexp(X, axis=(0, 2), keepdims=True), X=x)
    ref = np.log(np.sum(np.exp(x), axis=(0, 2), keepdims=True))
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    np.testing.assert_allclose(_ev(sg.logsumexp(X), X=x), np.log(np.exp(x).sum()), rtol=1e-13)


def test_logsumexp_gradient_is_softmax_with_zeros_at_minus_inf(no_warnings):
    Z = sg.var("Z", shape=(2, 3))
    g = sg.grad(sg.sum(sg.logsumexp(Z, axis=1) * sg.const([1.0, 2.0])), Z)
    z = np.array([[1000.0, -np.inf, 1000.0], [0.0, 1.0, 2.0]])
    e = np.exp([0.0, 1.0, 2.0])
    # exp(z − lse) as PyTorch computes it: lse = 1000 + log 2 is rounded to 1e-13, hence rtol 1e-12
    np.testing.assert_allclose(_ev(g, Z=z), [[0.5, 0.0, 0.5], list(2 * e / e.sum())], rtol=1e-12)


# ------------------------------------------------------------------ variance, std
@pytest.mark.parametrize("ddof", [0, 1, 1.5])
def test_variance_and_std_equal_numpy_with_ddof(ddof):
    X = sg.var("X", shape=("batch", 5))
    x = RNG.normal(size=(3, 5)) * 4 + 2
    np.testing.assert_allclose(_ev(sg.variance(X, axis=1, ddof=ddof), X=x), np.var(x, axis=1, ddof=ddof), rtol=1e-13)
    np.testing.assert_allclose(_ev(sg.std(X, axis=1, ddof=ddof), X=x), np.std(x, axis=1, ddof=ddof), rtol=1e-13)
    np.testing.assert_allclose(_ev(sg.variance(X, axis=0, ddof=ddof, keepdims=True), X=x),
                               np.var(x, axis=0, ddof=ddof, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(_ev(sg.std(X, ddof=ddof), X=x), np.std(x, ddof=ddof), rtol=1e-13)


def test_variance_gradient_is_two_centered_over_dof():
    x = sg.var("x", shape=(4,))
    xv = np.array([1.0, 2.0, 4.0, 9.0])
    g = sg.grad(sg.variance(x, ddof=1), x)
    np.testing.assert_allclose(_ev(g, x=xv), 2 * (xv - xv.mean()) / 3, rtol=1e-14)
    g = sg.grad(sg.std(x), x)
    np.testing.assert_allclose(_ev(g, x=xv), (xv - xv.mean()) / (4 * np.std(xv)), rtol=1e-14)


def test_std_gradient_is_zero_at_zero_variance_not_nan(no_warnings):
    X = sg.var("X", shape=("batch", 3))
    g = sg.grad(sg.sum(sg.std(X, axis=1)), X)
    x = np.array([[0.1, 0.1, 0.1], [1.0, 2.0, 3.0]])
    out = _ev(g, X=x)
    np.testing.assert_array_equal(out[0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(out[1], (x[1] - 2.0) / (3 * np.std(x[1])), rtol=1e-14)
    np.testing.assert_array_equal(_compiled(g, [X], x), out)


def test_variance_and_std_stay_finite_and_exact_at_extreme_magnitudes(no_warnings):
    x = sg.var("x", shape=(2,))
    big = np.array([1e200, -1e200])
    assert float(_ev(sg.std(x), x=big)) == 1e200  # np.std overflows to inf here
    assert float(_ev(sg.variance(x), x=big)) == np.inf  # 1e400 is beyond the float range: inf, silently
    tiny = np.array([3e-200, -3e-200])
    assert float(_ev(sg.std(x), x=tiny)) == pytest.approx(3e-200, rel=1e-15)  # np.std underflows to 0
    huge = np.array([1.7e308, 1.7e308])
    assert float(_ev(sg.variance(x), x=huge)) == 0.0  # np.var: mean overflows, inf − inf


# ------------------------------------------------------------------ norm
def test_norm_equals_numpy_and_stays_finite_at_extreme_magnitudes(no_warnings):
    X = sg.var("X", shape=("batch", 3))
    x = RNG.normal(size=(4, 3))
    np.testing.assert_allclose(_ev(sg.norm(X, axis=1), X=x), np.linalg.norm(x, axis=1), rtol=1e-14)
    np.testing.assert_allclose(_ev(sg.norm(X), X=x), np.linalg.norm(x), rtol=1e-14)
    np.testing.assert_allclose(_ev(sg.norm(X, axis=0, keepdims=True), X=x),
                               np.linalg.norm(x, axis=0, keepdims=True), rtol=1e-14)
    v = sg.var("v", shape=(2,))
    assert float(_ev(sg.norm(v), v=[1e200, 1e200])) == pytest.approx(math.sqrt(2) * 1e200, rel=1e-15)
    assert float(_ev(sg.norm(v), v=[3e-200, 4e-200])) == pytest.approx(5e-200, rel=1e-15)


def test_norm_gradient_is_x_over_norm_and_zero_at_zero(no_warnings):
    X = sg.var("X", shape=(2, 2))
    g = sg.grad(sg.sum(sg.norm(X, axis=1)), X)
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_array_equal(_ev(g, X=x), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_array_equal(_compiled(g, [X], x), [[0.6, 0.8], [0.0, 0.0]])
    # and grad of grad at a non-zero point: the Hessian of ‖x‖ is (I − x̂x̂ᵀ)/‖x‖
    v = sg.var("v", shape=(2,))
    u = sg.var("u", shape=(2,))
    hu = sg.grad(sg.sum(sg.grad(sg.norm(v), v) * u), v)
    vv, uu = np.array([3.0, 4.0]), np.array([1.0, -1.0])
    xhat = vv / 5
    np.testing.assert_allclose(sg.evaluate(hu, {v: vv, u: uu}), (np.eye(2) - np.outer(xhat, xhat)) @ uu / 5,
                               rtol=1e-14)


# ------------------------------------------------------------------ step
def test_step_is_heaviside_with_zero_at_zero_and_no_gradient():
    x = sg.var("x", shape=(5,))
    xv = np.array([-2.0, -0.0, 0.0, 1e-300, 3.0])
    np.testing.assert_array_equal(_ev(sg.step(x), x=xv), np.heaviside(xv, 0.0))
    np.testing.assert_array_equal(_ev(sg.grad(sg.sum(sg.step(x) * x), x), x=xv), np.heaviside(xv, 0.0))
    assert sg.step(x).op is sg.ops.get_op("step")  # the op autodiff uses for ReLU′, not a second one


# ------------------------------------------------------------------ GELU, ELU, SiLU
def test_erf_kernel_agrees_with_math_erf_to_a_few_ulps():
    z = np.concatenate([np.linspace(-7.0, 7.0, 20001), np.geomspace(1e-300, 7.0, 2001), [2.0, 6.0]])
    z = np.concatenate([z, -z, [0.0]])
    ref = np.array([math.erf(v) for v in z])
    assert np.max(np.abs(erf(z) - ref)) <= 4.5e-16
    small = np.abs(z) < 1e-3
    np.testing.assert_allclose(erf(z[small]), ref[small], rtol=1e-15, atol=0)  # relative accuracy near 0
    assert np.isnan(erf(np.nan)) and erf(np.inf) == 1.0 and erf(-np.inf) == -1.0


def test_gelu_equals_x_times_normal_cdf_with_math_erf():
    x = sg.var("x", shape=("batch",))
    xs = np.array([-8.0, -3.0, -1.0, -0.5, 0.0, 0.3, 1.0, 2.5, 6.0])
    phi_cdf = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in xs])
    pdf = np.exp(-xs ** 2 / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(_ev(sg.gelu(x), x=xs), xs * phi_cdf, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(_ev(sg.grad(sg.sum(sg.gelu(x)), x), x=xs), phi_cdf + xs * pdf, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(normal_cdf(xs), phi_cdf, rtol=1e-14)


def test_elu_values_and_gradient_alpha_at_zero():
    x = sg.var("x", shape=(5,))
    xs = np.array([-5.0, -0.1, 0.0, 0.1, 3.0])
    ref = np.array([v if v > 0 else 0.7 * math.expm1(v) for v in xs])
    np.testing.assert_allclose(_ev(sg.elu(x, alpha=0.7), x=xs), ref, rtol=1e-15)
    g = _ev(sg.grad(sg.sum(sg.elu(x, alpha=0.7)), x), x=xs)
    np.testing.assert_allclose(g, [0.7 * math.exp(-5), 0.7 * math.exp(-0.1), 0.7, 1.0, 1.0], rtol=1e-15)


def test_silu_equals_x_sigmoid():
    x = sg.var("x", shape=(5,))
    xs = np.array([-30.0, -1.0, 0.0, 0.5, 20.0])
    s = 1 / (1 + np.exp(-xs))
    np.testing.assert_allclose(_ev(sg.silu(x), x=xs), xs * s, rtol=1e-14)
    np.testing.assert_allclose(_ev(sg.grad(sg.sum(sg.silu(x)), x), x=xs), s + xs * s * (1 - s), rtol=1e-13)


@pytest.mark.parametrize("fn", [sg.gelu, sg.elu, sg.silu, lambda t: sg.clip(t, -1.0, 1.0)],
                         ids=["gelu", "elu", "silu", "clip"])
def test_activations_and_two_derivatives_silent_and_finite_at_extreme_inputs(fn, no_warnings):
    x = sg.var("x", shape=(6,))
    xs = np.array([-1e300, -1000.0, -40.0, 40.0, 1000.0, 1e300])
    y = fn(x)
    g = sg.grad(sg.sum(y), x)
    outs = sg.evaluate([y, g], {x: xs})
    for out in outs + list(_compiled([y, g], [x], xs)):
        assert np.all(np.isfinite(out))
    at1000 = np.array([-1000.0, 1000.0])
    xs2 = sg.var("x2", shape=(2,))
    g2 = sg.grad(sg.sum(sg.grad(sg.sum(fn(xs2)), xs2)), xs2)
    assert np.all(np.isfinite(_ev(g2, x2=at1000)))
    assert np.all(np.isfinite(_compiled(g2, [xs2], at1000)))


def test_activation_values_at_extreme_inputs(no_warnings):
    x = sg.var("x", shape=(4,))
    xs = np.array([-1e300, -1000.0, 1000.0, 1e300])
    np.testing.assert_array_equal(_ev(sg.gelu(x), x=xs), [-0.0, -0.0, 1000.0, 1e300])
    np.testing.assert_array_equal(_ev(sg.silu(x), x=xs), [-0.0, -0.0, 1000.0, 1e300])
    np.testing.assert_array_equal(_ev(sg.elu(x), x=xs), [-1.0, -1.0, 1000.0, 1e300])


# ------------------------------------------------------------------ index notation
def _index_value(node, values, dims=None):
    ix = IndexBuilder()
    idx = ix.indices(node.shape)
    rhs = ix.define(node, idx)
    rhs = rhs.replace(sympy.Min, lambda a, b: sympy.Piecewise((a, a <= b), (b, True)))  # Min for the evaluator
    shape = tuple((dims or {}).get(d, d) for d in node.shape)
    return numeric(rhs, idx, shape, {**values, **(dims or {})})


def _index_cases():
    X = sg.var("X", shape=("batch", 3))
    M = sg.var("M", shape=("batch", 3))
    v = sg.var("v", shape=(3,))
    S = sg.var("S", shape=(2, 3, 3))
    return [
        sg.tril(S), sg.triu(S, k=1), sg.masked_fill(X, M, -np.inf), sg.minimum(X, v), sg.clip(X, -0.5, 0.5),
        sg.clip(X, low=0.0), sg.logsumexp(X, axis=1), sg.logsumexp(S, axis=(0, 2), keepdims=True),
        sg.variance(X, axis=1, ddof=1), sg.variance(S, axis=(0, 2)), sg.std(X, axis=0), sg.norm(v),
        sg.norm(S, axis=(1, 2)),
        sg.gelu(X), sg.elu(X, alpha=0.5), sg.silu(X), sg.step(X), sg.grad(sg.sum(sg.gelu(X)), X),
        sg.grad(sg.sum(sg.elu(X)), X), sg.grad(sg.sum(sg.silu(X)), X), sg.grad(sg.sum(sg.clip(X, -0.5, 0.5)), X),
        sg.grad(sg.norm(v), v), sg.grad(sg.std(v), v),
    ]


@pytest.mark.parametrize("node", _index_cases(), ids=lambda n: n.op.name)
def test_index_notation_computes_to_evaluate(node):
    values = {"X": RNG.normal(size=(4, 3)), "M": (RNG.random((4, 3)) > 0.5) * 1.0, "v": RNG.normal(size=3),
              "S": RNG.normal(size=(2, 3, 3))}
    feeds = {n.name: values[n.name] for n in sg.Graph(node).vars}
    want = sg.evaluate(node, feeds)
    got = _index_value(node, values, {"batch": 4})
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_index_notation_prints_textbook_sums():
    X = sg.var("X", shape=("batch", 3))
    assert "n[i] =" in str(index_formula(sg.norm(X, axis=1), name="n"))
    lse = index_formula(sg.logsumexp(X, axis=1), name="l")
    assert "log" in lse.latex() and r"\sum_{j}" in lse.latex() and "e^{X_{i,j}}" in lse.latex()
    tril = index_formula(sg.tril(sg.var("S", shape=(3, 3))), name="T")
    assert "S_{i,j}" in tril.latex() and r"i - j \geq 0" in tril.latex()
    masked = index_formula(sg.masked_fill(X, sg.var("M", shape=("batch", 3)), -np.inf), name="Y").latex()
    assert r"-\infty" in masked and r"M_{i,j} \neq 0" in masked
    assert index_formula(sg.gelu(X), name="G").latex() == r"G_{i,j} = \Phi\left(X_{i,j}\right) X_{i,j}"


# ------------------------------------------------------------------ printed formulas
def test_formulas_print_the_ops_by_name():
    X = sg.var("X", shape=("batch", 3))
    v = sg.var("v", shape=(3,))
    x = sg.var("x")
    assert sg.pretty(sg.gelu(x)) == "x⋅Φ(x)"
    assert sg.pretty(sg.grad(sg.gelu(x), x)) == "x⋅φ(x) + Φ(x)"
    assert sg.latex(sg.gelu(x)) == r"x \Phi\left(x\right)"
    assert sg.pretty(sg.silu(x)) == "x⋅σ(x)"
    assert sg.pretty(sg.gelu(X)) == "GELU(X)" and sg.pretty(sg.silu(X)) == "SiLU(X)"
    assert sg.pretty(sg.logsumexp(X, axis=1)) == "logsumexp(X)"
    assert sg.pretty(sg.variance(X, axis=1)) == "Var(X)"
    assert sg.pretty(sg.std(X, axis=1, ddof=1)).startswith("std") and "ddof=1" in sg.pretty(sg.std(X, axis=1, ddof=1))
    assert sg.pretty(sg.norm(v)) == "norm(v)"
    assert sg.pretty(sg.tril(sg.var("S", shape=(3, 3)))) == "tril(S)"
    assert sg.latex(sg.minimum(X, 0.0)).startswith(r"\min\left(X")
    dnorm = sg.pretty(sg.grad(sg.norm(v), v))  # x/‖x‖, written as a division (div_or_zero prints as one)
    assert "norm(v)" in dnorm and "─" in dnorm and "div" not in dnorm


def test_one_line_text_of_the_norm_uses_bars():
    from symgrad.oneline import formula_text
    assert formula_text(sg.norm(sg.var("x", shape=(3,)))) == "‖x‖"


def test_matrix_formulas_compute_to_evaluate():
    X = sg.var("X", shape=("batch", 3))
    M = sg.var("M", shape=("batch", 3))
    values = {"X": RNG.normal(size=(4, 3)), "M": (RNG.random((4, 3)) > 0.5) * 1.0, "batch": 4}
    for node in [sg.logsumexp(X, axis=1), sg.variance(X, axis=0, ddof=1), sg.std(X, axis=1), sg.norm(X, axis=1),
                 sg.masked_fill(X, M, -5.0), sg.clip(X, -0.5, 0.5), sg.gelu(X), sg.minimum(X, M),
                 sg.grad(sg.sum(sg.norm(X, axis=1)), X), sg.grad(sg.sum(sg.gelu(X)), X)]:
        want = sg.evaluate(node, {k: v for k, v in values.items() if k != "batch" and k in
                                  {n.name for n in sg.Graph(node).vars}})
        got = np.asarray(sg.formulas.numeric(sg.formula(node), values)).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=str(node))


# ------------------------------------------------------------------ PyTorch
_X = RNG.normal(size=(3, 4)) * 2
_MASK = (RNG.random((3, 4)) > 0.6).astype(np.int64)
_OTHER = _X + RNG.normal(size=(3, 4))  # no ties with x: PyTorch splits a tied gradient in halves
_TORCH_CASES = {  # ours(X, M) and theirs(torch, t, m)
    "tril": (lambda X, M: sg.tril(X, k=1), lambda torch, t, m: torch.tril(t, 1)),
    "triu": (lambda X, M: sg.triu(X), lambda torch, t, m: torch.triu(t)),
    "masked_fill": (lambda X, M: sg.masked_fill(X, M, -1e9), lambda torch, t, m: t.masked_fill(m != 0, -1e9)),
    "minimum": (lambda X, M: sg.minimum(X, sg.const(_OTHER)),
                lambda torch, t, m: torch.minimum(t, torch.tensor(_OTHER))),
    "clip": (lambda X, M: sg.clip(X, -1.0, 1.5), lambda torch, t, m: torch.clamp(t, -1.0, 1.5)),
    "logsumexp": (lambda X, M: sg.logsumexp(X, axis=1), lambda torch, t, m: torch.logsumexp(t, 1)),
    "variance": (lambda X, M: sg.variance(X, axis=1, ddof=1), lambda torch, t, m: torch.var(t, 1, correction=1)),
    "std": (lambda X, M: sg.std(X, axis=0), lambda torch, t, m: torch.std(t, 0, correction=0)),
    "norm": (lambda X, M: sg.norm(X, axis=1), lambda torch, t, m: torch.linalg.vector_norm(t, dim=1)),
    "norm_all": (lambda X, M: sg.norm(X), lambda torch, t, m: torch.linalg.vector_norm(t)),
    "gelu": (lambda X, M: sg.gelu(X), lambda torch, t, m: torch.nn.functional.gelu(t)),
    "elu": (lambda X, M: sg.elu(X, alpha=0.7), lambda torch, t, m: torch.nn.functional.elu(t, alpha=0.7)),
    "silu": (lambda X, M: sg.silu(X), lambda torch, t, m: torch.nn.functional.silu(t)),
    # torch.heaviside has no derivative; symgrad's is 0, the derivative almost everywhere
    "step": (lambda X, M: sg.step(X),
             lambda torch, t, m: torch.heaviside(t.detach(), torch.tensor(0.0, dtype=t.dtype))),
}


@pytest.mark.parametrize("name", sorted(_TORCH_CASES))
def test_values_and_gradients_match_pytorch(name):
    torch = pytest.importorskip("torch")
    ours, theirs = _TORCH_CASES[name]
    X, M = sg.var("X", shape=(3, 4)), sg.var("M", shape=(3, 4), dtype="int")
    t = torch.tensor(_X, requires_grad=True)
    ty = theirs(torch, t, torch.tensor(_MASK))
    w = RNG.normal(size=tuple(ty.shape))
    y = ours(X, M)
    value, grad = (_ev(n, X=_X, M=_MASK) for n in (y, sg.grad(sg.sum(y * w), X)))
    np.testing.assert_allclose(value, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    if ty.requires_grad:
        (ty * torch.tensor(w)).sum().backward()
    want = t.grad.numpy() if t.grad is not None else np.zeros_like(_X)
    np.testing.assert_allclose(grad, want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ bad arguments
def test_bad_arguments_raise_typed_errors_naming_the_op():
    v = sg.var("v", shape=(3,))
    X = sg.var("X", shape=("batch", 3))
    with pytest.raises(sg.ShapeError, match=r"tril: needs a matrix.*\(3,\)"):
        sg.tril(v)
    with pytest.raises(sg.ShapeError, match="triu: k must be an int"):
        sg.triu(X, k=0.5)
    with pytest.raises(sg.ShapeError, match="tril: k must be an int, got the bool"):
        sg.tril(X, k=True)
    with pytest.raises(sg.ShapeError, match="masked_fill"):
        sg.masked_fill(X, sg.var("M", shape=(4,)), 0.0)
    with pytest.raises(sg.GraphError, match="masked_fill: value must be a number, got the node"):
        sg.masked_fill(X, v, sg.const(1.0))
    with pytest.raises(sg.GraphError, match="masked_fill: value must be a real number"):
        sg.masked_fill(X, v, "-inf")
    with pytest.raises(sg.GraphError, match="masked_fill: value must be a real number"):
        sg.masked_fill(X, v, True)
    with pytest.raises(sg.GraphError, match=r"clip: low \(2\) is above high \(1\)"):
        sg.clip(X, 2.0, 1.0)
    with pytest.raises(sg.GraphError, match="clip: give low, high or both"):
        sg.clip(X)
    with pytest.raises(sg.GraphError, match="clip: low must be a number or None, got the node"):
        sg.clip(X, v, 1.0)
    with pytest.raises(sg.GraphError, match="clip: high must be a real number"):
        sg.clip(X, 0.0, float("nan"))
    with pytest.raises(sg.ShapeError, match="variance: ddof must be a finite number >= 0"):
        sg.variance(X, axis=1, ddof=-1)
    with pytest.raises(sg.ShapeError, match="std: ddof=3 leaves no degrees of freedom: 3 entries"):
        sg.std(X, axis=1, ddof=3)
    with pytest.raises(sg.ShapeError, match="norm: axis 2 out of range"):
        sg.norm(X, axis=2)
    with pytest.raises(sg.ShapeError, match="logsumexp: keepdims must be True or False"):
        sg.logsumexp(X, axis=1, keepdims="yes")
    with pytest.raises(sg.GraphError, match="elu: alpha must be a finite real number"):
        sg.elu(X, alpha="1")
    with pytest.raises(sg.ShapeError, match="minimum"):
        sg.minimum(X, sg.var("w", shape=(4,)))


def test_variance_over_a_named_dim_of_one_entry_with_ddof_is_nan_silently(no_warnings):
    X = sg.var("X", shape=("batch", 2))
    out = _ev(sg.variance(X, axis=0, ddof=1), X=np.ones((1, 2)))
    assert np.all(np.isnan(out))
