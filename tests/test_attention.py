"""sg.attention, sg.nn.MultiheadAttention and the position tables: values and every gradient against
NumPy references written here (forward and hand-written backward), finite differences, compiled ==
evaluated, a symbolic sequence length, and PyTorch (scaled_dot_product_attention,
nn.MultiheadAttention with batch_first=True) with mapped weights where torch is installed."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

RNG = np.random.default_rng(11)


# ------------------------------------------------------------------ NumPy references
def np_softmax(S):
    e = np.exp(S - S.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_attention(q, k, v, add=0.0):
    """(out, weights) of softmax(q kᵀ/√d + add) v."""
    P = np_softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]) + add)
    return P @ v, P


def np_attention_backward(q, k, v, P, G):
    """dq, dk, dv of Σ out ⊙ G, written out: dV = Pᵀ G, dP = G Vᵀ, dS = P ⊙ (dP − Σ_j P dP)."""
    s = 1 / np.sqrt(q.shape[-1])
    dv = np.swapaxes(P, -1, -2) @ G
    dP = G @ np.swapaxes(v, -1, -2)
    dS = P * (dP - (P * dP).sum(axis=-1, keepdims=True))
    return dS @ k * s, np.swapaxes(dS, -1, -2) @ q * s, dv


def np_mha(p, xq, xk, xv, H, add=0.0):
    """Forward of multi-head attention with the caches the backward needs."""
    B, L, E = xq.shape
    S, d = xk.shape[1], E // H
    split = lambda y, n: y.reshape(B, n, H, d).transpose(0, 2, 1, 3)  # noqa: E731
    Q, K, V = split(xq @ p["W_q"] + p["b_q"], L), split(xk @ p["W_k"] + p["b_k"], S), split(xv @ p["W_v"] + p["b_v"], S)
    O, P = np_attention(Q, K, V, add)
    C = O.transpose(0, 2, 1, 3).reshape(B, L, E)
    return C @ p["W_o"] + p["b_o"], (Q, K, V, P, C)


def np_mha_backward(p, xq, xk, xv, H, cache, G):
    """Every parameter's gradient and the inputs' of Σ out ⊙ G."""
    Q, K, V, P, C = cache
    B, L, E = xq.shape
    S, d = xk.shape[1], E // H
    g = {"W_o": np.einsum("blc,ble->ce", C, G), "b_o": G.sum(axis=(0, 1))}
    dO = (G @ p["W_o"].T).reshape(B, L, H, d).transpose(0, 2, 1, 3)
    dQ, dK, dV = np_attention_backward(Q, K, V, P, dO)
    merge = lambda t, n: t.transpose(0, 2, 1, 3).reshape(B, n, E)  # noqa: E731
    dx = {}
    for role, x, dy in (("q", xq, merge(dQ, L)), ("k", xk, merge(dK, S)), ("v", xv, merge(dV, S))):
        g[f"W_{role}"] = np.einsum("bsi,bso->io", x, dy)
        g[f"b_{role}"] = dy.sum(axis=(0, 1))
        dx[role] = dy @ p[f"W_{role}"].T
    return g, dx


def mha_with_values(E=8, H=2, seed=0, name="mha"):
    mha = sg.nn.MultiheadAttention(E, H, seed=seed, name=name)
    for r in "qkvo":  # biases start at zero; give them values so their paths are exercised
        getattr(mha, f"b_{r}").value = RNG.normal(size=E) * 0.3
    return mha, {n.split(".")[-1]: p.value for n, p in mha.named_parameters()}


# ------------------------------------------------------------------ sg.attention
@pytest.mark.parametrize("lead", [(), (2,), (2, 3)])
def test_attention_values_and_input_gradients_match_numpy(lead):
    q, k, v = RNG.normal(size=lead + (4, 3)), RNG.normal(size=lead + (5, 3)), RNG.normal(size=lead + (5, 2))
    G = RNG.normal(size=lead + (4, 2))
    Q, K, V = sg.param("Q", q), sg.param("K", k), sg.param("V", v)
    out = sg.attention(Q, K, V)
    got = sg.evaluate([out] + sg.grad(sg.sum(out * sg.const(G)), [Q, K, V]))
    want, P = np_attention(q, k, v)
    np.testing.assert_allclose(got[0], want, rtol=1e-12, atol=1e-13)
    for a, b in zip(got[1:], np_attention_backward(q, k, v, P, G)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def _causal_add(L, S):
    return np.where(np.triu(np.ones((L, S)), 1) > 0, -np.inf, 0.0)


@pytest.mark.parametrize("how", ["causal", "bool", "float", "int_node", "float_node", "bool_and_causal"])
def test_attention_masks_values_and_gradients_match_numpy_without_nans(how):
    L = S = 4
    q, k, v, G = (RNG.normal(size=(2, L, 3)) for _ in range(4))
    allowed = RNG.random((L, S)) < 0.6
    allowed[:, 0] = True  # every query keeps a key (a row with none has no softmax)
    add = RNG.normal(size=(L, S))
    add[~allowed] = -np.inf
    Q, K, V = sg.param("Q", q), sg.param("K", k), sg.param("V", v)
    feeds = {}
    if how == "causal":
        out, ref_add = sg.attention(Q, K, V, causal=True), _causal_add(L, S)
    elif how == "bool":  # PyTorch's scaled_dot_product_attention: True attends
        out, ref_add = sg.attention(Q, K, V, mask=allowed), np.where(allowed, 0.0, -np.inf)
    elif how == "float":
        out, ref_add = sg.attention(Q, K, V, mask=add), add
    elif how == "int_node":
        m = sg.var("m", shape=(L, S), dtype="int")
        out, ref_add, feeds = sg.attention(Q, K, V, mask=m), np.where(allowed, 0.0, -np.inf), {"m": allowed.astype(int)}
    elif how == "float_node":
        m = sg.var("m", shape=(L, S))
        out, ref_add, feeds = sg.attention(Q, K, V, mask=m), add, {"m": add}
    else:
        out = sg.attention(Q, K, V, mask=allowed, causal=True)
        ref_add = np.where(allowed, 0.0, -np.inf) + _causal_add(L, S)
    got = sg.evaluate([out] + sg.grad(sg.sum(out * sg.const(G)), [Q, K, V]), feeds)
    want, P = np_attention(q, k, v, ref_add)
    assert all(np.isfinite(g).all() for g in got)
    np.testing.assert_allclose(got[0], want, rtol=1e-12, atol=1e-13)
    for a, b in zip(got[1:], np_attention_backward(q, k, v, P, G)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_attention_names_scores_and_weights_and_prints_the_textbook_formula():
    Q, K, V = (sg.param(n, RNG.normal(size=(3, 2))) for n in "QKV")
    out = sg.attention(Q, K, V, causal=True, name="att")
    weights = out.inputs[0]
    assert (out.name, weights.name, weights.inputs[0].name) == ("att.out", "att.weights", "att.scores")
    assert sg.latex(sg.attention(Q, K, V)) == r"\operatorname{softmax}\left(\frac{Q K^{T}}{\sqrt{2}}\right) V"
    text = sg.backprop_equations(sg.sum(out).named("L")).pretty()
    assert "att.weights = softmax(att.scores)" in text
    assert "att.out = att.weights⋅V" in text
    assert "masked fill" in text or "masked_fill" in text


def test_attention_finite_differences_with_a_causal_mask():
    Q, K, V = (sg.param(n, RNG.normal(size=(2, 3, 2))) for n in "QKV")
    L = sg.sum(sg.tanh(sg.attention(Q, K, V, causal=True)))
    assert sg.check_grad(L, [Q, K, V]) < 1e-7


def test_attention_scale_and_errors():
    q, k, v = RNG.normal(size=(3, 4)), RNG.normal(size=(5, 4)), RNG.normal(size=(5, 2))
    got = sg.evaluate(sg.attention(sg.const(q), sg.const(k), sg.const(v), scale=0.3))
    np.testing.assert_allclose(got, np_softmax(q @ k.T * 0.3) @ v, rtol=1e-12)
    with pytest.raises(sg.ShapeError, match="same feature size"):
        sg.attention(sg.const(q), sg.const(v), sg.const(v))
    with pytest.raises(sg.ShapeError, match="as many rows"):
        sg.attention(sg.const(q), sg.const(k), sg.const(q))
    with pytest.raises(sg.ShapeError, match="does not broadcast"):
        sg.attention(sg.const(q), sg.const(k), sg.const(v), mask=np.ones((3, 4), dtype=bool))
    with pytest.raises(sg.GraphError, match="boolean .* or float"):
        sg.attention(sg.const(q), sg.const(k), sg.const(v), mask=np.array([["a"] * 5] * 3))
    with pytest.raises(sg.GraphError, match="causal"):
        sg.attention(sg.const(q), sg.const(k), sg.const(v), causal="yes")
    with pytest.raises(sg.GraphError, match="scale"):
        sg.attention(sg.const(q), sg.const(k), sg.const(v), scale=float("nan"))


def test_causal_attention_with_a_symbolic_length_masks_the_future():
    X = sg.var("X", shape=("batch", "seq", 3))
    out = sg.attention(X, X, X, causal=True)
    assert out.shape == ("batch", "seq", 3)
    for T in (2, 5):
        x = RNG.normal(size=(2, T, 3))
        np.testing.assert_allclose(sg.evaluate(out, {"X": x}), np_attention(x, x, x, _causal_add(T, T))[0],
                                   rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------ MultiheadAttention
@pytest.mark.parametrize("how", ["plain", "causal", "bool_mask", "cross"])
def test_multihead_attention_values_and_every_gradient_match_numpy(how):
    E, H, B, L = 8, 2, 3, 4
    S = 6 if how == "cross" else L
    mha, p = mha_with_values(E, H)
    xq = RNG.normal(size=(B, L, E))
    xk, xv = (RNG.normal(size=(B, S, E)) for _ in range(2)) if how == "cross" else (xq, xq)
    G = RNG.normal(size=(B, L, E))
    allowed = RNG.random((L, S)) < 0.6
    allowed[:, 0] = True
    add = {"causal": _causal_add(L, S), "bool_mask": np.where(allowed, 0.0, -np.inf)}.get(how, 0.0)
    Xq = sg.param("xq", xq)
    Xk, Xv = (sg.param("xk", xk), sg.param("xv", xv)) if how == "cross" else (Xq, Xq)
    out = mha(Xq, Xk, Xv, mask=allowed if how == "bool_mask" else None, causal=how == "causal")
    params = mha.parameters()
    ins = [Xq, Xk, Xv] if how == "cross" else [Xq]
    got = sg.evaluate([out] + sg.grad(sg.sum(out * sg.const(G)), params + ins))
    want, cache = np_mha(p, xq, xk, xv, H, add)
    np.testing.assert_allclose(got[0], want, rtol=1e-11, atol=1e-12)
    gp, dx = np_mha_backward(p, xq, xk, xv, H, cache, G)
    for (name, _), g in zip(mha.named_parameters(), got[1:]):
        np.testing.assert_allclose(g, gp[name.split(".")[-1]], rtol=1e-9, atol=1e-11, err_msg=name)
    dins = [dx["q"], dx["k"], dx["v"]] if how == "cross" else [dx["q"] + dx["k"] + dx["v"]]
    for g, want_dx in zip(got[1 + len(params):], dins):
        np.testing.assert_allclose(g, want_dx, rtol=1e-9, atol=1e-11)


def test_multihead_attention_finite_differences_on_every_parameter():
    mha, _ = mha_with_values(4, 2, seed=3)
    X = sg.var("X", shape=("batch", 3, 4))
    L = sg.sum(sg.tanh(mha(X, causal=True)))
    assert sg.check_grad(L, mha.parameters(), {"X": RNG.normal(size=(2, 3, 4))}) < 1e-7


def test_multihead_attention_compiled_equals_evaluated_with_a_symbolic_length():
    mha, p = mha_with_values(8, 4, seed=1)
    X = sg.var("X", shape=("batch", "seq", 8))
    out = mha(X, causal=True)
    assert out.shape == ("batch", "seq", 8) and out.name == "mha.out"
    L = sg.sum(out * out)
    outputs = [L] + sg.grad(L, mha.parameters())
    f32, f64 = sg.compile(outputs, inputs=[X], dtype="float32"), sg.compile(outputs, inputs=[X])
    for T in (1, 3, 7):  # one graph, any length
        x = RNG.normal(size=(2, T, 8))
        want = sg.evaluate(outputs, {"X": x})
        np.testing.assert_allclose(np_mha(p, x, x, x, 4, _causal_add(T, T))[0], sg.evaluate(out, {"X": x}),
                                   rtol=1e-11, atol=1e-12)
        for a, b, c in zip(f64(x), f32(x), want):
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(b, c, rtol=2e-4, atol=2e-4)


def test_multihead_attention_parameters_init_and_errors():
    mha = sg.nn.MultiheadAttention(16, 4, seed=0, name="att")
    names = [n for n, _ in mha.named_parameters()]
    assert names == ["att.W_q", "att.b_q", "att.W_k", "att.b_k", "att.W_v", "att.b_v", "att.W_o", "att.b_o"]
    # PyTorch's distributions: in-projections U(±√(3/(2E))), out-projection U(±1/√E)
    assert np.abs(mha.W_q.value).max() <= np.sqrt(3 / 32) and np.abs(mha.W_q.value).max() > 0.8 * np.sqrt(3 / 32)
    assert np.abs(mha.W_o.value).max() <= 0.25 and np.abs(mha.W_o.value).max() > 0.2
    assert not np.allclose(mha.W_q.value, mha.W_k.value)
    np.testing.assert_array_equal(sg.nn.MultiheadAttention(16, 4, seed=0).W_v.value, mha.W_v.value)
    assert [n for n, _ in sg.nn.MultiheadAttention(4, 2, bias=False, name="m").named_parameters()] == \
        ["m.W_q", "m.W_k", "m.W_v", "m.W_o"]
    with pytest.raises(sg.ShapeError, match="not divisible"):
        sg.nn.MultiheadAttention(6, 4)
    with pytest.raises(sg.ShapeError, match=r"query must be \(batch, seq, 16\)"):
        mha(sg.var("x", shape=("batch", 16)))
    with pytest.raises(sg.ShapeError, match="share the batch"):
        mha(sg.var("x", shape=(2, 3, 16)), sg.var("y", shape=(2, 4, 16)), sg.var("z", shape=(2, 5, 16)))
    with pytest.raises(sg.GraphError, match="p must be"):
        sg.nn.MultiheadAttention(4, 2, dropout=1.5)


def test_multihead_attention_dropout_acts_on_the_weights_in_training_mode_only():
    mha = sg.nn.MultiheadAttention(4, 2, dropout=0.5, seed=0, name="mha")
    X = sg.var("X", shape=("batch", 3, 4))
    train_out = mha(X)
    assert [r.name for r in sg.Graph(train_out).randoms] == ["mha.dropout.mask"]
    x = RNG.normal(size=(2, 3, 4))
    mha.eval()
    eval_out = mha(X)
    assert sg.Graph(eval_out).randoms == []
    a, b = sg.evaluate(train_out, {"X": x}, seed=0), sg.evaluate(eval_out, {"X": x})
    assert not np.allclose(a, b)
    mha.train()


# ------------------------------------------------------------------ positions
def test_sinusoidal_positions_follow_the_paper():
    P = sg.nn.sinusoidal_positions(6, 5)
    for pos in range(6):
        for j in range(5):
            angle = pos / 10000 ** ((j - j % 2) / 5)
            assert P[pos, j] == pytest.approx(np.sin(angle) if j % 2 == 0 else np.cos(angle), abs=1e-15)
    with pytest.raises(sg.ShapeError, match="d_model"):
        sg.nn.sinusoidal_positions(3, 0)


def test_positional_embedding_adds_the_first_rows_and_trains_only_them():
    pe = sg.nn.PositionalEmbedding(6, 3, seed=0, name="pos")
    X = sg.var("X", shape=(2, 4, 3))
    out = pe(X)
    x, G = RNG.normal(size=(2, 4, 3)), RNG.normal(size=(2, 4, 3))
    value, dP = sg.evaluate([out, sg.grad(sg.sum(out * sg.const(G)), pe.P)], {"X": x})
    np.testing.assert_allclose(value, x + pe.P.value[:4], rtol=1e-14)
    want = np.zeros((6, 3))
    want[:4] = G.sum(axis=0)
    np.testing.assert_allclose(dP, want, rtol=1e-12)
    assert out.name == "pos.out" and pe.P.name == "pos.P"
    assert sg.evaluate(pe(sg.var("Y", shape=(1, 6, 3))), {"Y": np.zeros((1, 6, 3))}).shape == (1, 6, 3)
    with pytest.raises(sg.ShapeError, match="exceeds max_len"):
        pe(sg.var("Z", shape=("batch", 7, 3)))
    with pytest.raises(sg.ShapeError, match="fixed length"):
        pe(sg.var("S", shape=("batch", "seq", 3)))


# ------------------------------------------------------------------ PyTorch
def _torch_mha(mha, torch):
    E = mha.embed_dim
    t = torch.nn.MultiheadAttention(E, mha.num_heads, batch_first=True).double()
    with torch.no_grad():  # in_proj_weight is [W_q; W_k; W_v] in y = x Wᵀ layout
        t.in_proj_weight.copy_(torch.tensor(np.concatenate([mha.W_q.value.T, mha.W_k.value.T, mha.W_v.value.T])))
        t.in_proj_bias.copy_(torch.tensor(np.concatenate([mha.b_q.value, mha.b_k.value, mha.b_v.value])))
        t.out_proj.weight.copy_(torch.tensor(mha.W_o.value.T))
        t.out_proj.bias.copy_(torch.tensor(mha.b_o.value))
    return t


def _torch_mha_grads(t, E):
    w, b = t.in_proj_weight.grad.numpy(), t.in_proj_bias.grad.numpy()
    return {"W_q": w[:E].T, "W_k": w[E:2 * E].T, "W_v": w[2 * E:].T, "b_q": b[:E], "b_k": b[E:2 * E],
            "b_v": b[2 * E:], "W_o": t.out_proj.weight.grad.numpy().T, "b_o": t.out_proj.bias.grad.numpy()}


@pytest.mark.parametrize("how", ["none", "causal", "bool", "float"])
def test_attention_matches_torch_scaled_dot_product_attention(how):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    q, k, v, G = (RNG.normal(size=(2, 3, 5, 4)) for _ in range(4))
    allowed = RNG.random((5, 5)) < 0.6
    allowed[:, 0] = True
    add = np.where(allowed, RNG.normal(size=(5, 5)), -np.inf)
    Q, K, V = sg.param("Q", q), sg.param("K", k), sg.param("V", v)
    mask = {"bool": allowed, "float": add}.get(how)
    out = sg.attention(Q, K, V, mask=mask, causal=how == "causal")
    got = sg.evaluate([out] + sg.grad(sg.sum(out * sg.const(G)), [Q, K, V]))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    tmask = None if mask is None else torch.tensor(mask)
    ty = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask, is_causal=how == "causal")
    (ty * torch.tensor(G)).sum().backward()
    np.testing.assert_allclose(got[0], ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, t in zip(got[1:], (tq, tk, tv)):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("how", ["self", "causal", "mask", "cross"])
def test_multihead_attention_matches_torch_with_mapped_weights(how):
    torch = pytest.importorskip("torch")
    E, H, B, L = 8, 2, 3, 5
    S = 4 if how == "cross" else L
    mha, _ = mha_with_values(E, H, seed=2)
    t = _torch_mha(mha, torch)
    xq = RNG.normal(size=(B, L, E))
    xk, xv = (RNG.normal(size=(B, S, E)) for _ in range(2))
    if how != "cross":
        xk = xv = xq
    G = RNG.normal(size=(B, L, E))
    allowed = RNG.random((L, S)) < 0.6
    allowed[:, 0] = True
    lq, ls = (L, S) if how == "mask" else ("L", "S")  # an array mask needs fixed lengths
    Xq, Xk, Xv = sg.var("xq", shape=("batch", lq, E)), sg.var("xk", shape=("batch", ls, E)), \
        sg.var("xv", shape=("batch", ls, E))
    out = mha(Xq, Xk, Xv, mask=allowed if how == "mask" else None, causal=how == "causal")
    got = sg.evaluate([out] + sg.grad(sg.sum(out * sg.var("G", shape=("batch", lq, E))), mha.parameters()),
                      {"xq": xq, "xk": xk, "xv": xv, "G": G})
    # nn.MultiheadAttention's bool attn_mask is True where attention is *blocked*: symgrad's negation
    tmask = {"causal": torch.triu(torch.ones(L, S, dtype=torch.bool), 1),
             "mask": torch.tensor(~allowed)}.get(how)
    ty, _ = t(*(torch.tensor(a) for a in (xq, xk, xv)), attn_mask=tmask, need_weights=False)
    (ty * torch.tensor(G)).sum().backward()
    np.testing.assert_allclose(got[0], ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    want = _torch_mha_grads(t, E)
    for (name, _), g in zip(mha.named_parameters(), got[1:]):
        np.testing.assert_allclose(g, want[name.split(".")[-1]], rtol=1e-9, atol=1e-11, err_msg=name)
