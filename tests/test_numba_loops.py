"""backend="numba": the vectorisable exp, tanh and σ of the kernels (accuracy against NumPy, special
values), kernels that write over one of their inputs (the aliased variant), and loop bodies (``sg.scan``:
RNN, LSTM) fused into kernels, with steps equal to the NumPy backend's."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg

numba = pytest.importorskip("numba")

from symgrad.backends import numba_kernels  # noqa: E402  (after the skip)
from symgrad.backends.numba_scalar import exp, sigmoid, tanh  # noqa: E402
from test_backend_numba import _kernel_cache  # noqa: E402,F401  (the same isolated kernel cache, autouse)


@numba.njit(error_model="numpy")
def _loop_tanh(x, out):
    for i in range(x.size):
        out[i] = tanh(x[i])


@numba.njit(error_model="numpy")
def _loop_exp(x, out):
    for i in range(x.size):
        out[i] = exp(x[i])


@numba.njit(error_model="numpy")
def _loop_sigmoid(x, out):
    for i in range(x.size):
        out[i] = sigmoid(x[i])


def _ulps(got, want):
    """Largest distance in units of the last place, NaN where NumPy has NaN and inf where it has inf."""
    assert np.array_equal(np.isnan(got), np.isnan(want))
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf])
    fin = np.isfinite(want)
    return float(np.max(np.abs(got[fin] - want[fin]) / np.spacing(np.maximum(np.abs(want[fin]), 5e-324))))


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 20.0, -20.0, 19.06, 0.3465, 0.3466, 1e-300, 5e-324,
                    -5e-324, 709.78, 710.0, 1000.0, -708.4, -740.0, -745.1, -746.0, -1e5])


def _call(loop, x):
    out = np.empty_like(x)
    with np.errstate(over="ignore"):
        loop(x, out)
    return out


def test_tanh_is_within_3_ulp_of_numpy_everywhere():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=40_000) * s for s in (1e-12, 1e-6, 1e-2, 0.2, 0.35, 1, 3, 10, 30)] + [SPECIAL])
    got = _call(_loop_tanh, x)
    assert _ulps(got, np.tanh(x)) <= 3
    s = got[-len(SPECIAL):]
    assert np.signbit(s[1]) and not np.signbit(s[0])  # tanh(−0) = −0
    assert s[5] == 1.0 and s[6] == -1.0 and s[12] == -5e-324  # saturated exactly; subnormals kept


def test_exp_is_within_2_ulp_of_numpy_with_inf_zero_and_subnormals():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-745.2, 709.78, size=200_000), rng.normal(size=50_000),
                        rng.uniform(-745.2, -708.0, size=20_000), SPECIAL])
    got = _call(_loop_exp, x)
    with np.errstate(over="ignore"):
        want = np.exp(x)
    assert _ulps(got, want) <= 2
    s = got[-len(SPECIAL):]
    assert s[14] == np.inf and s[15] == np.inf and s[-2] == 0.0 and s[-1] == 0.0 and s[2] == np.inf
    sub = (want > 0) & (want < np.finfo(float).tiny)
    assert sub.sum() > 1000 and np.array_equal(got[sub] > 0, want[sub] > 0)


def test_sigmoid_is_within_3_ulp_and_never_overflows():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-700, 700, size=100_000), rng.normal(size=100_000) * 4, SPECIAL])
    with np.errstate(over="raise", invalid="ignore"):
        got = _call(_loop_sigmoid, x)
    # σ(x) = 1/(1 + e^−x) for x ≥ 0 and e^x/(1 + e^x) below, in NumPy, as the reference
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp(-np.abs(x))
        want = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    assert _ulps(got, want) <= 3
    s = got[-len(SPECIAL):]
    assert s[2] == 1.0 and s[3] == 0.0 and np.isnan(s[4]) and s[-1] == 0.0


def test_kernel_written_over_its_input_is_its_aliased_variant():
    """z = x @ W is a temporary; tanh(z + b) is computed over it: the call hands the kernel z as ``out``
    only, and the kernel reads it there (one array, one index: LLVM vectorises the loop)."""
    x, W, b = sg.var("x", shape=("n", 4)), sg.var("W", shape=(4, 3)), sg.var("b", shape=(3,))
    out = sg.tanh(x @ W + b) * 2.0
    f = sg.compile(out, [x, W, b], backend="numba")
    rng = np.random.default_rng(3)
    xs, Ws, bs = rng.normal(size=(5, 4)), rng.normal(size=(4, 3)), rng.normal(size=3)
    np.testing.assert_allclose(f(xs, Ws, bs), np.tanh(xs @ Ws + bs) * 2.0, rtol=1e-15, atol=1e-15)
    driver = f.source.split("# ---- ")[0]
    call = re.search(r"(\w+) = (_nk_\w+)\((.*)\)", driver)
    assert call is not None, driver
    args = [a.strip() for a in call.group(3).split(",")]
    # the kernel's target is the product's buffer, passed once, as out (not also as an input)
    product = re.search(r"(\w+) = x @ W\n", driver).group(1)
    assert args == ["b", product], driver
    (kernel,) = [k for k in f.kernels if k.name == call.group(2)]
    assert re.search(r"def kernel\(x1, out\):", kernel.source), kernel.source
    assert re.search(r"t0 = \(out\[i0, i1\] \+ x1\[i1\]\)", kernel.source) and "tanh(t0)" in kernel.source


def test_kernel_digest_changes_with_the_helpers_it_inlines(monkeypatch):
    src = "def kernel(x0, out):\n    pass\n"
    before = numba_kernels.digest(src)
    monkeypatch.setattr(numba_kernels, "_HELPERS", numba_kernels._HELPERS + b"edited")
    assert numba_kernels.digest(src) != before


def _recurrent(kind: str, seed: int):
    rng = np.random.default_rng(seed)
    layer = {"rnn": sg.nn.RNN, "lstm": sg.nn.LSTM, "gru": sg.nn.GRU}[kind](3, 5, name=kind)
    for p in layer.parameters():
        p.value = rng.uniform(-0.5, 0.5, size=p.value.shape)
    x, y = sg.var("x", shape=("batch", 6, 3)), sg.var("y", shape=("batch", 6, 5))
    out, _ = layer(x)
    loss = 0.5 * sg.mean((out - y) ** 2)
    return layer, x, y, loss


@pytest.mark.parametrize("kind,whole", [("rnn", True), ("lstm", None), ("gru", None)])
def test_numba_recurrent_step_fuses_its_loop_bodies_and_equals_numpy(kind, whole):
    rng = np.random.default_rng(5)
    xs, ys = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 6, 5))
    got = []
    for backend in ("numpy", "numba"):
        layer, x, y, loss = _recurrent(kind, 7)
        step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[x, y], backend=backend,
                               **({"whole": whole} if backend == "numba" else {}))
        losses = [step(xs, ys) for _ in range(3)]
        got.append((losses, [p.value.copy() for p in layer.parameters()], step))
    (l0, p0, _), (l1, p1, nb) = got
    np.testing.assert_allclose(l1, l0, rtol=1e-12)
    for a, b in zip(p1, p0):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # each loop's body calls a kernel (the forward one computes tanh or σ in it): in the whole step's core
    # (whole=True), or in the driver (the default for a step with loops)
    parts = nb.source.split("# ---- ")
    code = parts[1] if nb.whole else parts[0]
    assert nb.whole == bool(whole), getattr(nb, "not_whole", "")
    if not whole:
        assert nb.not_whole.startswith("loops (a driver unless whole=True")
    loops = re.findall(r"\n( +)for \w+ in range\([^\n]*\n((?:\1    [^\n]*\n)+)", code)
    assert len(loops) == 2, code
    for _, body in loops:
        assert "_nk_" in body, body
    called = set(re.findall(r"_nk_\w+", code))
    sources = {k.name: k.source for k in nb.kernels}
    assert called <= set(sources)
    assert any(re.search(r"\b(tanh|sigmoid)\(", sources[n]) for n in called)


def test_matmul_into_is_one_gemm_for_every_layout():
    from symgrad.backends.numba_forms import matmul_into

    @numba.njit
    def mm(a, b, out):
        return matmul_into(a, b, out)

    rng = np.random.default_rng(4)
    for dt, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
        for m, k, n in ((5, 3, 4), (1, 7, 1), (3, 1, 2), (0, 3, 2), (3, 0, 2), (4, 5, 0)):
            A, B = rng.normal(size=(m, k)).astype(dt), rng.normal(size=(k, n)).astype(dt)
            for a in (A, np.asfortranarray(A)):  # C-ordered, F-ordered (a .T of a C-ordered array)
                for b in (B, np.asfortranarray(B)):
                    out = np.full((m, n), np.nan, dt)
                    assert mm(a, b, out) is out
                    np.testing.assert_allclose(out, A @ B, rtol=tol, atol=tol)  # k = 0: zeros
    A, B = rng.normal(size=(6, 8))[:, ::2], rng.normal(size=(4, 2))  # strided: copied, then gemm
    np.testing.assert_allclose(mm(A, B, np.empty((6, 2))), A @ B, rtol=1e-12)
    out_f = np.asfortranarray(np.empty((6, 2)))  # an F-ordered result: computed apart, copied in
    assert mm(A, B, out_f) is out_f
    np.testing.assert_allclose(out_f, A @ B, rtol=1e-12)
    sig = mm.signatures
    assert any(s[0].layout == "F" for s in sig) and any(s[0].layout == "A" for s in sig)


def test_numba_float32_rnn_core_stays_float32_and_matches_numpy():
    rng = np.random.default_rng(6)
    xs, ys = rng.normal(size=(4, 6, 3)).astype(np.float32), rng.normal(size=(4, 6, 5)).astype(np.float32)
    got = []
    for backend in ("numpy", "numba"):
        layer, x, y, loss = _recurrent("rnn", 8)
        for p in layer.parameters():
            p.value = p.value.astype(np.float32)
        step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[x, y], backend=backend, dtype="float32",
                               **({"whole": True} if backend == "numba" else {}))
        got.append(([step(xs, ys) for _ in range(3)], [p.value.copy() for p in layer.parameters()], step))
    (l0, p0, _), (l1, p1, nb) = got
    assert nb.whole and "matmul_into(" in nb.source
    np.testing.assert_allclose(l1, l0, rtol=2e-6)
    for a, b in zip(p1, p0):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


_SHARED_KERNEL = """
import numpy as np, symgrad as sg
rng = np.random.default_rng(0)
layer = sg.nn.RNN(3, 5, name="rnn")
x, y = sg.var("x", shape=(4, 6, 3)), sg.var("y", shape=(4, 6, 5))
out, _ = layer(x)
loss = 0.5 * sg.sum((out - y) ** 2)
xs, ys = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 6, 5))
start = [p.value.copy() for p in layer.parameters()]
whole = sg.compile_step(loss, sg.optim.SGD(lr=0.01), inputs=[x, y], backend="numba", whole=True)
a = whole(xs, ys)
for p, v in zip(layer.parameters(), start):
    p.value[...] = v
split = sg.compile_step(loss, sg.optim.SGD(lr=0.01), inputs=[x, y], backend="numba")
split._fn, split.source, split.path = split._compile(split=True)  # the driver: its kernels called from Python
b = split(xs, ys)
print(whole.whole, split.whole, a, b)
"""


def test_a_kernel_compiled_for_a_core_is_never_loaded_for_a_call_from_python(tmp_path):
    """The same kernel source serves a whole step's core (no CPython wrapper) and a driver (called from
    Python).  Numba's disk cache ignores that option; sharing one file made the driver load the core's
    build and crash the process."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, SYMGRAD_CACHE=str(tmp_path), SYMGRAD_NUMBA_CACHE="1")
    res = subprocess.run([sys.executable, "-c", _SHARED_KERNEL], capture_output=True, text=True, env=env,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    whole, split, a, b = res.stdout.split()
    assert (whole, split) == ("True", "False") and float(a) == pytest.approx(float(b), rel=1e-12)
    files = os.listdir(tmp_path / "numba")
    assert any(f.endswith("_core.py") for f in files) and any(f.endswith(".py") and "_core" not in f for f in files)


def test_whole_core_takes_inputs_of_any_memory_layout():
    """A later call with an F-ordered, strided or reversed input makes Numba compile the core again for
    those layouts; products copy strided operands (``matmul_into``): the losses are the NumPy step's."""
    got = []
    for backend in ("numpy", "numba"):
        rng = np.random.default_rng(1)
        m = sg.nn.MLP([3, 8, 2], activation="tanh", seed=0)
        X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 2))
        step = sg.compile_step(sg.losses.mse(m(X), Y), sg.optim.Adam(lr=0.01), inputs=[X, Y], backend=backend)
        xs, ys, wide = rng.normal(size=(5, 3)), rng.normal(size=(5, 2)), rng.normal(size=(5, 6))
        got.append([step(xs, ys), step(np.asfortranarray(xs), ys), step(wide[:, ::2], ys[::-1])])
        if backend == "numba":
            assert step.whole and len(step.core.signatures) == 3
    np.testing.assert_allclose(got[1], got[0], rtol=1e-13)


def test_whole_core_reads_the_last_step_and_reversed_slices_of_a_loop_output():
    """``out[:, -1]`` into a classifier and ``out[1, 2:5:2, ::-1]`` into a penalty: views with int keys
    and negative steps in the core, and their gradients scattered back into the loop's cotangent."""
    rng0 = np.random.default_rng(0)
    xs, ys = rng0.normal(size=(4, 6, 3)), rng0.integers(0, 2, size=4)
    got = []
    for backend in ("numpy", "numba"):
        rng = np.random.default_rng(3)
        lstm, head = sg.nn.LSTM(3, 5, name="lstm"), sg.nn.Linear(5, 2, name="head")
        params = list(lstm.parameters()) + list(head.parameters())
        for p in params:
            p.value = rng.uniform(-0.5, 0.5, size=p.value.shape)
        x, y = sg.var("x", shape=("batch", 6, 3)), sg.var("y", shape=("batch",), dtype="int")
        out, _ = lstm(x)
        loss = sg.losses.cross_entropy(head(out[:, -1]), y) + 0.1 * sg.sum(out[1, 2:5:2, ::-1] ** 2)
        step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[x, y], backend=backend,
                               **({"whole": True} if backend == "numba" else {}))
        got.append(([step(xs, ys) for _ in range(3)], [p.value.copy() for p in params]))
        if backend == "numba":
            assert step.whole, step.not_whole
    np.testing.assert_allclose(got[1][0], got[0][0], rtol=1e-13)
    for a, b in zip(got[1][1], got[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_whole_option_and_the_default_for_steps_with_and_without_loops():
    """By default a step with loops is a driver and one without is a core; whole=True puts the loops in
    the core, whole=False keeps any step a driver; a bad value is refused."""
    layer = sg.nn.RNN(3, 5, name="rnn")
    x, y = sg.var("x", shape=(4, 6, 3)), sg.var("y", shape=(4, 6, 5))
    out, _ = layer(x)
    loss = 0.5 * sg.sum((out - y) ** 2)
    auto = sg.compile_step(loss, sg.optim.SGD(lr=0.01), inputs=[x, y], backend="numba")
    assert not auto.whole and auto.not_whole.startswith("loops")
    assert sg.compile_step(loss, sg.optim.SGD(lr=0.01), inputs=[x, y], backend="numba", whole=True).whole
    h = sg.var("h", shape=(4, 5))
    no_loop = 0.5 * sg.sum((sg.tanh(h @ layer.W_hh[:, :5]) - y[:, 0]) ** 2)
    assert sg.compile_step(no_loop, sg.optim.SGD(lr=0.01), inputs=[h, y], backend="numba").whole
    off = sg.compile_step(no_loop, sg.optim.SGD(lr=0.01), inputs=[h, y], backend="numba", whole=False)
    assert not off.whole and off.not_whole == "whole=False"
    with pytest.raises(sg.errors.GraphError, match="whole must be None, True or False"):
        sg.compile_step(loss, sg.optim.SGD(lr=0.01), inputs=[x, y], backend="numba", whole="yes")
