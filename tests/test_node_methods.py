"""Node methods a NumPy user reaches for, indexing with [], and reshapes with several named dims."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

XV = np.random.default_rng(0).normal(size=(2, 3, 4))


def test_node_methods_are_the_functions_of_the_same_name():
    X = sg.var("X", shape=(2, 3, 4))
    pairs = [(X.sum(axis=1), XV.sum(axis=1)), (X.mean(axis=(0, 2), keepdims=True), XV.mean(axis=(0, 2), keepdims=True)),
             (X.max(axis=-1), XV.max(axis=-1)), (X.reshape(6, 4), XV.reshape(6, 4)),
             (X.reshape((4, 6)), XV.reshape((4, 6))), (X.transpose(2, 0, 1), XV.transpose(2, 0, 1)),
             (X.transpose(), XV.transpose()), (X.exp(), np.exp(XV)), (abs(X).log(), np.log(np.abs(XV))),
             (X[1, :, ::2], XV[1, :, ::2]), (X[..., None, 0], XV[..., None, 0])]
    for node, want in pairs:
        np.testing.assert_allclose(sg.evaluate(node, {"X": XV}), want, rtol=1e-12)


def test_reshape_with_several_named_dims_splits_and_merges_heads():
    X = sg.var("X", shape=("batch", "seq", 6))
    heads = X.reshape("batch", "seq", 2, 3).transpose(0, 2, 1, 3)          # (batch, heads, seq, d)
    assert heads.shape == ("batch", 2, "seq", 3)
    merged = sg.tanh(heads).transpose(0, 2, 1, 3).reshape("batch", "seq", -1)
    assert merged.shape == ("batch", "seq", 6)
    L = sg.sum(sg.sin(merged) * X)
    xv = np.random.default_rng(1).normal(size=(4, 5, 6))
    want = np.sum(np.sin(np.tanh(xv)) * xv)
    assert float(sg.evaluate(L, {"X": xv})) == pytest.approx(want, rel=1e-12)
    f = sg.compile([L, sg.grad(L, X)], inputs=[X])
    for got, ref in zip(f(xv), sg.evaluate([L, sg.grad(L, X)], {"X": xv})):
        np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert sg.check_grad(L, X, {"X": xv[:2, :3]}) < 1e-6


def test_reshape_refuses_what_named_dims_cannot_say():
    X = sg.var("X", shape=("batch", "seq", 6))
    with pytest.raises(sg.ShapeError, match="not a dim"):
        X.reshape("batch", "time", 6)
    with pytest.raises(sg.ShapeError, match="cannot reshape"):
        X.reshape("batch", -1)   # -1 would be seq·6, which no named dim says
