"""Convolution and pooling: values and every gradient against an independent NumPy reference written
with explicit loops here, PyTorch when installed, index notation equal to evaluate, second derivatives,
bad arguments, the benchmark's smoke run and a small CNN that learns the 8×8 digits."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad.formulas.index import IndexBuilder, numeric
from symgrad.ops import apply

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


# ====================================================================== loop references
def _pair(v, d):
    return (v,) * d if isinstance(v, int) else tuple(v)


def conv_reference(x, w, b, stride, padding, dilation, groups, g_out):
    """Z = conv(x, w) + b by explicit loops, and for the upstream gradient ``g_out`` of Z the gradients
    of Σ g_out·Z wrt x, w and b, by the same loops run backwards."""
    n_, c_, *size = x.shape
    o_, cg, *kernel = w.shape
    d = len(size)
    st, pd, dl = _pair(stride, d), _pair(padding, d), _pair(dilation, d)
    out_sp = [(size[k] + 2 * pd[k] - dl[k] * (kernel[k] - 1) - 1) // st[k] + 1 for k in range(d)]
    og = o_ // groups
    z = np.zeros([n_, o_] + out_sp)
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for n in range(n_):
        for o in range(o_):
            first = (o // og) * cg
            for pos in itertools.product(*(range(m) for m in out_sp)):
                acc = b[o] if b is not None else 0.0
                for c in range(cg):
                    for k in itertools.product(*(range(m) for m in kernel)):
                        at = tuple(st[a] * pos[a] + dl[a] * k[a] - pd[a] for a in range(d))
                        if all(0 <= at[a] < size[a] for a in range(d)):
                            acc += w[(o, c) + k] * x[(n, first + c) + at]
                            dw[(o, c) + k] += g_out[(n, o) + pos] * x[(n, first + c) + at]
                            dx[(n, first + c) + at] += g_out[(n, o) + pos] * w[(o, c) + k]
                z[(n, o) + pos] = acc
    db = g_out.sum(axis=tuple(a for a in range(g_out.ndim) if a != 1))
    return z, dx, dw, db


def pool_reference(x, kernel, stride, padding, mode, g_out):
    """Pooled x by explicit loops (max: −∞ padding; avg: zeros counted), and the gradient of Σ g_out·pool
    wrt x (max: to the first maximal entry of each window in row-major order)."""
    n_, c_, h_, w_ = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = (h_ + 2 * ph - kh) // sh + 1, (w_ + 2 * pw - kw) // sw + 1
    out, dx = np.zeros((n_, c_, oh, ow)), np.zeros(x.shape)
    for n, c, i, j in itertools.product(range(n_), range(c_), range(oh), range(ow)):
        best, where, total = -np.inf, None, 0.0
        for p, q in itertools.product(range(kh), range(kw)):
            r, s = sh * i + p - ph, sw * j + q - pw
            inside = 0 <= r < h_ and 0 <= s < w_
            v = x[n, c, r, s] if inside else (-np.inf if mode == "max" else 0.0)
            total += v if inside else 0.0
            if v > best:
                best, where = v, (r, s)
        if mode == "max":
            out[n, c, i, j] = best
            dx[n, c, where[0], where[1]] += g_out[n, c, i, j]
        else:
            out[n, c, i, j] = total / (kh * kw)
            for p, q in itertools.product(range(kh), range(kw)):
                r, s = sh * i + p - ph, sw * j + q - pw
                if 0 <= r < h_ and 0 <= s < w_:
                    dx[n, c, r, s] += g_out[n, c, i, j] / (kh * kw)
    return out, dx


# ====================================================================== values and gradients
CONV2D_SETTINGS = [  # (x shape, w shape, stride, padding, dilation, groups, bias)
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 0, 1, 1, True),
    ((2, 3, 7, 6), (4, 3, 3, 2), 2, 1, 1, 1, True),
    ((1, 4, 7, 7), (6, 2, 3, 3), (2, 1), (1, 2), (2, 1), 2, False),
    ((2, 4, 6, 6), (4, 1, 2, 2), 1, 1, 2, 4, True),
    ((1, 2, 5, 5), (3, 2, 5, 5), 3, 2, 1, 1, True),
]


def _check_conv(fn, xs, ws, stride, padding, dilation, groups, bias, seed=0):
    rng = np.random.default_rng(seed)
    xv, wv = rng.normal(size=xs), rng.normal(size=ws)
    bv = rng.normal(size=ws[0]) if bias else None
    X = sg.var("X", shape=("batch",) + xs[1:])
    W, B = sg.param("W", wv), (sg.param("b", bv) if bias else None)
    z = fn(X, W, B, stride=stride, padding=padding, dilation=dilation, groups=groups)
    gv = rng.normal(size=(xs[0],) + z.shape[1:])
    G = sg.var("G", shape=z.shape)
    L = sg.sum(z * G)
    want_z, want_dx, want_dw, want_db = conv_reference(xv, wv, bv, stride, padding, dilation, groups, gv)
    params = [X, W] + ([B] if bias else [])
    got = sg.evaluate([z] + sg.grad(L, params), {"X": xv, "G": gv})
    np.testing.assert_allclose(got[0], want_z, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want_dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[2], want_dw, rtol=1e-12, atol=1e-12)
    if bias:
        np.testing.assert_allclose(got[3], want_db, rtol=1e-12, atol=1e-12)
    # the compiled step computes the same
    compiled = sg.compile([z] + sg.grad(L, params), inputs=[X, G])(xv, gv)
    for c, e in zip(compiled, got):
        np.testing.assert_allclose(c, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("setting", CONV2D_SETTINGS, ids=[str(s[2:6]) for s in CONV2D_SETTINGS])
def test_conv2d_values_and_input_weight_bias_gradients_match_loop_reference(setting):
    _check_conv(sg.conv2d, *setting)


@pytest.mark.parametrize("setting", [((2, 3, 9), (4, 3, 3), 1, 0, 1, 1, True),
                                     ((2, 4, 10), (6, 2, 3), 2, 2, 2, 2, True),
                                     ((1, 2, 6), (2, 1, 4), 3, 1, 1, 2, False)])
def test_conv1d_values_and_gradients_match_loop_reference(setting):
    _check_conv(sg.conv1d, *setting)


POOL_SETTINGS = [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((2, 3), (1, 2), (1, 0)), ((3, 2), (3, 1), (0, 1)),
                 ((2, 2), (3, 2), (1, 0))]  # the last two: overlapping windows; windows with gaps and padding


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("kernel,stride,padding", POOL_SETTINGS)
def test_pooling_values_and_gradients_match_loop_reference(mode, kernel, stride, padding):
    rng = np.random.default_rng(1)
    xv = rng.normal(size=(2, 3, 7, 6))
    X = sg.var("X", shape=("batch", 3, 7, 6))
    fn = sg.max_pool2d if mode == "max" else sg.avg_pool2d
    p = fn(X, kernel, stride=stride, padding=padding)
    gv = rng.normal(size=(2,) + p.shape[1:])
    want, want_dx = pool_reference(xv, kernel, stride, padding, mode, gv)
    got, dx = sg.evaluate([p, sg.grad(sg.sum(p * sg.var("G", shape=p.shape)), X)], {"X": xv, "G": gv})
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-13, atol=1e-13)


def test_max_pool_gradient_goes_to_the_first_of_tied_maxima():
    x = np.array([[[[1.0, 3.0, 3.0, 0.0],
                    [3.0, 2.0, 5.0, 5.0],
                    [0.0, 0.0, -1.0, -1.0],
                    [0.0, 0.0, -1.0, -1.0]]]])
    X = sg.var("X", shape=(1, 1, 4, 4))
    p = sg.max_pool2d(X, 2)
    dx = sg.evaluate(sg.grad(sg.sum(p * sg.const([[[[1.0, 2.0], [3.0, 4.0]]]])), X), {"X": x})
    np.testing.assert_array_equal(dx, [[[[0, 1, 0, 0], [0, 0, 2, 0], [3, 0, 4, 0], [0, 0, 0, 0]]]])


@pytest.mark.parametrize("stride", [2, 1])
def test_max_pool_of_a_window_with_nan_is_nan_and_its_gradient_goes_to_the_nan(stride):
    x = np.array([[[[1.0, np.nan, 0.0, 2.0],
                    [5.0, 2.0, 1.0, 0.5]]]])
    X = sg.var("X", shape=(1, 1, 2, 4))
    p = sg.max_pool2d(X, 2, stride=stride)
    got, dx = sg.evaluate([p, sg.grad(sg.sum(p * sg.const(np.arange(1.0, p.shape[3] + 1))), X)], {"X": x})
    if stride == 2:
        np.testing.assert_array_equal(got, [[[[np.nan, 2.0]]]])
        np.testing.assert_array_equal(dx, [[[[0, 1, 0, 2], [0, 0, 0, 0]]]])
    else:  # windows 1 and 2 both hold the NaN, window 3 has its maximum at 2.0
        np.testing.assert_array_equal(got, [[[[np.nan, np.nan, 2.0]]]])
        np.testing.assert_array_equal(dx, [[[[0, 3, 0, 3], [0, 0, 0, 0]]]])


def test_max_pool_padding_never_wins_over_negative_entries():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    p = sg.evaluate(sg.max_pool2d(sg.var("X", shape=(1, 1, 3, 3)), 3, stride=1, padding=1), {"X": x})
    assert np.all(np.isfinite(p)) and p[0, 0, 0, 0] == -1.0 and p[0, 0, 2, 2] == -5.0


def test_avg_pool_counts_padding_as_zeros():
    X = sg.var("X", shape=(1, 1, 2, 2))
    p = sg.evaluate(sg.avg_pool2d(X, 2, stride=1, padding=1), {"X": np.ones((1, 1, 2, 2))})
    np.testing.assert_allclose(p[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])


@pytest.mark.parametrize("dtype,big", [("float64", 1.5e308), ("float32", 3e38)])
def test_avg_pool_of_huge_finite_entries_does_not_overflow(dtype, big):
    X = sg.var("X", shape=(1, 1, 4, 4))
    x = np.full((1, 1, 4, 4), big, dtype=dtype)
    with np.errstate(all="raise"):
        got = sg.compile(sg.avg_pool2d(X, 2, stride=1), inputs=[X], dtype=dtype)(x)
    np.testing.assert_allclose(got, np.full((1, 1, 3, 3), big), rtol=1e-6)


def test_float32_conv_and_pooling_stay_float32():
    rng = np.random.default_rng(2)
    X = sg.var("X", shape=("batch", 2, 6, 6))
    W = sg.param("W", rng.normal(size=(3, 2, 3, 3)))
    z = sg.avg_pool2d(sg.max_pool2d(sg.conv2d(X, W, padding=1), 2, stride=1), 2)
    L = sg.sum(z * z)
    f = sg.compile([z, sg.grad(L, W)], inputs=[X], dtype="float32")
    xv = rng.normal(size=(4, 2, 6, 6)).astype(np.float32)
    got = f(xv)
    assert all(np.asarray(g).dtype == np.float32 for g in got)
    for g, w in zip(got, sg.evaluate([z, sg.grad(L, W)], {"X": xv.astype(np.float64)})):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_symbolic_batch_dim_takes_any_size():
    X = sg.var("X", shape=("batch", 1, 5, 5))
    W = sg.param("W", np.ones((2, 1, 3, 3)))
    z = sg.max_pool2d(sg.conv2d(X, W, padding=1), 2)
    assert z.shape == ("batch", 2, 2, 2)
    f = sg.compile(z, inputs=[X])
    for n in (1, 3, 7):
        xv = np.arange(n * 25.0).reshape(n, 1, 5, 5)
        np.testing.assert_allclose(f(xv), sg.evaluate(z, {"X": xv}))
        assert f(xv).shape == (n, 2, 2, 2)


# ====================================================================== second derivatives
def test_conv_grad_of_grad_matches_finite_differences():
    rng = np.random.default_rng(3)
    X = sg.var("X", shape=("batch", 4, 5, 5))
    W = sg.param("W", rng.normal(size=(4, 2, 3, 3)))
    z = sg.conv2d(X, W, stride=2, padding=1, groups=2)
    dx, dw = sg.grad(sg.sum(sg.sin(z)), [X, W])
    second = sg.sum(sg.sin(dx)) + sg.sum(dw * dw)
    assert sg.check_grad(second, [X, W], {"X": rng.normal(size=(2, 4, 5, 5))}, rtol=1e-5) < 1e-4


def test_pooling_hessian_vector_products_are_defined():
    rng = np.random.default_rng(4)
    X = sg.var("X", shape=(1, 2, 4, 4))
    for pool in (sg.max_pool2d, sg.avg_pool2d):
        p = pool(X, 2)
        g = sg.grad(sg.sum(p ** 3), X)
        assert sg.check_grad(sg.sum(g * g), X, {"X": rng.normal(size=(1, 2, 4, 4))}) < 1e-5


# ====================================================================== index notation
def _index_value(node, feeds, dims=None):
    ix = IndexBuilder()
    idx = ix.indices(node.shape)
    rhs = ix.define(node, idx)
    want = sg.evaluate(node, feeds)
    values = dict(feeds, **(dims or {}))
    return rhs, numeric(rhs, idx, want.shape, values), want


@pytest.mark.parametrize("setting", CONV2D_SETTINGS[:4], ids=[str(s[2:6]) for s in CONV2D_SETTINGS[:4]])
def test_conv_index_notation_computes_evaluate(setting):
    xs, ws, stride, padding, dilation, groups, bias = setting
    rng = np.random.default_rng(5)
    feeds = {"X": rng.normal(size=xs), "W": rng.normal(size=ws), "b": rng.normal(size=ws[0])}
    X, W, b = sg.var("X", shape=("batch",) + xs[1:]), sg.var("W", shape=ws), sg.var("b", shape=(ws[0],))
    z = sg.conv2d(X, W, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    conv = z.inputs[0]
    attrs = {a: conv.attr(a) for a in ("stride", "padding", "dilation", "groups")}
    G = sg.var("G", shape=conv.shape)
    feeds_g = dict(feeds, G=rng.normal(size=(xs[0],) + conv.shape[1:]))
    nodes = [(z, feeds), (apply("conv_grad_input", G, W, size=xs[2:], **attrs), feeds_g),
             (apply("conv_grad_weight", G, X, kernel=ws[2:], **attrs), feeds_g)]
    for node, f in nodes:
        names = {n.name for n in sg.Graph(node).order if n.is_leaf}
        f = {k: v for k, v in f.items() if k in names}
        _, got, want = _index_value(node, f, {"batch": xs[0]})
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv_index_notation_reads_as_the_textbook():
    X, W, b = sg.var("X", shape=("batch", 3, 8, 8)), sg.var("W", shape=(4, 3, 3, 3)), sg.var("b", shape=(4,))
    z = sg.conv2d(X, W, b, stride=2)
    ix = IndexBuilder()
    n, o, i, j = (ix.dummy(d, h) for d, h in zip(z.shape, "noij"))
    text = str(ix.define(z, (n, o, i, j)))
    assert text == "b[o] + Sum(W[o, c, p, q]*X[n, c, 2*i + p, 2*j + q], (c, 0, 2), (p, 0, 2), (q, 0, 2))"
    G = sg.var("δ_Z", shape=z.shape)
    dw = apply("conv_grad_weight", G, X, kernel=(3, 3), stride=(2, 2), padding=(0, 0), dilation=(1, 1), groups=1)
    ix = IndexBuilder()
    o, c, p, q = (ix.dummy(d, h) for d, h in zip(dw.shape, "ocpq"))
    assert str(ix.define(dw, (o, c, p, q))) == \
        "Sum(X[n, c, 2*i + p, 2*j + q]*δ_Z[n, o, i, j], (n, 0, batch - 1), (i, 0, 2), (j, 0, 2))"


@pytest.mark.parametrize("kernel,stride,padding", POOL_SETTINGS)
def test_avg_pool_index_notation_computes_evaluate(kernel, stride, padding):
    rng = np.random.default_rng(6)
    X = sg.var("X", shape=(2, 3, 7, 6))
    p = sg.avg_pool2d(X, kernel, stride=stride, padding=padding)
    _, got, want = _index_value(p, {"X": rng.normal(size=(2, 3, 7, 6))})
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    G = sg.var("G", shape=p.shape)
    back = apply("avg_pool_grad", G, size=(7, 6), **{a: p.attr(a) for a in ("kernel", "stride", "padding")})
    _, got, want = _index_value(back, {"G": rng.normal(size=p.shape)})
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_max_pool_has_no_index_form_and_prints_opaque():
    X = sg.var("X", shape=(1, 1, 4, 4))
    p = sg.max_pool2d(X, 2)
    ix = IndexBuilder()
    rhs = ix.define(p, ix.indices(p.shape))
    assert ix.opaque and "max" in str(rhs)


def test_conv_expands_to_one_sympy_formula_per_entry():
    import sympy
    xs, (a, b) = sympy.symbols("x0:4"), sympy.symbols("a b")
    x = np.array(xs, dtype=object).reshape(1, 1, 4)
    w = np.array([a, b], dtype=object).reshape(1, 1, 2)
    z = sg.conv1d(sg.var("x", shape=(1, 1, 4)), sg.var("w", shape=(1, 1, 2)), stride=2)
    out = z.op.sym(x, w, **dict(z.attrs))
    assert [sympy.expand(e) for e in out.ravel()] == [a * xs[0] + b * xs[1], a * xs[2] + b * xs[3]]


# ====================================================================== bad arguments
@pytest.mark.parametrize("build,match", [
    (lambda X, W: sg.conv2d(X, sg.var("V", shape=(4, 2, 3, 3))),
     r"conv2d: input has 3 channels.*\(batch, 3, 8, 8\).*\(4, 2, 3, 3\)"),
    (lambda X, W: sg.conv2d(sg.var("x3", shape=(3, 8, 8)), W), r"conv2d: input \(N, C, H, W\).*\(3, 8, 8\)"),
    (lambda X, W: sg.conv1d(X, W), r"conv1d: input \(N, C, L\)"),
    (lambda X, W: sg.conv2d(X, W, stride=0), r"conv2d: stride must be ≥ 1, got 0"),
    (lambda X, W: sg.conv2d(X, W, stride=True), r"conv2d: stride must be an int or a tuple of 2 ints"),
    (lambda X, W: sg.conv2d(X, W, padding=(1, 2, 3)), r"conv2d: padding must be an int or a tuple of 2 ints"),
    (lambda X, W: sg.conv2d(X, W, dilation=1.5), r"conv2d: dilation must be"),
    (lambda X, W: sg.conv2d(X, W, padding=-1), r"conv2d: padding must be ≥ 0"),
    (lambda X, W: sg.conv2d(X, sg.var("V", shape=(4, 3, 9, 3))), r"conv2d: kernel of extent 9.*\(batch, 3, 8, 8\)"),
    (lambda X, W: sg.conv2d(X, W, dilation=5), r"conv2d: kernel of extent 11"),
    (lambda X, W: sg.conv2d(X, W, b=np.zeros(3)), r"conv2d: bias of shape \(3,\).*4 output channels"),
    (lambda X, W: sg.conv2d(X, sg.var("V", shape=(5, 1, 3, 3)), groups=3), r"conv2d: 5 output channels.*groups=3"),
    (lambda X, W: sg.conv2d(sg.var("S", shape=("batch", 3, "h", 8)), W), r"conv2d: the spatial dims.*fixed ints"),
    (lambda X, W: sg.conv2d(sg.var("S", shape=("batch", "c", 8, 8)), W), r"conv2d: the channel dim"),
    (lambda X, W: sg.max_pool2d(X, 2, padding=2), r"max_pool2d: padding \(2, 2\) must be at most half"),
    (lambda X, W: sg.avg_pool2d(X, 9), r"avg_pool2d: kernel of extent 9.*\(batch, 3, 8, 8\)"),
    (lambda X, W: sg.max_pool2d(sg.var("x3", shape=(3, 8, 8)), 2), r"max_pool2d: input \(N, C, H, W\)"),
    (lambda X, W: sg.avg_pool2d(X, (2, 0)), r"avg_pool2d: kernel_size must be ≥ 1"),
])
def test_bad_conv_and_pool_arguments_raise_shape_errors_naming_op_and_shapes(build, match):
    X = sg.var("X", shape=("batch", 3, 8, 8))
    W = sg.var("W", shape=(4, 3, 3, 3))
    with pytest.raises(sg.ShapeError, match=match):
        build(X, W)


def test_gradient_op_refuses_a_cotangent_of_the_wrong_shape():
    with pytest.raises(sg.ShapeError, match=r"conv_grad_input: cotangent of shape \(2, 4, 5, 5\)"):
        apply("conv_grad_input", sg.var("G", shape=(2, 4, 5, 5)), sg.var("W", shape=(4, 3, 3, 3)), size=(8, 8),
              stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)


def test_max_pool_expand_says_it_is_not_supported():
    from symgrad.ops.base import get_op
    with pytest.raises(sg.GraphError, match="max_pool_grad: the arg max"):
        get_op("max_pool_grad").sym(np.zeros((1, 1, 2, 2), dtype=object), np.zeros((1, 1, 2, 2), dtype=object),
                                    kernel=(2, 2), stride=(2, 2), padding=(0, 0))


# ====================================================================== PyTorch
@pytest.mark.parametrize("setting", CONV2D_SETTINGS, ids=[str(s[2:6]) for s in CONV2D_SETTINGS])
def test_conv2d_matches_pytorch(setting):
    torch = pytest.importorskip("torch")
    xs, ws, stride, padding, dilation, groups, bias = setting
    rng = np.random.default_rng(7)
    xv, wv, bv = rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[0])
    X, W, B = sg.var("X", shape=xs), sg.param("W", wv), sg.param("b", bv)
    z = sg.conv2d(X, W, B if bias else None, stride=stride, padding=padding, dilation=dilation, groups=groups)
    L = sg.sum(sg.sin(z))
    got = sg.evaluate([z] + sg.grad(L, [X, W, B] if bias else [X, W]), {"X": xv})
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xv, wv, bv))
    tz = torch.nn.functional.conv2d(tx, tw, tb if bias else None, stride=stride, padding=padding, dilation=dilation,
                                    groups=groups)
    torch.sin(tz).sum().backward()
    want = [tz.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()] + ([tb.grad.numpy()] if bias else [])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("kernel,stride,padding", POOL_SETTINGS)
def test_pooling_matches_pytorch(mode, kernel, stride, padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    xv = rng.normal(size=(2, 3, 7, 6))
    xv[0, 0, :2, :2] = 1.5  # a tied window
    X = sg.var("X", shape=(2, 3, 7, 6))
    fn = sg.max_pool2d if mode == "max" else sg.avg_pool2d
    p = fn(X, kernel, stride=stride, padding=padding)
    got = sg.evaluate([p, sg.grad(sg.sum(sg.sin(p)), X)], {"X": xv})
    tx = torch.tensor(xv, requires_grad=True)
    tfn = torch.nn.functional.max_pool2d if mode == "max" else torch.nn.functional.avg_pool2d
    tp = tfn(tx, kernel, stride=stride, padding=padding)
    torch.sin(tp).sum().backward()
    np.testing.assert_allclose(got[0], tp.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_conv1d_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    xv, wv = rng.normal(size=(2, 4, 11)), rng.normal(size=(6, 2, 3))
    X, W = sg.var("X", shape=xv.shape), sg.param("W", wv)
    z = sg.conv1d(X, W, stride=2, padding=1, dilation=2, groups=2)
    got = sg.evaluate([z, sg.grad(sg.sum(z * z), X)], {"X": xv})
    tx = torch.tensor(xv, requires_grad=True)
    tz = torch.nn.functional.conv1d(tx, torch.tensor(wv), stride=2, padding=1, dilation=2, groups=2)
    (tz * tz).sum().backward()
    np.testing.assert_allclose(got[0], tz.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], tx.grad.numpy(), rtol=1e-12, atol=1e-12)


# ====================================================================== benchmark and a CNN that learns
def test_conv_bench_quick_prints_the_table():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "conv_step.py"), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(ln.split()[:3] == ["dtype", "symgrad", "ms"] for ln in lines), res.stdout
    row = next(ln for ln in lines if ln.startswith("float64"))
    assert row.split()[-1] == "yes", row  # symgrad and NumPy agree on the first loss


def test_small_cnn_learns_the_digits():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import cnn_digits
    finally:
        sys.path.remove(os.path.join(ROOT, "bench"))
    result = cnn_digits.train(epochs=3, channels=(4, 8), hidden=32, seed=0, verbose=False)
    losses = result["epoch_losses"]
    assert losses[-1] < 0.6 * losses[0]
    assert result["test_accuracy"] > 0.6  # chance is 0.1
