"""Formulas through loops: a scan's body printed once with a time index (unicode and LaTeX), and
backpropagation through time as recurrences and Σ_t sums whose numbers equal sg.grad."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.formulas.notation import dim, leaf_symbol


def _rnn():
    rnn = sg.nn.RNN(3, 4, seed=0)
    x = sg.var("x", shape=("batch", "T", 3))
    return rnn, x, *rnn(x)


def _eq(section, lhs):
    for left, right, *_ in section:
        if str(left) == lhs:
            return right
    raise AssertionError(f"no equation for {lhs}: {[str(e[0]) for e in section]}")


def test_formula_of_a_loop_output_is_its_body_once_with_a_time_index():
    rnn, x, out, h = _rnn()
    f = sg.formula(h)
    sec, eqs, init = f.sections[0]
    H, B = 4, dim("batch")
    z = _eq(eqs, "z_t")
    want = (leaf_symbol("h_t-1", ("batch", H)) * leaf_symbol("rnn.W_hh", (H, H))
            + leaf_symbol("x_t", ("batch", 3)) * leaf_symbol("rnn.W_ih", (3, H))
            + sympy.OneMatrix(B, 1) * leaf_symbol("rnn.b", (H,)).T)
    assert sympy.simplify(z - want) == sympy.ZeroMatrix(B, H)
    assert str(_eq(eqs, "h_t")) == "tanh(z_t)"
    assert [(str(a), str(b)) for a, b in init] == [("h_0", "0")]
    assert [(str(a), str(b)) for a, b in sec.definitions] == [("rnn.b", "rnn.b_ih + rnn.b_hh")]
    text = sg.pretty(h)
    assert text.splitlines()[:2] == ["h_T", "where, for t = 1, …, T:"]
    assert "  hₜ = tanh(zₜ)" in text.splitlines() and "  h₀ = 0" in text.splitlines()
    tex = sg.latex(h)
    assert tex.startswith(r"h_{T}\quad\text{where, for } t = 1, \dots, T:")
    assert r"h_{t} &= \tanh\left(z_{t}\right)" in tex and r"h_{t-1} \mathrm{rnn.W\_hh}" in tex


def test_reverse_scan_and_scalar_body_print_from_the_last_step():
    s = sg.var("s", shape=("T",))
    total, _ = sg.scan(lambda c, x: (c * 0.5 + x, None), sg.const(0.0), s, reverse=True)
    assert sg.pretty(total).splitlines()[:2] == ["h₁", "where, for t = T, …, 1:"]
    f = sg.formula(total)
    eqs = f.sections[0][1]
    h_next, s_t = sympy.Symbol("h_t+1", real=True), sympy.Symbol("s_t", real=True)
    assert sympy.simplify(_eq(eqs, "h_t") - (h_next / 2 + s_t)) == 0
    assert r"h_{T+1} &= 0" in sg.latex(total)


def test_lstm_formula_names_the_gates_and_the_blocks_of_the_weights():
    lstm = sg.nn.LSTM(3, 4, seed=0)
    _, (h, c) = lstm(sg.var("x", shape=("batch", "T", 3)))
    lines = sg.pretty(c).splitlines()
    assert "  cₜ = cₜ₋₁ ⊙ fₜ + gₜ ⊙ iₜ" in lines
    assert "  hₜ = oₜ ⊙ tanh(cₜ)" in lines
    assert "  lstm.W_if = lstm.W_ih[:, 4:8]" in lines and "  lstm.b_f = lstm.b_if + lstm.b_hf" in lines


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_backprop_equations_through_time_evaluate_to_sg_grad(kind):
    layer = {"rnn": sg.nn.RNN, "lstm": sg.nn.LSTM, "gru": sg.nn.GRU}[kind](3, 4, seed=1)
    x, y = sg.var("x", shape=("batch", "T", 3)), sg.var("y", shape=("batch", "T", 4))
    out, state = layer(x)
    h = state[0] if kind == "lstm" else state
    L = 0.5 * sg.sum((out - y) ** 2) + sg.sum(h * h)
    eqs = sg.backprop_equations(L)
    rng = np.random.default_rng(2)
    feeds = {"x": rng.normal(size=(2, 5, 3)), "y": rng.normal(size=(2, 5, 4))}
    got = eqs.evaluate(feeds)
    params = [p for _, p in layer.named_parameters()]
    for p, want in zip(params, sg.evaluate(sg.grad(L, params), feeds)):
        np.testing.assert_allclose(got[f"∂L/∂{p.name}"], want, rtol=1e-12, atol=1e-12)
    assert eqs.labels()[-len(params):] == [f"∂L/∂{p.name}" for p in params]


def test_rnn_backprop_equations_read_as_the_textbook_recurrences():
    rnn, x, out, h = _rnn()
    eqs = sg.backprop_equations(0.5 * sg.sum(out ** 2))
    (sec, back, init), = eqs.backward
    assert sec.header == "t = T, …, 1" and [(str(a), str(b)) for a, b in init] == [("δ_h_T", "0")]
    H, B = 4, dim("batch")
    dh, ext, ht = (leaf_symbol(n, ("batch", H)) for n in ("δ_h_t", "∂L/∂h_t", "h_t"))
    dz = _eq(back, "δ_z_t")
    want = sympy.HadamardProduct(sympy.OneMatrix(B, H) - sympy.HadamardPower(ht, 2), dh + ext)
    assert sympy.simplify(dz.xreplace({s: leaf_symbol(s.name, ("batch", H)) for s in dz.free_symbols
                                       if s.name == "∂L/∂h_t"}) - want) == sympy.ZeroMatrix(B, H)
    assert str(_eq(back, "δ_h_t")) == "δ_z_t+1*rnn.W_hh.T"  # δh_t written from step t+1
    text = eqs.pretty()
    assert "  ∂L/∂rnn.W_hh = Σₜ hₜ₋₁ ⋅δ_zₜ" in [ln.rstrip() for ln in text.splitlines()]
    assert r"\frac{\partial L}{\partial \mathrm{rnn.W\_hh}} &= \sum_{t} h_{t-1}^{T} \delta_{z_{t}}" in eqs.latex()
    assert r"\frac{\partial L}{\partial h_{t}}" in eqs.latex()
    got = eqs.evaluate({"x": np.ones((2, 3, 3))})
    assert got["δ_z"].shape == (3, 2, 4)


def test_backprop_equations_evaluate_when_a_head_reads_the_final_state():
    """∂L/∂head.W reads h_T, the loop's final carry, outside the loop: evaluate finds it by its symbol."""
    T, B, I, H = 4, 3, 3, 5
    lstm, head = sg.nn.LSTM(I, H, name="lstm"), sg.nn.Linear(H, 1, name="head")
    x, y = sg.var("x", shape=(B, T, I)), sg.var("y", shape=(B, 1))
    _, (hT, _) = lstm(x)
    L = sg.losses.mse(head(hT), y, name="L")
    eqs = sg.backprop_equations(L)
    line = next(ln for ln in str(eqs).splitlines() if "∂L/∂head.W" in ln)
    assert "h₄" in line  # the final carry, printed as h_T with T = 4
    rng = np.random.default_rng(5)
    feeds = {"x": rng.normal(size=(B, T, I)), "y": rng.normal(size=(B, 1))}
    got = eqs.evaluate(feeds)
    params = lstm.parameters() + head.parameters()
    for p, g in zip(params, sg.evaluate(sg.grad(L, params), feeds)):
        np.testing.assert_allclose(got[f"∂L/∂{p.name}"], g, rtol=1e-10, atol=1e-12, err_msg=p.name)
