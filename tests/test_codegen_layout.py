"""Compile-time layout rewrites and loops: transposes sink below elementwise ops (an op computes in
the memory order of the value it transposes), a transpose of a transpose is one or none, Σx² over every
entry is one dot product in float64, and a training step's loop bodies keep their temporaries between
steps, except where a carry would be overwritten while still read.  Every rewrite is checked on values
against NumPy written here, and on the source it produces."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg


def _loop_body(source: str, header: str) -> list[str]:
    """The indented statements of the first ``for`` loop after the comment line containing ``header``."""
    lines = source.splitlines()
    start = next(i for i, ln in enumerate(lines) if header in ln)
    k = next(i for i in range(start, len(lines)) if lines[i].lstrip().startswith("for "))
    indent = len(lines[k]) - len(lines[k].lstrip())
    body = []
    for ln in lines[k + 1:]:
        if len(ln) - len(ln.lstrip()) <= indent:
            break
        body.append(ln.strip())
    return body


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_elementwise_op_of_a_transpose_computes_in_its_memory_order(dtype):
    rng = np.random.default_rng(0)
    A, Y = rng.normal(size=(4, 3, 5)), rng.normal(size=(3, 4, 5))
    a, y = sg.var("a", shape=(4, 3, 5)), sg.var("y", shape=(3, 4, 5))
    d = sg.transpose(a, (1, 0, 2)) - y
    e = sg.tanh(d) * 2.0
    f = sg.compile([d, e], [a, y], dtype=dtype)
    got_d, got_e = f(A, Y)
    want_d = A.transpose(1, 0, 2) - Y
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(got_d, want_d, rtol=tol, atol=tol)
    np.testing.assert_allclose(got_e, np.tanh(want_d) * 2.0, rtol=tol, atol=tol)
    # the subtraction reads y through a transposed view and writes in a's order
    assert re.search(r"t\d+ = a - t\d+|np\.subtract\(a, t\d+", f.source), f.source
    assert got_d.shape == (3, 4, 5) and got_d.transpose(1, 0, 2).flags.c_contiguous


def test_a_transpose_of_a_transpose_is_one_transpose_or_none():
    X = np.arange(24.0).reshape(2, 3, 4)
    x = sg.var("x", shape=(2, 3, 4))
    back = sg.transpose(sg.transpose(x, (1, 0, 2)), (1, 0, 2)) * 3.0
    turn = sg.transpose(sg.transpose(x, (1, 0, 2)), (0, 2, 1)) + 1.0
    f = sg.compile([back, turn], [x])
    got_back, got_turn = f(X)
    np.testing.assert_array_equal(got_back, X * 3.0)
    np.testing.assert_array_equal(got_turn, X.transpose(1, 0, 2).transpose(0, 2, 1) + 1.0)
    assert f.source.count("np.transpose(") == 1, f.source  # only the composed (1, 2, 0) permutation
    assert "(1, 2, 0)" in f.source


def test_sum_of_squares_of_every_entry_is_one_dot_product_in_float64():
    rng = np.random.default_rng(1)
    D = rng.normal(size=(6, 5, 4))
    d = sg.var("d", shape=(6, 5, 4))
    whole = 0.5 * sg.sum(d ** 2)
    through_transpose = sg.sum(sg.transpose(d, (2, 0, 1)) * sg.transpose(d, (2, 0, 1)))
    by_rows = sg.sum(d ** 2, axis=0)
    f64 = sg.compile([whole, through_transpose, by_rows], [d])
    w, t, r = f64(D)
    assert w == pytest.approx(0.5 * float(np.sum(D * D)), rel=1e-14)
    assert t == pytest.approx(float(np.sum(D * D)), rel=1e-14)
    np.testing.assert_allclose(r, np.sum(D * D, axis=0), rtol=1e-14)
    # Σd² and Σ(dᵀ⊙dᵀ) are one value, computed once; the per-row sum stays a sum
    assert f64.source.count("sumsq(d)") == 1 and ".sum(axis=0)" in f64.source, f64.source
    f32 = sg.compile(whole, [d], dtype="float32")
    assert "sumsq(" not in f32.source  # BLAS would accumulate float32 in float32
    assert f32(D) == pytest.approx(0.5 * float(np.sum(D * D)), rel=1e-5)
    # and its gradient is unchanged: d itself
    g = sg.compile(sg.grad(whole, [d]), [d])(D)
    np.testing.assert_allclose(g[0] if isinstance(g, (list, tuple)) else g, D, rtol=1e-14)


def _rnn_step(rng, T, B, I, H):
    rnn = sg.nn.RNN(I, H, name="rnn")
    x, y = sg.var("x", shape=(B, T, I)), sg.var("y", shape=(B, T, H))
    out, _ = rnn(x, sg.const(np.zeros((B, H))))
    loss = 0.5 * sg.sum((out - y) ** 2)
    params = [rnn.W_ih, rnn.W_hh, rnn.b_ih, rnn.b_hh]
    return rnn, x, y, loss, params


def test_rnn_training_step_backward_loop_allocates_nothing_and_reads_cotangent_rows_directly():
    rng = np.random.default_rng(2)
    T, B, I, H = 7, 3, 4, 5
    rnn, x, y, loss, params = _rnn_step(rng, T, B, I, H)
    X, Y = rng.normal(size=(B, T, I)), rng.normal(size=(B, T, H))
    before = [p.value.copy() for p in params]
    want_loss = [float(sg.evaluate(loss, {"x": X, "y": Y}))]
    grads = sg.evaluate(sg.grad(loss, params), {"x": X, "y": Y})
    step = sg.compile_step(loss, sg.optim.SGD(lr=0.05), inputs=[x, y], params=params)
    src = step.source
    body = _loop_body(src, "loop (backward)")
    rhs = [ln.split("#")[0].split("=", 1)[1].strip() for ln in body]
    ops = [r for r in rhs if not re.fullmatch(r"[\w.]+(\[[^\]]*\])?", r)]  # not a name or a row of an array
    assert ops and all("out=" in ln or "+=" in ln or "*=" in ln or "-=" in ln for ln in ops), "\n".join(body)
    assert "rows(" not in src  # the batch-first cotangent is already step-major: no copy
    # tanh′ = 1 − h² stays in the loop, on one step's cache-hot arrays
    calls = sorted(re.findall(r"np\.(\w+)\(", "\n".join(body)))
    assert calls == ["add", "matmul", "multiply", "multiply", "subtract"], "\n".join(body)
    assert "sumsq(" in src
    got = step(X, Y)
    assert got == pytest.approx(want_loss[0], rel=1e-12)
    for p, v, g in zip(params, before, grads):
        np.testing.assert_allclose(p.value, v - 0.05 * g, rtol=1e-11, atol=1e-12)
    # the kept arrays carry nothing over: the second step equals evaluation from the updated params
    mid = [p.value.copy() for p in params]
    want2 = float(sg.evaluate(loss, {"x": X, "y": Y}))
    grads2 = sg.evaluate(sg.grad(loss, params), {"x": X, "y": Y})
    assert step(X, Y) == pytest.approx(want2, rel=1e-12)
    for p, v, g in zip(params, mid, grads2):
        np.testing.assert_allclose(p.value, v - 0.05 * g, rtol=1e-11, atol=1e-12)


def test_a_carry_still_read_after_a_temporary_is_written_keeps_fresh_arrays():
    """Body ``a = tanh(x ⊙ h); h' = a + h``: the buffer of ``a`` becomes the new carry while the old carry
    is still read after ``a`` is written, so that buffer must not be one array kept across steps."""
    rng = np.random.default_rng(3)
    T, B, H = 6, 2, 3
    w = sg.param("w", rng.normal(size=(H,)))

    def body(h, x):
        a = sg.tanh(x * h * w)
        new = a + h
        return new, new

    xs = sg.var("xs", shape=(T, B, H))
    h0 = sg.var("h0", shape=(B, H))
    hT, ys = sg.scan(body, h0, xs)
    loss = sg.sum(hT * hT) + sg.sum(ys)
    XS, H0 = rng.normal(size=(T, B, H)), rng.normal(size=(B, H))

    def reference(wv):
        h, total = H0, 0.0
        for t in range(T):
            h = np.tanh(XS[t] * h * wv) + h
            total += h.sum()
        return float((h * h).sum() + total)

    w0 = w.value.copy()
    g = sg.evaluate(sg.grad(loss, [w]), {"xs": XS, "h0": H0})[0]
    step = sg.compile_step(loss, sg.optim.SGD(lr=0.01), inputs=[xs, h0], params=[w])
    assert step(XS, H0) == pytest.approx(reference(w0), rel=1e-12)
    np.testing.assert_allclose(w.value, w0 - 0.01 * g, rtol=1e-11, atol=1e-12)
    w1 = w.value.copy()
    assert step(XS, H0) == pytest.approx(reference(w1), rel=1e-12)
