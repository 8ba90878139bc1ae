"""Backward graphs grow linearly with depth, and so do kept-name formulas
(the depth-L sigmoid chain of bench/grad_scaling.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import sympy

import symgrad as sg


def _bench():
    """bench/grad_scaling.py, whose chain these tests hold to the issue's limits."""
    path = Path(__file__).resolve().parents[1] / "bench" / "grad_scaling.py"
    spec = importlib.util.spec_from_file_location("bench_grad_scaling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chain = _bench().chain


@pytest.mark.parametrize("depth", [10, 100, 1000])
def test_backward_nodes_at_most_four_times_forward(depth):
    loss, params = chain(depth)
    grads = sg.grad(loss, params)
    forward = sg.Graph(loss)
    backward = [n for n in sg.Graph(grads).order if n not in forward]
    assert len(forward) == 5 * depth + 5  # x, y, then w·h, +b, σ per layer (w, b leaves), (h − y), ² (a scalar is its own mean)
    assert len(backward) <= 4 * len(forward)
    # and linear: a fixed number of backward nodes per layer
    assert len(backward) <= 4 * depth + 10


def test_deep_chain_gradient_and_kept_formula():
    depth = 1000
    loss, params = chain(depth)
    dw1 = sg.grad(loss, params[0])
    f = sg.formula(dw1, keep="named")
    primes = [a for a in f.atoms(sympy.Function) if type(a).__name__ == "sigmoid_prime"]
    assert len(primes) == depth
    assert len(f.args) == 2 * depth + 2  # 2, x, (h_L − y), w_2 … w_L and σ′(z_1) … σ′(z_L)
    # the formula's value with the forward values substituted is the gradient
    feeds = {"x": 0.3, "y": 0.2}
    named = [n for n in sg.Graph(loss).order if n.name and n.kind == "op"]
    values = dict(zip((n.name for n in named), sg.evaluate(named + [loss], feeds)))
    values.update(feeds)
    values.update({p.name: p.value for p in params})
    got = sg.formulas.numeric(f, values)
    assert got == pytest.approx(float(sg.evaluate(dw1, feeds)), rel=1e-9, abs=1e-300)
    assert np.isfinite(got)
