"""Backprop equations beyond matrices: a CNN and multi-head attention get their δs and parameter
gradients in index notation, and the printed equations compute the same numbers as sg.grad."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

RNG = np.random.default_rng(0)


def _check(eqs, loss, params, feeds):
    got = eqs.evaluate(feeds)
    want = sg.evaluate(sg.grad(loss, params), feeds)
    for p, w in zip(params, want):
        np.testing.assert_allclose(got[f"∂L/∂{p.name}"], w, rtol=1e-9, atol=1e-12)
    return got


def test_cnn_backprop_equations_in_index_notation_compute_the_gradient():
    X = sg.var("X", shape=("batch", 1, 5, 5))
    W = sg.param("W", RNG.normal(size=(2, 1, 3, 3)) * 0.5)
    b = sg.param("b", RNG.normal(size=2) * 0.1)
    V = sg.param("V", RNG.normal(size=(18, 3)) * 0.3)
    Y = sg.var("Y", shape=("batch",), dtype="int")
    Z = sg.conv2d(X, W, b, stride=2, padding=1).named("Z")
    A = sg.relu(Z).named("A")
    L = sg.losses.cross_entropy(sg.flatten(A).named("F") @ V, Y)
    eqs = sg.backprop_equations(L)
    text = eqs.pretty()
    # the textbook's forms: the convolution and its weight gradient as sums over the kernel and the batch
    assert "Z[i,j,k,l] = b[j] +  Σ  W[j,0,p,q]⋅X[i,0,2k + p - 1,2l + q - 1]\n                      p,q" in text
    assert "∂L/∂W[i,j,k,l] =   Σ   X[n,j,k + 2m - 1,l + 2p - 1]⋅δ_Z[n,i,m,p]" in text
    assert "δ_Z[i,j,k,l] = relu′(Z[i,j,k,l])⋅δ_A[i,j,k,l]" in text
    assert r"\frac{\partial L}{\partial W}_{i,j,k,l}" in eqs.latex()
    got = _check(eqs, L, [W, b, V], {"X": RNG.normal(size=(3, 1, 5, 5)), "Y": np.array([0, 2, 1])})
    assert got["δ_Z"].shape == (3, 2, 3, 3)


def test_multi_head_attention_backprop_equations_compute_the_gradient():
    seq, d, heads = 4, 6, 2
    X = sg.var("X", shape=("batch", seq, d))
    Wq, Wk, Wv = (sg.param(n, RNG.normal(size=(d, d)) * 0.4) for n in ("Wq", "Wk", "Wv"))

    def split(T):  # (batch, seq, d) -> (batch, heads, seq, d/heads)
        return T.reshape("batch", seq, heads, d // heads).transpose(0, 2, 1, 3)

    Q, K, Vh = split(X @ Wq).named("Q"), split(X @ Wk).named("K"), split(X @ Wv).named("V")
    S = (sg.einsum("bhqd,bhkd->bhqk", Q, K) / np.sqrt(d // heads)).named("S")
    P = sg.softmax(S, axis=-1).named("P")
    O = sg.einsum("bhqk,bhkd->bhqd", P, Vh).named("O")
    L = sg.sum(O * O).named("L")
    eqs = sg.backprop_equations(L)
    text = eqs.pretty()
    assert "δ_P[" in text and "δ_S[" in text and "∂L/∂Wq[" in text
    _check(eqs, L, [Wq, Wk, Wv], {"X": RNG.normal(size=(2, seq, d))})


def test_notation_option_is_checked_and_index_works_for_matrices_too():
    X = sg.var("X", shape=("batch", 3))
    W = sg.param("W", RNG.normal(size=(3, 2)))
    L = sg.sum(sg.tanh(X @ W).named("H") ** 2).named("L")
    with pytest.raises(sg.GraphError, match="notation"):
        sg.backprop_equations(L, notation="tensor")
    eqs = sg.backprop_equations(L, notation="index")
    assert eqs.pretty().splitlines()[-3:] == [
        "  δ_H[i,j] = 2⋅H[i,j]",
        "  ∂L/∂W[i,j] = Σ tanh′⎛Σ W[l,j]⋅X[k,l]⎞⋅X[k,i]⋅δ_H[k,j]",
        "               k      ⎝l              ⎠"]
    _check(eqs, L, [W], {"X": RNG.normal(size=(4, 3))})


def test_transformer_block_backprop_equations_compute_the_gradient():
    seq, d, heads = 3, 4, 2
    X = sg.var("X", shape=("batch", seq, d))
    Wq, Wk, Wv, Wo = (sg.param(n, RNG.normal(size=(d, d)) * 0.4) for n in ("Wq", "Wk", "Wv", "Wo"))
    W1, W2 = sg.param("W1", RNG.normal(size=(d, 8)) * 0.4), sg.param("W2", RNG.normal(size=(8, d)) * 0.4)
    g1 = sg.param("g1", np.ones(d))

    def split(T):
        return T.reshape("batch", seq, heads, d // heads).transpose(0, 2, 1, 3)

    def merge(T):
        return T.transpose(0, 2, 1, 3).reshape("batch", seq, d)

    def layer_norm(T, g):
        return (T - sg.mean(T, axis=-1, keepdims=True)) / sg.sqrt(sg.variance(T, axis=-1, keepdims=True) + 1e-5) * g

    Q, K, V = split(X @ Wq), split(X @ Wk), split(X @ Wv)
    P = sg.softmax(sg.einsum("bhqd,bhkd->bhqk", Q, K) / np.sqrt(d // heads), axis=-1).named("P")
    A = (merge(sg.einsum("bhqk,bhkd->bhqd", P, V)) @ Wo).named("A")
    H = layer_norm(X + A, g1).named("H")                      # residual, then layer norm
    F = (sg.relu(H @ W1) @ W2).named("F")                     # the feed-forward part
    L = sg.sum((H + F) ** 2).named("L")
    eqs = sg.backprop_equations(L)
    assert {str(e.lhs) for e in eqs.equations} >= {"δ_F", "δ_H", "δ_A", "δ_P", "W1", "Wq", "g1"}
    _check(eqs, L, [Wq, Wk, Wv, Wo, W1, W2, g1], {"X": RNG.normal(size=(2, seq, d))})


def test_constant_factor_on_a_rank3_named_node_stays_a_number_in_index_notation():
    X = sg.var("X", shape=("batch", 2, 2))
    w = sg.param("w", 0.5)
    a = sg.sigmoid(X * w).named("a")
    L = sg.sum(3.0 * a).named("L")
    eqs = sg.backprop_equations(L)
    assert "δ_a[i,j,k] = 3" in eqs.pretty()
    _check(eqs, L, [w], {"X": RNG.normal(size=(2, 2, 2))})


def test_cnn_with_max_pooling_backprop_equations_evaluate_to_the_gradient():
    """Max pooling has no index form and prints whole (``max pool(A)[i,j,k,l]``, ``max pool∂X(δ_P, A)``);
    evaluating the equations applies the op to the printed operands' values."""
    rng = np.random.default_rng(0)
    X = sg.var("X", shape=("batch", 1, 6, 6))
    y = sg.var("y", shape=("batch",), dtype="int")
    W, b = sg.param("W", rng.normal(size=(2, 1, 3, 3))), sg.param("b", np.zeros(2))
    V = sg.param("V", rng.normal(size=(18, 3)))
    A = sg.relu(sg.conv2d(X, W, b, padding=1).named("Z")).named("A")
    H = sg.flatten(sg.max_pool2d(A, 2).named("P")).named("H")
    L = sg.losses.cross_entropy(H @ V, y).named("L")
    eq = sg.backprop_equations(L, [W, b, V])
    text = str(eq)
    assert "P[i,j,k,l] = max pool(A)[i,j,k,l]" in text and "max pool∂X(δ_P, A)[i,j,k,l]" in text
    feeds = {"X": rng.normal(size=(3, 1, 6, 6)), "y": np.array([0, 1, 2])}
    got = eq.evaluate(feeds)
    for label, want in zip(["∂L/∂W", "∂L/∂b", "∂L/∂V"], sg.evaluate(sg.grad(L, [W, b, V]), feeds)):
        np.testing.assert_allclose(got[label], want, atol=1e-12)
