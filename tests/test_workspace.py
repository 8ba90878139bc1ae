"""Work arrays a training step keeps between calls (symgrad.runtime.Workspace): the conv and pooling kernels
of a compiled step draw their results and temporaries from them, so nothing computed by one call may show
through in the next.  Each step is checked against fresh evaluation of the loss and gradients (SGD, so the
expected new params are old − lr·grad), over batches of new values and of other sizes, smaller and larger."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.runtime import Workspace

LR = 0.05


def _cnn(dtype, rng):
    """A small CNN that uses every kernel with a workspace: conv with padding, stride and groups, max and
    average pooling (tiling and overlapping windows), and the gradients of all of them."""
    def param(name, *shape):
        return sg.param(name, (0.4 * rng.normal(size=shape)).astype(dtype))
    X = sg.var("X", shape=("batch", 2, 9, 9))
    Y = sg.var("Y", shape=("batch",), dtype="int")
    W1, b1 = param("W1", 4, 1, 3, 3), param("b1", 4)
    W2 = param("W2", 6, 4, 2, 2)
    F, G, c = param("F", 24, 3), param("G", 54, 3), param("c", 3)
    h1 = sg.relu(sg.conv2d(X, W1, b1, padding=1, groups=2))                # (batch, 4, 9, 9)
    p = sg.max_pool2d(h1, 3, stride=2, padding=1)                         # overlapping windows: (batch, 4, 5, 5)
    q = sg.avg_pool2d(h1, 3)                                              # tiling windows: (batch, 4, 3, 3)
    r = sg.max_pool2d(h1, 2, stride=3)                                    # windows with gaps: (batch, 4, 3, 3)
    s = sg.avg_pool2d(h1, 2)                                              # the last row unread: (batch, 4, 4, 4)
    h2 = sg.tanh(sg.conv2d(p, W2, stride=2))                              # (batch, 6, 2, 2)
    h3 = sg.max_pool2d(h2, 3, stride=1, padding=1)                        # (batch, 6, 2, 2)
    h4 = sg.avg_pool2d(h2, 2, stride=1, padding=1)                        # (batch, 6, 3, 3)
    mix = sg.const(rng.normal(size=(36, 54)).astype(dtype))
    feats = sg.reshape(h4, ("batch", 54)) + sg.reshape(sg.max_pool2d(q, 1) + r, ("batch", 36)) @ mix \
        + sg.reshape(s, ("batch", 64)) @ sg.const(rng.normal(size=(64, 54)).astype(dtype))
    logits = sg.reshape(h3, ("batch", 24)) @ F + feats @ G + c
    return X, Y, sg.losses.cross_entropy(logits, Y), [W1, b1, W2, F, G, c], h3


@pytest.mark.parametrize("dtype, tol", [("float64", 1e-11), ("float32", 2e-4)])
def test_step_called_with_new_batches_and_sizes_matches_fresh_evaluation(dtype, tol):
    rng = np.random.default_rng(0)
    X, Y, loss, params, _ = _cnn(dtype, rng)
    step = sg.compile_step(loss, sg.optim.SGD(lr=LR), inputs=[X, Y], dtype=dtype)
    assert "work=" in step.source  # the kernels do get a workspace here
    for n in (5, 5, 3, 8, 5, 1):  # new values each time; smaller, then larger than any batch before
        xv = rng.normal(size=(n, 2, 9, 9)).astype(dtype)
        yv = rng.integers(0, 3, size=n)
        old = [np.array(p.value, dtype=np.float64) for p in params]
        feeds = {"X": xv.astype(np.float64), "Y": yv}
        want_loss, *want_grads = sg.evaluate([loss] + sg.grad(loss, params), feeds)  # params before the step
        got = step(xv, yv)
        assert got == pytest.approx(float(want_loss), rel=tol, abs=tol)
        for p, o, g in zip(params, old, want_grads):
            np.testing.assert_allclose(p.value, o - LR * g, rtol=tol, atol=tol, err_msg=f"{p.name}, batch {n}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_step_with_and_without_reused_buffers_agree(dtype):
    runs = []
    for reuse in (True, False):
        rng = np.random.default_rng(1)
        X, Y, loss, params, _ = _cnn(dtype, rng)
        step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[X, Y], dtype=dtype, reuse_buffers=reuse)
        assert ("work=" in step.source) == reuse
        losses = [step(rng.normal(size=(n, 2, 9, 9)), rng.integers(0, 3, size=n)) for n in (4, 6, 2, 4)]
        runs.append((losses, [np.array(p.value) for p in params]))
    (l1, p1), (l2, p2) = runs
    np.testing.assert_allclose(l1, l2, rtol=1e-12 if dtype == "float64" else 1e-5)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-12 if dtype == "float64" else 1e-5, atol=1e-12)


def test_outputs_of_a_step_are_not_overwritten_by_the_next_call():
    rng = np.random.default_rng(2)
    X, Y, loss, params, h = _cnn("float64", rng)
    conv = sg.conv2d(X, params[0], padding=1, groups=2)
    step = sg.compile_step(loss, sg.optim.SGD(lr=LR), inputs=[X, Y], outputs=[h, conv])
    xv, yv = rng.normal(size=(3, 2, 9, 9)), rng.integers(0, 3, size=3)
    W1 = np.array(params[0].value)
    _, h1, conv1 = step(xv, yv)
    kept = h1.copy(), conv1.copy()
    step(rng.normal(size=(3, 2, 9, 9)), rng.integers(0, 3, size=3))
    np.testing.assert_array_equal(h1, kept[0])
    np.testing.assert_array_equal(conv1, kept[1])
    want = sg.evaluate(sg.conv2d(sg.var("x", shape=xv.shape), sg.const(W1), padding=1, groups=2), {"x": xv})
    np.testing.assert_allclose(conv1, want, rtol=1e-12, atol=1e-12)


def test_plain_compiled_functions_keep_no_workspace():
    rng = np.random.default_rng(3)
    X, Y, loss, params, _ = _cnn("float64", rng)
    f = sg.compile([loss] + sg.grad(loss, params), inputs=[X, Y])
    assert "work=" not in f.source
    xv, yv = rng.normal(size=(2, 2, 9, 9)), rng.integers(0, 3, size=2)
    for got, want in zip(f(xv, yv), sg.evaluate([loss] + sg.grad(loss, params), {"X": xv, "Y": yv})):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_workspace_hands_out_the_same_memory_per_tag_and_grows():
    w = Workspace()
    a = w.empty("cols", (4, 5), np.float32)
    b = w.empty("cols", (2, 3), np.float32)
    assert np.shares_memory(a, b) and b.shape == (2, 3) and b.flags.c_contiguous
    c = w.empty("cols", (10, 10), np.float32)  # larger: new memory
    assert not np.shares_memory(a, c) and c.shape == (10, 10)
    assert not np.shares_memory(w.empty("other", (4,), np.float32), c)
    assert not np.shares_memory(w.empty("cols", (4,), np.float64), c)  # one array per tag and dtype
    z = w.zeros("cols", (3, 3), np.float32)
    np.testing.assert_array_equal(z, np.zeros((3, 3)))
