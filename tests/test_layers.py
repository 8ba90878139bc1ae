"""nn layers (Sequential, ModuleList, activation modules, Flatten, Conv2d, MaxPool2d, AvgPool2d, LayerNorm,
Embedding): values and every parameter gradient (sg.grad) against NumPy references written here with
plain loops, finite-difference checks, names, containers' renaming, saving and loading, typed errors, and a
smoke-sized CNN that learns."""
import math
import os

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import GraphError, ShapeError, StateError
from symgrad.nn.containers import rename

nn = sg.nn
RNG = np.random.default_rng(0)


def _value_and_grads(out, wrt, feeds, R):
    """out's value and the gradients of L = Σ out ⊙ R (so the cotangent of out is R)."""
    L = sg.sum(out * sg.const(R))
    return sg.evaluate([out] + sg.grad(L, wrt), feeds)


# ------------------------------------------------------------------ NumPy references (loops)
def np_conv2d(X, W, b, stride, padding, dilation=(1, 1)):
    n, c, h, w = X.shape
    o, _, kh, kw = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    Xp[:, :, ph:ph + h, pw:pw + w] = X
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    Z = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = Xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            Z[:, :, i, j] = np.einsum("ncpq,ocpq->no", patch, W)
    return Z + (b[None, :, None, None] if b is not None else 0)


def np_conv2d_grads(X, W, G, stride, padding, dilation=(1, 1)):
    """dX, dW, db of Σ conv2d(X, W, b) ⊙ G, by looping over output positions."""
    n, c, h, w = X.shape
    o, _, kh, kw = W.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    Xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    Xp[:, :, ph:ph + h, pw:pw + w] = X
    dXp, dW = np.zeros_like(Xp), np.zeros_like(W)
    for i in range(G.shape[2]):
        for j in range(G.shape[3]):
            rows = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
            cols = slice(j * sw, j * sw + dw * (kw - 1) + 1, dw)
            dW += np.einsum("no,ncpq->ocpq", G[:, :, i, j], Xp[:, :, rows, cols])
            dXp[:, :, rows, cols] += np.einsum("no,ocpq->ncpq", G[:, :, i, j], W)
    return dXp[:, :, ph:ph + h, pw:pw + w], dW, G.sum(axis=(0, 2, 3))


def np_pool(X, k, s, p, kind):
    """Pooled values and the gradient for cotangent G (returned as a function of G)."""
    n, c, h, w = X.shape
    fill = -np.inf if kind == "max" else 0.0
    Xp = np.full((n, c, h + 2 * p[0], w + 2 * p[1]), fill)
    Xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = X
    ho, wo = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    Y = np.zeros((n, c, ho, wo))
    where = {}
    for a in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    win = Xp[a, ch, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
                    if kind == "max":
                        r, q = np.unravel_index(np.argmax(win), win.shape)  # the first maximum
                        Y[a, ch, i, j] = win[r, q]
                        where[a, ch, i, j] = (i * s[0] + r, j * s[1] + q)
                    else:
                        Y[a, ch, i, j] = win.sum() / (k[0] * k[1])

    def grad(G):
        dXp = np.zeros_like(Xp)
        for (a, ch, i, j), g in np.ndenumerate(G):
            if kind == "max":
                dXp[(a, ch) + where[a, ch, i, j]] += g
            else:
                dXp[a, ch, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]] += g / (k[0] * k[1])
        return dXp[:, :, p[0]:p[0] + h, p[1]:p[1] + w]
    return Y, grad


def np_layer_norm(X, gamma, beta, k, eps, G):
    """y and dX, dgamma, dbeta for cotangent G, normalizing over the last k axes (biased variance)."""
    axes = tuple(range(X.ndim - k, X.ndim))
    m = math.prod(X.shape[X.ndim - k:])
    mu = X.mean(axis=axes, keepdims=True)
    var = ((X - mu) ** 2).sum(axis=axes, keepdims=True) / m
    xhat = (X - mu) / np.sqrt(var + eps)
    lead = tuple(range(X.ndim - k))
    g = G * gamma
    dX = (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True)) \
        / np.sqrt(var + eps)
    return xhat * gamma + beta, dX, (G * xhat).sum(axis=lead), G.sum(axis=lead)


# ------------------------------------------------------------------ Linear, activations, Flatten
def test_linear_value_and_parameter_gradients_match_numpy():
    fc = nn.Linear(3, 2, init="normal", seed=1, name="fc")
    fc.b.value = np.array([0.5, -1.0])
    X, R = RNG.normal(size=(4, 3)), RNG.normal(size=(4, 2))
    z, dW, db = _value_and_grads(fc(sg.var("X", shape=(4, 3))), [fc.W, fc.b], {"X": X}, R)
    np.testing.assert_allclose(z, X @ fc.W.value + fc.b.value, rtol=1e-12)
    np.testing.assert_allclose(dW, X.T @ R, rtol=1e-12)
    np.testing.assert_allclose(db, R.sum(axis=0), rtol=1e-12)


ERF = np.vectorize(math.erf)
ACTIVATION_REFS = [
    (nn.ReLU, lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    (nn.Sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2),
    (nn.Tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    (nn.GELU, lambda x: x * 0.5 * (1 + ERF(x / np.sqrt(2))),
     lambda x: 0.5 * (1 + ERF(x / np.sqrt(2))) + x * np.exp(-x ** 2 / 2) / np.sqrt(2 * np.pi)),
]


@pytest.mark.parametrize("cls, f, df", ACTIVATION_REFS, ids=lambda v: getattr(v, "__name__", ""))
def test_activation_modules_match_numpy_with_gradients(cls, f, df):
    x = RNG.normal(size=(3, 4))
    p = sg.param("x", x)
    R = RNG.normal(size=(3, 4))
    layer = cls()
    out = layer(p)
    assert out.name == f"{layer.name}.a"
    y, dx = _value_and_grads(out, [p], {}, R)
    np.testing.assert_allclose(y, f(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, R * df(x), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_module_matches_numpy_along_its_axis(axis):
    x, R = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 4))
    p = sg.param("x", x)
    y, dx = _value_and_grads(nn.Softmax(axis=axis)(p), [p], {}, R)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    s = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(y, s, rtol=1e-12)
    np.testing.assert_allclose(dx, s * (R - (R * s).sum(axis=axis, keepdims=True)), rtol=1e-10, atol=1e-14)


def test_flatten_module_merges_axes_like_reshape_and_passes_gradients_back():
    x, R = RNG.normal(size=(2, 3, 4, 5)), RNG.normal(size=(2, 60))
    p = sg.param("x", x)
    out = nn.Flatten(name="fl")(p)
    assert out.name == "fl.out" and out.shape == (2, 60)
    y, dx = _value_and_grads(out, [p], {}, R)
    np.testing.assert_array_equal(y, x.reshape(2, 60))
    np.testing.assert_array_equal(dx, R.reshape(x.shape))
    assert nn.Flatten(1, 2)(sg.var("X", shape=("batch", 3, 4, 5))).shape == ("batch", 12, 5)
    one = sg.var("v", shape=("batch", 7))
    assert nn.Flatten()(one) is one  # nothing to merge: the input itself


# ------------------------------------------------------------------ Conv2d and pools
CONV_CASES = [  # in, out, kernel, stride, padding, dilation, groups
    (2, 3, 3, 1, 0, 1, 1),
    (2, 4, (3, 2), (2, 1), (1, 0), 1, 1),
    (1, 2, 2, 2, 1, 1, 1),
    (2, 2, 2, 1, 1, 2, 1),
    (4, 2, 3, 1, 1, 1, 2),
]


@pytest.mark.parametrize("cin, cout, k, s, p, d, groups", CONV_CASES)
def test_conv2d_value_and_every_gradient_match_numpy_loops(cin, cout, k, s, p, d, groups):
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=groups, seed=3, name="c")
    conv.b.value = RNG.normal(size=cout)
    X = RNG.normal(size=(2, cin, 6, 5))
    Xn = sg.param("Xin", X)
    out = conv(Xn)
    R = RNG.normal(size=out.shape)
    z, dX, dW, db = _value_and_grads(out, [Xn, conv.W, conv.b], {}, R)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    # groups: each group of output channels sees its own input channels
    W, cg, og = conv.W.value, cin // groups, cout // groups
    want_z = np.concatenate([np_conv2d(X[:, g * cg:(g + 1) * cg], W[g * og:(g + 1) * og], None, pair(s), pair(p),
                                       pair(d)) for g in range(groups)], axis=1) + conv.b.value[None, :, None, None]
    np.testing.assert_allclose(z, want_z, rtol=1e-10, atol=1e-12)
    for g in range(groups):
        gx, gw, gb = np_conv2d_grads(X[:, g * cg:(g + 1) * cg], W[g * og:(g + 1) * og], R[:, g * og:(g + 1) * og],
                                     pair(s), pair(p), pair(d))
        np.testing.assert_allclose(dX[:, g * cg:(g + 1) * cg], gx, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dW[g * og:(g + 1) * og], gw, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(db[g * og:(g + 1) * og], gb, rtol=1e-10, atol=1e-12)


def test_conv2d_names_layout_and_default_he_init_with_pytorch_fans():
    conv = nn.Conv2d(8, 16, 3, seed=0, name="conv1")
    assert [(n, p.shape) for n, p in conv.named_parameters()] == [("conv1.W", (16, 8, 3, 3)), ("conv1.b", (16,))]
    assert conv.init == "he" and np.array_equal(conv.b.value, np.zeros(16))
    # he: std √(2 / fan_in) with fan_in = in·kh·kw = 72, whatever the stored layout
    assert conv.W.value.std() == pytest.approx(math.sqrt(2 / 72), rel=0.08)
    # drawn as (kh, kw, in, out), stored transposed: same numbers as the initializer gives
    drawn = sg.init.initialize("he", (3, 3, 8, 16), seed=0)
    np.testing.assert_array_equal(conv.W.value, drawn.transpose(3, 2, 0, 1))
    assert nn.Conv2d(2, 2, 3, bias=False).b is None
    z = conv(sg.var("X", shape=("batch", 8, 10, 10)))
    assert z.name == "conv1.z" and z.shape == ("batch", 16, 8, 8)


@pytest.mark.parametrize("cls, kind", [(nn.MaxPool2d, "max"), (nn.AvgPool2d, "avg")])
@pytest.mark.parametrize("k, s, p", [(2, None, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1))])
def test_pools_value_and_input_gradient_match_numpy_loops(cls, kind, k, s, p):
    X = RNG.normal(size=(2, 3, 7, 6))
    Xn = sg.param("Xin", X)
    pool = cls(k, stride=s, padding=p)
    out = pool(Xn)
    assert out.name == f"{pool.name}.out"
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    want, grad_of = np_pool(X, pair(k), pair(k if s is None else s), pair(p), kind)
    R = RNG.normal(size=want.shape)
    y, dX = _value_and_grads(out, [Xn], {}, R)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    np.testing.assert_allclose(dX, grad_of(R), rtol=1e-12, atol=1e-14)


def test_max_pool_gradient_goes_to_the_first_of_tied_maxima():
    X = np.ones((1, 1, 2, 2))
    Xn = sg.param("Xin", X)
    dX = sg.evaluate(sg.grad(sg.sum(nn.MaxPool2d(2)(Xn)), Xn))
    np.testing.assert_array_equal(dX, [[[[1.0, 0.0], [0.0, 0.0]]]])


# ------------------------------------------------------------------ LayerNorm
@pytest.mark.parametrize("shape, normalized", [((4, 5), 5), ((2, 3, 4), (3, 4)), ((2, 3, 6), [6])])
def test_layer_norm_value_and_every_gradient_match_numpy(shape, normalized):
    k = 1 if isinstance(normalized, int) else len(normalized)
    ln = nn.LayerNorm(normalized, eps=1e-3, name="ln")
    ln.gamma.value = RNG.normal(size=ln.gamma.shape)
    ln.beta.value = RNG.normal(size=ln.beta.shape)
    X, R = RNG.normal(size=shape) * 3 + 1, RNG.normal(size=shape)
    Xn = sg.param("Xin", X)
    out = ln(Xn)
    assert out.name == "ln.out"
    y, dX, dg, db = _value_and_grads(out, [Xn, ln.gamma, ln.beta], {}, R)
    want_y, want_dX, want_dg, want_db = np_layer_norm(X, ln.gamma.value, ln.beta.value, k, 1e-3, R)
    np.testing.assert_allclose(y, want_y, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dX, want_dX, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(dg, want_dg, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, want_db, rtol=1e-10, atol=1e-12)


def test_layer_norm_defaults_names_and_without_affine():
    ln = nn.LayerNorm(4)
    assert [(n, p.shape) for n, p in ln.named_parameters()] == [("layernorm.gamma", (4,)), ("layernorm.beta", (4,))]
    assert np.array_equal(ln.gamma.value, np.ones(4)) and np.array_equal(ln.beta.value, np.zeros(4))
    assert ln.eps == 1e-5
    bare = nn.LayerNorm(4, elementwise_affine=False, name="bare")
    assert bare.named_parameters() == []
    X = np.array([[1.0, 2.0, 3.0, 6.0]])
    out = bare(sg.var("X", shape=("batch", 4)))
    assert out.name == "bare.out"
    np.testing.assert_allclose(sg.evaluate(out, {"X": X}), (X - 3.0) / np.sqrt(3.5 + 1e-5), rtol=1e-12)
    nobias = nn.LayerNorm(4, bias=False, name="nb")
    assert [n for n, _ in nobias.named_parameters()] == ["nb.gamma"]


def test_layer_norm_eps_prints_as_epsilon():
    ln = nn.LayerNorm(3, name="ln")
    text = sg.pretty(ln(sg.var("X", shape=("batch", 3))))
    assert "ε" in text and "1e-5" not in text.replace(" ", "")


# ------------------------------------------------------------------ Embedding
def test_embedding_value_and_gradient_only_on_rows_used_with_repeats_added():
    emb = nn.Embedding(6, 3, seed=0, name="emb")
    ids = np.array([[0, 2, 2], [5, 0, 2]])
    R = RNG.normal(size=(2, 3, 3))
    idx = sg.var("ids", shape=(2, 3), dtype="int")
    out = emb(idx)
    assert out.name == "emb.out" and out.shape == (2, 3, 3)
    y, dE = _value_and_grads(out, [emb.E], {"ids": ids}, R)
    np.testing.assert_array_equal(y, emb.E.value[ids])
    want = np.zeros((6, 3))
    np.add.at(want, ids, R)
    np.testing.assert_allclose(dE, want, rtol=1e-12)
    assert not dE[[1, 3, 4]].any()  # rows never used get no gradient
    np.testing.assert_allclose(dE[2], R[0, 1] + R[0, 2] + R[1, 2], rtol=1e-12)


def test_embedding_indices_of_any_shape_and_default_normal_init():
    emb = nn.Embedding(1000, 20, seed=1)
    assert emb.E.value.std() == pytest.approx(1.0, rel=0.03)  # PyTorch's N(0, 1)
    for shape in [(), (4,), (2, 3), (2, 2, 2)]:
        ids = RNG.integers(0, 1000, size=shape)
        out = emb(sg.var("i", shape=shape, dtype="int"))
        assert out.shape == shape + (20,)
        np.testing.assert_array_equal(sg.evaluate(out, {"i": ids}), emb.E.value[ids])
    np.testing.assert_array_equal(sg.evaluate(emb([3, 3])), emb.E.value[[3, 3]])
    with pytest.raises(GraphError, match="Embedding 'embedding': indices must be an int var"):
        emb(sg.var("x", shape=(3,)))
    with pytest.raises(GraphError, match="indices must be ints"):
        emb(np.array([0.5]))


# ------------------------------------------------------------------ finite differences
def test_every_layer_gradient_passes_finite_differences():
    X = sg.var("X", shape=(2, 2, 5, 5))
    model = nn.Sequential(nn.Conv2d(2, 3, 3, stride=1, padding=1, seed=0), nn.Tanh(), nn.AvgPool2d(2, stride=1),
                          nn.Conv2d(3, 2, 2, stride=2, seed=1), nn.GELU(), nn.MaxPool2d(2, padding=1),
                          nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 3, seed=2), nn.Sigmoid(), name="net")
    model[7].gamma.value = RNG.normal(size=8)
    L = sg.sum(model(X) * sg.const(RNG.normal(size=(2, 3))))
    sg.check_grad(L, model.parameters(), {"X": RNG.normal(size=(2, 2, 5, 5))}, rtol=1e-5, atol=1e-8)


def test_embedding_and_softmax_gradients_pass_finite_differences():
    emb = nn.Embedding(5, 3, seed=0)
    ids = sg.var("ids", shape=(4,), dtype="int")
    L = sg.sum(nn.Softmax(axis=0)(emb(ids)) * sg.const(RNG.normal(size=(4, 3))))
    sg.check_grad(L, [emb.E], {"ids": np.array([1, 1, 4, 0])})


# ------------------------------------------------------------------ containers
def test_sequential_names_children_by_index_and_keeps_their_identity():
    fc1, act, fc2 = nn.Linear(4, 3, name="a", seed=0), nn.ReLU(), nn.Linear(3, 2, name="b", seed=1)
    W = fc1.W
    seq = nn.Sequential(fc1, act, fc2)
    assert [n for n, _ in seq.named_parameters()] == ["seq.0.W", "seq.0.b", "seq.2.W", "seq.2.b"]
    assert seq[0] is fc1 and fc1.W is W and W.name == "seq.0.W" and act.name == "seq.1"
    assert len(seq) == 3 and list(seq) == [fc1, act, fc2] and seq[-1] is fc2
    X = RNG.normal(size=(5, 4))
    out = seq(sg.var("X", shape=("batch", 4)))
    assert out.name == "seq.2.z"
    np.testing.assert_allclose(sg.evaluate(out, {"X": X}),
                               np.maximum(X @ fc1.W.value + fc1.b.value, 0) @ fc2.W.value + fc2.b.value, rtol=1e-12)
    named = {n.name for n in sg.Graph(out).order if n.name}
    assert {"seq.0.z", "seq.1.a", "seq.2.z"} <= named


def test_nested_containers_and_mlp_children_get_prefixed_names():
    inner = nn.Sequential(nn.Linear(2, 2, seed=0), nn.Tanh(), name="block")
    mlp = nn.MLP([2, 3, 2], seed=0)
    outer = nn.Sequential(inner, mlp, name="net")
    assert [n for n, _ in outer.named_parameters()] == [
        "net.0.0.W", "net.0.0.b", "net.1.0.W", "net.1.0.b", "net.1.1.W", "net.1.1.b"]
    assert inner[1].name == "net.0.1" and mlp.layers[1].name == "net.1.1"
    assert outer(sg.var("X", shape=("batch", 2))).name == "net.1.1.z"
    fc = nn.Linear(2, 2, name="fc")
    rename(fc, "fc")  # same name: nothing changes
    assert fc.W.name == "fc.W"


def test_sequential_shares_a_repeated_module_once_and_appends():
    fc = nn.Linear(2, 2, seed=0)
    seq = nn.Sequential(fc, nn.Tanh(), fc, name="tied")
    assert [n for n, _ in seq.named_parameters()] == ["tied.0.W", "tied.0.b"]
    X = RNG.normal(size=(3, 2))
    W, b = fc.W.value, fc.b.value
    np.testing.assert_allclose(sg.evaluate(seq(sg.var("X", shape=("batch", 2))), {"X": X}),
                               np.tanh(X @ W + b) @ W + b, rtol=1e-12)
    assert seq.config() is None  # a shared module cannot be rebuilt from configs
    seq.append(nn.ReLU())
    assert seq[3].name == "tied.3" and len(seq) == 4


def test_module_list_registers_and_names_but_is_not_a_layer():
    blocks = nn.ModuleList([nn.Linear(2, 2, seed=i) for i in range(2)], name="blocks")
    blocks.append(nn.LayerNorm(2))
    assert [n for n, _ in blocks.named_parameters()] == [
        "blocks.0.W", "blocks.0.b", "blocks.1.W", "blocks.1.b", "blocks.2.gamma", "blocks.2.beta"]
    with pytest.raises(GraphError, match="ModuleList 'blocks' is a list, not a layer"):
        blocks(sg.var("x", shape=(2,)))
    with pytest.raises(GraphError, match="give a list of modules"):
        nn.ModuleList(nn.ReLU())


def test_container_errors_are_typed_and_name_the_problem():
    with pytest.raises(GraphError, match=r"Sequential 'seq': item 1 is function, not a Module"):
        nn.Sequential(nn.ReLU(), sg.relu)
    seq = nn.Sequential(nn.ReLU())
    with pytest.raises(GraphError, match="index 3 out of range for 1 modules"):
        seq[3]
    with pytest.raises(GraphError, match="index with an int"):
        seq["0"]
    with pytest.raises(GraphError, match="cannot hold itself"):
        seq.append(seq)


# ------------------------------------------------------------------ typed errors of the layers
@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.Conv2d(0, 2, 3), ShapeError, "Conv2d 'conv': in_channels must be a positive int"),
    (lambda: nn.Conv2d(2, 2, (3, 0)), ShapeError, "kernel_size must be an int >= 1"),
    (lambda: nn.Conv2d(2, 2, 3, padding=-1), ShapeError, "padding must be an int >= 0"),
    (lambda: nn.Conv2d(3, 2, 3, groups=2), ShapeError, "groups=2 must divide in_channels=3"),
    (lambda: nn.Conv2d(2, 2, 3, bias="yes"), GraphError, "bias must be True or False"),
    (lambda: nn.MaxPool2d(2, padding=2), ShapeError, "at most half the kernel"),
    (lambda: nn.LayerNorm(0), ShapeError, "normalized_shape entry must be a positive int"),
    (lambda: nn.LayerNorm(()), ShapeError, "at least one axis"),
    (lambda: nn.LayerNorm(3, eps=-1), GraphError, "eps must be a positive number"),
    (lambda: nn.Embedding(5, 0), ShapeError, "embedding_dim must be a positive int"),
    (lambda: nn.Softmax(axis=1.5), GraphError, "axis must be an int"),
    (lambda: nn.Flatten(start_axis="1"), GraphError, "start_axis must be an int"),
])
def test_layer_settings_are_checked_with_typed_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_layer_inputs_are_checked_with_typed_errors():
    with pytest.raises(ShapeError, match=r"Conv2d 'conv': input .* is not \(N, 3, H, W\)"):
        nn.Conv2d(3, 2, 3)(sg.var("X", shape=("batch", 2, 5, 5)))
    with pytest.raises(ShapeError, match=r"MaxPool2d 'maxpool': input .* is not \(N, C, H, W\)"):
        nn.MaxPool2d(2)(sg.var("X", shape=("batch", 5)))
    with pytest.raises(ShapeError, match=r"LayerNorm 'layernorm': input .* does not end in the normalized "
                                         r"shape \(3, 4\)"):
        nn.LayerNorm((3, 4))(sg.var("X", shape=("batch", 4, 3)))


# ------------------------------------------------------------------ save and load
def _every_layer_model():
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, init=("normal", {"std": 0.3}), seed=0), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(2, 2, 2, stride=1, groups=2, seed=1), nn.Sigmoid(), nn.AvgPool2d(2, stride=1),
        nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 4, init=sg.init.spec("lecun"), bias_init="ones", seed=2),
        nn.GELU(), nn.Tanh(), nn.Linear(4, 3, seed=3), nn.Softmax(axis=-1), name="net")


def test_save_and_load_rebuild_a_sequential_of_every_layer(tmp_path):
    model = _every_layer_model()
    model[7].gamma.value = RNG.normal(size=8)
    path = sg.save(tmp_path / "net.npz", model)
    again = sg.load(path)
    assert type(again) is nn.Sequential and repr(again) == repr(model)
    assert again.config() == model.config()
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), again.named_parameters()):
        assert n1 == n2 and np.array_equal(p1.value, p2.value)
    X = sg.var("X", shape=("batch", 1, 8, 8))
    x = RNG.normal(size=(3, 1, 8, 8))
    np.testing.assert_array_equal(sg.evaluate(model(X), {"X": x}), sg.evaluate(again(X), {"X": x}))


@pytest.mark.parametrize("layer", [
    nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), bias=False, seed=5, name="c"),
    nn.LayerNorm((2, 3), eps=1e-3, name="ln"),
    nn.Embedding(7, 2, init="random", seed=4, name="emb"),
    nn.ModuleList([nn.Linear(2, 2), nn.Embedding(3, 2)], name="blocks"),
    nn.MaxPool2d((2, 3), stride=1, padding=1), nn.Flatten(2, 3), nn.Softmax(axis=0),
])
def test_save_and_load_rebuild_each_layer(tmp_path, layer):
    again = sg.load(sg.save(tmp_path / "layer.npz", layer))
    assert type(again) is type(layer) and again.config() == layer.config() and repr(again) == repr(layer)
    assert again.state_dict().keys() == layer.state_dict().keys()
    assert all(np.array_equal(again.state_dict()[k], v) for k, v in layer.state_dict().items())


def test_save_and_load_a_sequential_with_batch_norm_and_dropout_keep_running_statistics(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, seed=0), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(),
                          nn.Dropout(0.25), nn.Linear(8, 3, seed=1), nn.BatchNorm1d(3, momentum=0.2), name="net")
    X = sg.var("X", shape=("batch", 1, 4, 4))
    step = sg.compile_step(sg.sum(model(X) ** 2), sg.optim.SGD(lr=0.01), inputs=[X], seed=0)
    for _ in range(3):
        step(RNG.normal(size=(5, 1, 4, 4)))
    assert not np.array_equal(model[1].running_mean.value, np.zeros(2))
    again = sg.load(sg.save(tmp_path / "bn.npz", model))
    assert type(again) is nn.Sequential and again.config() == model.config()
    assert again.state_dict().keys() == model.state_dict().keys() >= {"net.1.running_mean", "net.6.running_var"}
    assert all(np.array_equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    x = RNG.normal(size=(2, 1, 4, 4))
    np.testing.assert_array_equal(sg.evaluate(model.eval()(X), {"X": x}), sg.evaluate(again.eval()(X), {"X": x}))


def test_a_sequential_holding_a_module_without_config_saves_its_state_only(tmp_path):
    class Scale(sg.nn.Module):
        def __init__(self, name="scale"):
            super().__init__(name)
            self.s = self.param("s", 2.0)

        def forward(self, x):
            return x * self.s

    seq = nn.Sequential(nn.Linear(2, 2, seed=0), Scale(), name="m")
    assert [n for n, _ in seq.named_parameters()] == ["m.0.W", "m.0.b", "m.1.s"]
    loaded = sg.load(sg.save(tmp_path / "m.npz", seq))
    assert isinstance(loaded, dict) and sorted(loaded) == ["m.0.W", "m.0.b", "m.1.s"]
    other = nn.Sequential(nn.Linear(2, 2, seed=9), Scale(), name="m")
    sg.load(tmp_path / "m.npz", into=other)
    assert np.array_equal(other[0].W.value, seq[0].W.value)


def test_load_refuses_a_forged_sequential_config_before_building(tmp_path):
    import json
    model = nn.Sequential(nn.Linear(2, 2, seed=0), name="s")
    path = str(tmp_path / "s.npz")
    sg.save(path, model)
    # rewrite the metadata: an Embedding child claiming a huge table
    import zipfile
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(str(np.lib.format.read_array(zf.open("symgrad-meta.npy"))[()]))
        arrays = {n[:-4]: np.lib.format.read_array(zf.open(n)) for n in zf.namelist() if n != "symgrad-meta.npy"}
    meta["config"]["modules"].append({"class": "Embedding",
                                      "config": {"num_embeddings": 10 ** 9, "embedding_dim": 10 ** 3}})
    os.remove(path)
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in [("symgrad-meta", np.array(json.dumps(meta)))] + list(arrays.items()):
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    with pytest.raises(StateError, match="implies 1000000000006 parameter values, the file holds 6"):
        sg.load(path)
    meta["config"]["modules"][-1] = {"class": "Shell", "config": {}}
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in [("symgrad-meta", np.array(json.dumps(meta)))] + list(arrays.items()):
            with zf.open(name + ".npy", "w") as f:
                np.lib.format.write_array(f, arr, allow_pickle=False)
    with pytest.raises(StateError, match="unknown class 'Shell'"):
        sg.load(path)


# ------------------------------------------------------------------ a CNN that learns (smoke-sized)
def test_sequential_cnn_trains_on_digits_and_its_loss_falls():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    X_all = (digits.images[:300] / 16.0).reshape(-1, 1, 8, 8)
    y_all = digits.target[:300]
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, seed=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(64, 10, seed=1), name="cnn")
    X, Y = sg.var("X", shape=("batch", 1, 8, 8)), sg.var("Y", shape=("batch",), dtype="int")
    logits = model(X)
    loss = sg.losses.cross_entropy(logits, Y)
    step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[X, Y], outputs=[logits])
    h = sg.fit(step, {"X": X_all, "Y": y_all}, epochs=4, batch_size=32, seed=0, verbose=0)
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["accuracy"][-1] > 0.7  # ten classes: chance is 0.1
