"""Regression tests for printing bugs of formulas (issue 14): exact text, and the printed formula's number."""
import numpy as np
import pytest

import symgrad as sg
from symgrad.formulas.numeric import numeric


def _close(expr, values, node):
    got = np.asarray(numeric(expr, values), dtype=np.float64)
    want = np.asarray(sg.evaluate(node, {k: v for k, v in values.items() if not isinstance(v, int)}),
                      dtype=np.float64)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-10, atol=1e-12)


def test_hessian_vector_product_prints_its_hadamard_power_of_an_op_without_crashing():
    W = sg.param("W", np.ones((3, 2)))
    X = sg.var("X", shape=("batch", 3))
    v = sg.var("v", shape=(3, 2))
    g = sg.grad(sg.sum(sg.tanh(X @ W) ** 2), [W])[0]
    hvp = sg.grad(sg.sum(g * v), [W])[0]
    assert sg.pretty(hvp) == (
        " T ⎛  ⎛             ∘2     ⎞                                      ⎞\n"
        "X ⋅⎝2⋅⎝(X⋅v) ⊙ tanh′  (X⋅W)⎠ + 2⋅((X⋅v) ⊙ tanh(X⋅W) ⊙ tanh′′(X⋅W))⎠")
    rng = np.random.default_rng(0)
    values = {"X": rng.normal(size=(4, 3)), "v": rng.normal(size=(3, 2)), "W": np.ones((3, 2)), "batch": 4}
    _close(sg.formula(hvp), values, hvp)
