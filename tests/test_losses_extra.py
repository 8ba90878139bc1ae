"""sg.losses.nll, kl_normal, huber and hinge: values against NumPy references written here,
finite-difference gradients over several shapes (a symbolic batch dim included), compiled ==
evaluated, printed formulas against SymPy expressions, silence at extreme inputs, and PyTorch."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import sympy

import symgrad as sg

BATCH = 5  # rows fed for the symbolic dim "batch"


# ------------------------------------------------------------ NumPy references
def ref_nll(logp, target):
    logp = np.asarray(logp, dtype=float)
    if np.asarray(target).dtype.kind == "i":
        picked = np.take_along_axis(logp, np.asarray(target)[..., None], axis=-1)[..., 0]
        return float(-np.mean(picked))
    return float(-np.mean(np.sum(np.asarray(target) * logp, axis=-1)))


def ref_kl(mu, logvar):
    # KL(N(μ, σ²) ‖ N(0, 1)) = log(1/σ) + (σ² + μ²)/2 − 1/2 per dim, written from the definition
    sigma2 = np.exp(logvar)
    per_dim = -0.5 * logvar + 0.5 * (sigma2 + mu ** 2) - 0.5
    per_sample = per_dim.sum(axis=-1) if np.ndim(per_dim) else per_dim
    return float(np.mean(per_sample))


def ref_huber(pred, target, delta=1.0):
    out = []
    for d in np.ravel(np.asarray(pred, float) - np.asarray(target, float)):
        out.append(0.5 * d * d if abs(d) < delta else delta * abs(d) - 0.5 * delta * delta)
    return float(np.mean(out))


def ref_hinge(scores, labels, margin=1.0):
    scores = np.asarray(scores, float)
    rows = scores.reshape(-1, scores.shape[-1])
    labels = np.ravel(labels)
    total = []
    for s, y in zip(rows, labels):
        c = len(s)
        total.append(sum(max(0.0, margin - s[y] + s[j]) for j in range(c) if j != y) / c)
    return float(np.mean(total))


def _feed_shape(shape):
    return tuple(BATCH if d == "batch" else d for d in shape)


def _labels(rng, shape, classes):
    return rng.integers(0, classes, size=_feed_shape(shape))


def _log_probs(rng, shape):
    z = rng.normal(size=_feed_shape(shape))
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


CLASS_SHAPES = [(4,), (3, 4), ("batch", 3), ("batch", 2, 3)]
PAIR_SHAPES = [(), (4,), (3, 2), ("batch", 3), ("batch", 2, 2)]
LATENT_SHAPES = [(), (4,), (3, 2), ("batch", 3), ("batch", 2, 2)]


# ------------------------------------------------------------ values
@pytest.mark.parametrize("shape", CLASS_SHAPES)
def test_nll_values_with_index_and_one_hot_targets(shape):
    rng = np.random.default_rng(0)
    x = sg.var("x", shape=shape)
    y = sg.var("y", shape=shape[:-1], dtype="int")
    t = sg.var("t", shape=shape)
    lp, labels = _log_probs(rng, shape), _labels(rng, shape[:-1], shape[-1])
    onehot = np.eye(shape[-1])[labels]
    assert float(sg.evaluate(sg.losses.nll(x, y), {x: lp, y: labels})) == pytest.approx(ref_nll(lp, labels), rel=1e-14)
    assert float(sg.evaluate(sg.losses.nll(x, t), {x: lp, t: onehot})) == pytest.approx(ref_nll(lp, labels), rel=1e-14)
    soft = rng.dirichlet(np.ones(shape[-1]), size=_feed_shape(shape)[:-1])
    assert float(sg.evaluate(sg.losses.nll(x, t), {x: lp, t: soft})) == pytest.approx(ref_nll(lp, soft), rel=1e-14)


def test_nll_of_log_softmax_is_cross_entropy():
    z = sg.var("z", shape=("batch", 4))
    y = sg.var("y", shape=("batch",), dtype="int")
    zv, yv = np.random.default_rng(1).normal(size=(6, 4)) * 3, np.array([0, 3, 2, 1, 1, 0])
    a, b = sg.evaluate([sg.losses.nll(sg.log_softmax(z), y), sg.losses.cross_entropy(z, y)], {z: zv, y: yv})
    assert float(a) == pytest.approx(float(b), rel=1e-15)


def test_nll_zero_weight_wins_over_minus_inf_log_probability():
    x, t = sg.var("x", shape=(1, 3)), sg.var("t", shape=(1, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = sg.evaluate(sg.losses.nll(x, t), {x: [[-np.inf, math.log(0.25), math.log(0.75)]], t: [[0, 1, 0]]})
    assert float(got) == pytest.approx(math.log(4), rel=1e-15)


@pytest.mark.parametrize("shape", LATENT_SHAPES)
def test_kl_normal_values(shape):
    rng = np.random.default_rng(2)
    mu, lv = sg.var("mu", shape=shape), sg.var("lv", shape=shape)
    mv, lvv = rng.normal(size=_feed_shape(shape)), rng.normal(size=_feed_shape(shape))
    got = float(sg.evaluate(sg.losses.kl_normal(mu, lv), {mu: mv, lv: lvv}))
    assert got == pytest.approx(ref_kl(mv, lvv), rel=1e-13)


def test_kl_normal_is_zero_at_the_standard_normal_and_hand_values():
    mu, lv = sg.var("mu", shape=("batch", 2)), sg.var("lv", shape=("batch", 2))
    assert float(sg.evaluate(sg.losses.kl_normal(mu, lv), {mu: np.zeros((3, 2)), lv: np.zeros((3, 2))})) == 0.0
    # one sample, μ = (1, 0), σ² = (e, 1): ½(1 + (e − 1 − 1)) = e/2 − ½·... written out
    got = float(sg.evaluate(sg.losses.kl_normal(mu, lv), {mu: [[1.0, 0.0]], lv: [[1.0, 0.0]]}))
    assert got == pytest.approx(0.5 * (1.0 ** 2) + 0.5 * (math.e - 1.0 - 1.0), rel=1e-15)


@pytest.mark.parametrize("shape", PAIR_SHAPES)
@pytest.mark.parametrize("delta", [1.0, 0.3, 2.5])
def test_huber_values(shape, delta):
    rng = np.random.default_rng(3)
    p, t = sg.var("p", shape=shape), sg.var("t", shape=shape)
    pv, tv = rng.normal(size=_feed_shape(shape)) * 2, rng.normal(size=_feed_shape(shape))
    got = float(sg.evaluate(sg.losses.huber(p, t, delta=delta), {p: pv, t: tv}))
    assert got == pytest.approx(ref_huber(pv, tv, delta), rel=1e-14)


def test_huber_at_the_joint_and_in_both_pieces():
    p = sg.var("p", shape=(4,))
    got = sg.evaluate(sg.losses.huber(p, sg.const(np.zeros(4)), delta=2.0), {p: [0.5, -2.0, 2.0, -5.0]})
    assert float(got) == pytest.approx((0.125 + 2.0 + 2.0 + 8.0) / 4, rel=1e-15)


@pytest.mark.parametrize("shape", CLASS_SHAPES)
@pytest.mark.parametrize("margin", [1.0, 0.5])
def test_hinge_values_with_index_and_one_hot_targets(shape, margin):
    rng = np.random.default_rng(4)
    s = sg.var("s", shape=shape)
    y = sg.var("y", shape=shape[:-1], dtype="int")
    t = sg.var("t", shape=shape)
    sv, labels = rng.normal(size=_feed_shape(shape)), _labels(rng, shape[:-1], shape[-1])
    want = ref_hinge(sv, labels, margin)
    assert float(sg.evaluate(sg.losses.hinge(s, y, margin=margin), {s: sv, y: labels})) == pytest.approx(want, rel=1e-14)
    got = sg.evaluate(sg.losses.hinge(s, t, margin=margin), {s: sv, t: np.eye(shape[-1])[labels]})
    assert float(got) == pytest.approx(want, rel=1e-14)


def test_hinge_hand_value_and_zero_when_every_margin_is_met():
    s = sg.var("s", shape=(2, 3))
    y = sg.var("y", shape=(2,), dtype="int")
    # row 0: true class 2 wins by ≥ 1 → 0; row 1: true class 0, terms max(0, 1 − 1 + 2) = 2 and max(0, 1 − 1 + 0.5)
    got = sg.evaluate(sg.losses.hinge(s, y), {s: [[0.0, 1.0, 2.5], [1.0, 2.0, 0.5]], y: [2, 0]})
    assert float(got) == pytest.approx((0.0 + (2.0 + 0.5) / 3) / 2, rel=1e-15)


# ------------------------------------------------------------ gradients
def _check(L, wrt, feeds):
    assert sg.check_grad(L, wrt, feeds, rtol=1e-6, atol=1e-8) < 1e-6


@pytest.mark.parametrize("shape", CLASS_SHAPES)
def test_nll_gradients(shape):
    rng = np.random.default_rng(5)
    x, t = sg.var("x", shape=shape), sg.var("t", shape=shape)
    y = sg.var("y", shape=shape[:-1], dtype="int")
    lp = _log_probs(rng, shape)
    _check(sg.losses.nll(x, y), [x], {x: lp, y: _labels(rng, shape[:-1], shape[-1])})
    _check(sg.losses.nll(x, t), [x, t], {x: lp, t: rng.uniform(size=lp.shape)})


@pytest.mark.parametrize("shape", LATENT_SHAPES)
def test_kl_normal_gradients(shape):
    rng = np.random.default_rng(6)
    mu, lv = sg.var("mu", shape=shape), sg.var("lv", shape=shape)
    _check(sg.losses.kl_normal(mu, lv), [mu, lv], {mu: rng.normal(size=_feed_shape(shape)),
                                                   lv: rng.normal(size=_feed_shape(shape))})


@pytest.mark.parametrize("shape", PAIR_SHAPES)
def test_huber_gradients(shape):
    rng = np.random.default_rng(7)
    p, t = sg.var("p", shape=shape), sg.var("t", shape=shape)
    d = rng.uniform(0.1, 0.9, size=_feed_shape(shape)) * rng.choice([-1, 1], size=_feed_shape(shape))
    d = np.where(rng.uniform(size=d.shape) < 0.5, d, 3 * d + np.sign(d) * 1.2)  # both pieces, away from |d| = δ
    tv = rng.normal(size=d.shape)
    _check(sg.losses.huber(p, t, delta=1.0), [p, t], {p: tv + d, t: tv})


@pytest.mark.parametrize("shape", CLASS_SHAPES)
def test_hinge_gradients(shape):
    rng = np.random.default_rng(8)
    s, t = sg.var("s", shape=shape), sg.var("t", shape=shape)
    y = sg.var("y", shape=shape[:-1], dtype="int")
    labels = _labels(rng, shape[:-1], shape[-1])
    sv = rng.normal(size=_feed_shape(shape)) * 0.7
    _check(sg.losses.hinge(s, y), [s], {s: sv, y: labels})
    _check(sg.losses.hinge(s, t), [s], {s: sv, t: np.eye(shape[-1])[labels]})


def test_huber_gradient_is_the_clipped_difference():
    p = sg.var("p", shape=(5,))
    dp = sg.grad(sg.losses.huber(p, sg.const(np.zeros(5)), delta=1.5), p)
    got = sg.evaluate(dp, {p: [-4.0, -1.0, 0.0, 0.7, 9.0]})
    np.testing.assert_allclose(got, np.clip([-4.0, -1.0, 0.0, 0.7, 9.0], -1.5, 1.5) / 5, rtol=1e-15)


# ------------------------------------------------------------ compiled == evaluated
def _losses_with_feeds(rng):
    s, t = sg.var("s", shape=("batch", 4)), sg.var("t", shape=("batch", 4))
    y = sg.var("y", shape=("batch",), dtype="int")
    sv, tv, yv = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    return [
        (sg.losses.nll(s, y), [s], {s: sv, y: yv}),
        (sg.losses.nll(s, t), [s, t], {s: sv, t: tv}),
        (sg.losses.kl_normal(s, t), [s, t], {s: sv, t: tv}),
        (sg.losses.huber(s, t, delta=0.7), [s, t], {s: sv, t: tv}),
        (sg.losses.hinge(s, y, margin=0.8), [s], {s: sv, y: yv}),
        (sg.losses.hinge(s, t), [s], {s: sv, t: np.eye(4)[yv]}),
    ]


@pytest.mark.parametrize("case", range(6))
def test_compiled_equals_evaluated(case):
    L, wrt, feeds = _losses_with_feeds(np.random.default_rng(9))[case]
    outs = [L, *sg.grad(L, wrt)]
    want = sg.evaluate(outs, feeds)
    got = sg.compile(outs, inputs=list(feeds))(*feeds.values())
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


def test_hinge_trains_a_linear_classifier_with_compile_step():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(60, 2))
    labels = np.where(X[:, 0] > 1.0, 2, (X[:, 0] + 2 * X[:, 1] > 0).astype(np.int64))
    x, y = sg.var("X", shape=("batch", 2)), sg.var("y", shape=("batch",), dtype="int")
    W, b = sg.param("W", np.zeros((2, 3))), sg.param("b", np.zeros(3))
    scores = x @ W + b
    step = sg.compile_step(sg.losses.hinge(scores, y), sg.optim.SGD(lr=0.5), inputs=[x, y])
    first = float(step(X, labels))
    for _ in range(60):
        last = float(step(X, labels))
    assert last < 0.5 * first
    accuracy = np.mean(np.argmax(X @ W.value + b.value, axis=1) == labels)
    assert accuracy > 0.8


# ------------------------------------------------------------ formulas
def _symbols(expr):
    return {s.name: s for s in expr.free_symbols}


def test_kl_normal_formula():
    mu_var, s_var = sg.var("mu"), sg.var("s")
    L = sg.losses.kl_normal(mu_var, s_var)
    f = sg.formula(L)
    mu, s = _symbols(f)["mu"], _symbols(f)["s"]
    assert sympy.simplify(f - (-(1 + s - mu ** 2 - sympy.exp(s)) / 2)) == 0
    assert sg.latex(L) == r"\frac{\mu^{2} - s + e^{s} - 1}{2}"
    # ∂KL/∂μ = μ and ∂KL/∂s = (e^s − 1)/2, the reparameterised VAE's regulariser gradients
    dmu, ds = (sg.formula(g) for g in sg.grad(L, [mu_var, s_var]))
    assert sympy.simplify(dmu - mu) == 0 and sympy.simplify(ds - (sympy.exp(s) - 1) / 2) == 0


def test_kl_normal_expanded_formula_sums_latent_dims_and_averages_the_batch():
    mu, lv = sg.var("M", shape=(2, 3)), sg.var("S", shape=(2, 3))
    f = sg.formula(sg.losses.kl_normal(mu, lv), expand=True)
    sym = _symbols(f)
    want = sum(-(1 + sym[f"S[{i},{j}]"] - sym[f"M[{i},{j}]"] ** 2 - sympy.exp(sym[f"S[{i},{j}]"])) / 2
               for i in range(2) for j in range(3)) / 2
    assert sympy.simplify(f - want) == 0


@pytest.mark.parametrize("delta", [1.0, 2.0, 0.5])
def test_huber_formula_is_the_textbook_piecewise(delta):
    p, t = sg.var("p"), sg.var("t")
    L = sg.losses.huber(p, t, delta=delta)
    f = sg.formula(L)
    d = _symbols(f)["p"] - _symbols(f)["t"]
    k = sympy.nsimplify(delta)
    want = sympy.Piecewise((d ** 2 / 2, sympy.Abs(d) < k), (k * (sympy.Abs(d) - k / 2), True))
    assert sympy.simplify(f - want) == 0
    assert isinstance(f, sympy.Piecewise)
    dp = sg.formula(sg.grad(L, p))
    want_dp = sympy.Piecewise((d, sympy.Abs(d) < k), (k * sympy.sign(d), True))
    assert sympy.simplify(sympy.piecewise_fold(dp - want_dp)) == 0  # folded first: plain simplify takes seconds


def test_huber_prints_with_its_condition():
    L = sg.losses.huber(sg.var("p"), sg.var("t"))
    assert "for │p - t│ < 1" in sg.pretty(L)
    assert sg.latex(L) == (r"\begin{cases} \frac{\left(p - t\right)^{2}}{2} & \text{for}\: \left|{p - t}\right| < 1 "
                           r"\\\left|{p - t}\right| - \frac{1}{2} & \text{otherwise} \end{cases}")


def test_nll_and_hinge_expanded_formulas():
    V, W = sg.var("V", shape=(2, 3)), sg.var("W", shape=(2, 3))
    f = sg.formula(sg.losses.nll(V, W), expand=True)
    sym = _symbols(f)
    v = [[sym[f"V[{i},{j}]"] for j in range(3)] for i in range(2)]
    w = [[sym[f"W[{i},{j}]"] for j in range(3)] for i in range(2)]
    assert sympy.simplify(f - (-sum(w[i][j] * v[i][j] for i in range(2) for j in range(3)) / 2)) == 0
    h = sg.formula(sg.losses.hinge(V, W), expand=True)
    relu = sg.sympy_relu
    want = sum((1 - w[i][j]) * relu(1 - sum(w[i][k] * v[i][k] for k in range(3)) + v[i][j])
               for i in range(2) for j in range(3)) / (3 * 2)
    assert sympy.simplify(h - want) == 0
    # at a one-hot row the formula is PyTorch's Σ_{j≠y} max(0, 1 − s_y + s_j)/C
    at = {w[0][0]: 0, w[0][1]: 0, w[0][2]: 1, w[1][0]: 1, w[1][1]: 0, w[1][2]: 0}
    picked = h.subs(at)
    want = (relu(1 - v[0][2] + v[0][0]) + relu(1 - v[0][2] + v[0][1])
            + relu(1 - v[1][0] + v[1][1]) + relu(1 - v[1][0] + v[1][2])) / 6
    assert sympy.simplify(picked - want) == 0


def test_losses_formulas_in_matrix_notation_evaluate_to_the_loss():
    s, t = sg.var("S", shape=("batch", 3)), sg.var("T", shape=("batch", 3))
    y = sg.var("y", shape=("batch",), dtype="int")
    assert sg.pretty(sg.losses.nll(s, y)).splitlines()[0].strip() == "-Σ((S ⊙ one-hot(y))⋅𝟙)"
    assert "ReLU" in sg.pretty(sg.losses.hinge(s, y))
    assert "where" in sg.pretty(sg.losses.huber(s, t)) and "exp(T)" in sg.pretty(sg.losses.kl_normal(s, t))


def test_losses_draw():
    s, t = sg.var("S", shape=("batch", 3)), sg.var("T", shape=("batch", 3))
    y = sg.var("y", shape=("batch",), dtype="int")
    assert "ReLU" in sg.draw(sg.losses.hinge(s, y)).source
    assert "where" in sg.draw(sg.losses.huber(s, t)).source
    assert "exp" in sg.draw(sg.losses.kl_normal(s, t), backward=True).source


# ------------------------------------------------------------ extreme inputs
def _silently(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            return fn()


EXTREME = np.array([[1e4, -1e4, 0.0, 3.0], [-1e4, -1e4, 1e4, 1e4], [0.5, 1e4, -2.0, -1e4]])


def test_extreme_inputs_are_finite_silent_and_exact():
    s, t = sg.var("s", shape=("batch", 4)), sg.var("t", shape=("batch", 4))
    y = sg.var("y", shape=("batch",), dtype="int")
    labels = np.array([1, 2, 3])
    other = EXTREME[::-1].copy()
    cases = [
        (sg.losses.nll(s, y), {s: EXTREME, y: labels}, ref_nll(EXTREME, labels)),
        (sg.losses.hinge(s, y), {s: EXTREME, y: labels}, ref_hinge(EXTREME, labels)),
        (sg.losses.huber(s, t), {s: EXTREME, t: other}, ref_huber(EXTREME, other)),
        (sg.losses.huber(s, t, delta=1e5), {s: EXTREME, t: other}, ref_huber(EXTREME, other, 1e5)),
        (sg.losses.kl_normal(s, t), {s: EXTREME, t: -np.abs(EXTREME)}, ref_kl(EXTREME, -np.abs(EXTREME))),
        (sg.losses.kl_normal(s, t), {s: EXTREME, t: np.clip(EXTREME, -1e4, 700.0)},
         ref_kl(EXTREME, np.clip(EXTREME, -1e4, 700.0))),
    ]
    for L, feeds, want in cases:
        outs = [L, sg.grad(L, s)]
        f = sg.compile(outs, inputs=list(feeds))
        got, g = _silently(lambda: sg.evaluate(outs, feeds))
        got_c, g_c = _silently(lambda: f(*feeds.values()))
        assert np.isfinite(got) and np.all(np.isfinite(g)) and np.all(np.isfinite(g_c))
        assert float(got) == pytest.approx(want, rel=1e-13) and float(got_c) == pytest.approx(want, rel=1e-13)
        np.testing.assert_allclose(g_c, g, rtol=1e-13)


# ------------------------------------------------------------ errors
def test_bad_arguments_raise_typed_errors():
    x3, x4 = sg.var("x3", shape=(2, 3)), sg.var("x4", shape=(2, 4))
    yi = sg.var("yi", shape=(2,), dtype="int")
    with pytest.raises(sg.ShapeError, match="huber.*same shape"):
        sg.losses.huber(x3, x4)
    for bad in (0.0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(sg.GraphError, match="huber: delta"):
            sg.losses.huber(x3, x3, delta=bad)
    with pytest.raises(sg.GraphError, match="hinge: margin"):
        sg.losses.hinge(x3, yi, margin=float("nan"))
    with pytest.raises(sg.ShapeError, match="kl_normal: mu"):
        sg.losses.kl_normal(x3, x4)
    with pytest.raises(sg.ShapeError, match="nll: log_probs must have a class axis"):
        sg.losses.nll(sg.var("a"), sg.var("b", dtype="int"))
    with pytest.raises(sg.ShapeError, match="hinge: index targets"):
        sg.losses.hinge(x3, sg.var("y3", shape=(3,), dtype="int"))
    with pytest.raises(sg.ShapeError, match="nll: targets"):
        sg.losses.nll(x3, x4)
    with pytest.raises(sg.ShapeError, match="hinge: the class axis"):
        sg.losses.hinge(sg.var("z", shape=(2, "c")), yi)


# ------------------------------------------------------------ PyTorch
def _torch_grads(fn, *arrays):
    torch = pytest.importorskip("torch")
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward()
    return float(out.detach()), [t.grad.numpy() for t in ts]


def _ours(L, wrt, feeds):
    got = sg.evaluate([L, *sg.grad(L, wrt)], feeds)
    return float(got[0]), got[1:]


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_nll_matches_pytorch(scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    lp, labels = _log_probs(rng, (6, 5)) * scale, rng.integers(0, 5, size=6)
    x, y = sg.var("x", shape=("batch", 5)), sg.var("y", shape=("batch",), dtype="int")
    want, (gw,) = _torch_grads(lambda a: torch.nn.functional.nll_loss(a, torch.tensor(labels)), lp)
    got, (g,) = _ours(sg.losses.nll(x, y), [x], {x: lp, y: labels})
    assert got == pytest.approx(want, rel=1e-14)
    np.testing.assert_allclose(g, gw, rtol=1e-14, atol=0)


def test_kl_normal_matches_pytorch_distributions():
    torch = pytest.importorskip("torch")
    from torch.distributions import Normal, kl_divergence
    rng = np.random.default_rng(12)
    mv, lvv = rng.normal(size=(7, 3)) * 2, rng.normal(size=(7, 3))
    mu, lv = sg.var("mu", shape=("batch", 3)), sg.var("lv", shape=("batch", 3))

    def torch_kl(m, logvar):
        q = Normal(m, torch.exp(0.5 * logvar))
        return kl_divergence(q, Normal(torch.zeros_like(m), torch.ones_like(m))).sum(-1).mean()

    want, gw = _torch_grads(torch_kl, mv, lvv)
    got, g = _ours(sg.losses.kl_normal(mu, lv), [mu, lv], {mu: mv, lv: lvv})
    assert got == pytest.approx(want, rel=1e-13)
    for a, b in zip(g, gw):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("delta", [1.0, 0.4, 3.0])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_huber_matches_pytorch(delta, scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    pv, tv = rng.normal(size=(5, 3)) * 2 * scale, rng.normal(size=(5, 3))
    p, t = sg.var("p", shape=("batch", 3)), sg.var("t", shape=("batch", 3))
    want, gw = _torch_grads(lambda a, b: torch.nn.functional.huber_loss(a, b, delta=delta), pv, tv)
    got, g = _ours(sg.losses.huber(p, t, delta=delta), [p, t], {p: pv, t: tv})
    assert got == pytest.approx(want, rel=1e-14)
    for a, b in zip(g, gw):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("margin", [1.0, 0.3])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_hinge_matches_pytorch_multi_margin_loss(margin, scale):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    sv, labels = rng.normal(size=(8, 4)) * scale, rng.integers(0, 4, size=8)
    s, y = sg.var("s", shape=("batch", 4)), sg.var("y", shape=("batch",), dtype="int")
    want, (gw,) = _torch_grads(
        lambda a: torch.nn.functional.multi_margin_loss(a, torch.tensor(labels), p=1, margin=margin), sv)
    got, (g,) = _ours(sg.losses.hinge(s, y, margin=margin), [s], {s: sv, y: labels})
    assert got == pytest.approx(want, rel=1e-14)
    np.testing.assert_allclose(g, gw, rtol=1e-14, atol=1e-16)
    # one sample of shape (C,) with a scalar target, as PyTorch's unbatched input
    s1, y1 = sg.var("s1", shape=(4,)), sg.var("y1", dtype="int")
    want1, (gw1,) = _torch_grads(
        lambda a: torch.nn.functional.multi_margin_loss(a, torch.tensor(labels[0]), p=1, margin=margin), sv[0])
    got1, (g1,) = _ours(sg.losses.hinge(s1, y1, margin=margin), [s1], {s1: sv[0], y1: labels[0]})
    assert got1 == pytest.approx(want1, rel=1e-14)
    np.testing.assert_allclose(g1, gw1, rtol=1e-14, atol=1e-16)
