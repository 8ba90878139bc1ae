"""backend="numba": the compiled-vs-evaluated op tests of tests/test_codegen.py on the Numba backend
(every registered op, float64 and float32), fused kernels that really are fused, the driver's
names, the kernel cache, training steps equal to the NumPy backend's, and the registry's errors."""
from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.backends import get_backend
from symgrad.errors import DependencyError, GraphError

numba = pytest.importorskip("numba")

from test_codegen import ANY, CASES, _assert_close, _case_graph, _value  # noqa: E402  (after the skip)


@pytest.fixture(scope="module", autouse=True)
def _kernel_cache(tmp_path_factory):
    """Kernels of this module go to a cache folder of its own (the user's cache is left alone), without
    Numba's on-disk cache of the compiled code (SYMGRAD_NUMBA_CACHE=0: each kernel is compiled once here,
    and saving it would cost a fifth more); test_numba_kernels_are_cached_on_disk_by_source_hash turns
    the cache on."""
    import os
    saved = {k: os.environ.get(k) for k in ("SYMGRAD_CACHE", "SYMGRAD_NUMBA_CACHE")}
    os.environ["SYMGRAD_CACHE"] = str(tmp_path_factory.mktemp("symgrad_cache"))
    os.environ["SYMGRAD_NUMBA_CACHE"] = "0"
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_numba_compiled_equals_evaluate_for_every_op(case):
    name, shapes, build, domain, *_ = case
    rng = np.random.default_rng(abs(hash((name, str(shapes)))) % 2**32)
    xs, outputs, feeds = _case_graph(case, rng)
    want = sg.evaluate(outputs, dict(zip(xs, feeds)))
    f = sg.compile(outputs, inputs=xs, backend="numba")
    for k, (g, w) in enumerate(zip(f(*feeds), want)):
        _assert_close(g, w, f"{name} {shapes} output {k}\n{f.source}")
    if any("batch" in s for s in shapes):  # another size of the symbolic dim, same function
        feeds2 = [_value(tuple(3 if d == "batch" else d for d in x.shape), domain[i] if i < len(domain) else ANY,
                         rng, x.dtype) for i, x in enumerate(xs)]
        for g, w in zip(f(*feeds2), sg.evaluate(outputs, dict(zip(xs, feeds2)))):
            _assert_close(g, w, f"{name} {shapes} batch 3")


#: float32: every op once, on its last shape case (the one with broadcasting or a symbolic dim).  A float32
#: kernel is its float64 kernel's source compiled again for float32 arrays (one more Numba compile, about
#: 0.2 s, each), so a sweep of every shape case in float32 would cost as much again as the float64 sweep
#: above; the float32 driver of every shape case is the NumPy backend's, tested over every case in
#: tests/test_codegen.py::test_float32_compiles_every_op_in_float32.
F32_CASES = list({c[0]: c for c in CASES}.values())


@pytest.mark.parametrize("case", F32_CASES, ids=[f"{c[0]}-{c[1]}" for c in F32_CASES])
def test_numba_float32_compiles_every_op_in_float32(case):
    name, shapes, *_ = case
    xs, outputs, feeds = _case_graph(case, np.random.default_rng(7))
    feeds = [f.astype(np.float32) if f.dtype.kind == "f" else f for f in feeds]
    got = sg.compile(outputs, inputs=xs, dtype="float32", backend="numba")(*feeds)
    want = sg.evaluate(outputs, dict(zip(xs, [f.astype(np.float64) for f in feeds])))
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.float32, (name, shapes)
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5)


# ------------------------------------------------------------------ steps, names, caches, registry
def _mlp(activation="tanh", dropout=False, seed=0):
    layers = [sg.nn.Linear(3, 8, name="l1", seed=seed)]
    layers.append(sg.nn.Tanh() if activation == "tanh" else sg.nn.ReLU())
    if dropout:
        layers.append(sg.nn.Dropout(0.25))
    layers.append(sg.nn.Linear(8, 2, name="l2", seed=seed + 1))
    model = sg.nn.Sequential(*layers)
    X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 2))
    return model, X, Y, sg.losses.mse(model(X), Y)


#: whole-step cores cost one to three seconds each to compile (their kernels, the BLAS calls, the core):
#: three optimizers, one of them in float32 (RMSProp's update is elementwise code like theirs, covered by
#: the op tests' kernels)
STEP_CASES = [("SGD", "float64"), ("Adam", "float64"), ("AdamW", "float32")]


@pytest.mark.parametrize("opt_name,dtype", STEP_CASES)
def test_numba_step_trains_like_the_numpy_step(opt_name, dtype):
    """Every op of this step has a Numba form: the step is one njit core, equal to the NumPy step."""
    opt = lambda: getattr(sg.optim, opt_name)(lr=0.1 if opt_name == "SGD" else 0.01)  # noqa: E731
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    results = []
    for backend in ("numpy", "numba"):
        model, X, Y, loss = _mlp()
        for p in model.parameters():
            p.value = p.value.astype(dtype)
        step = sg.compile_step(loss, opt(), inputs=[X, Y], dtype=dtype, backend=backend)
        losses = [step(xs, ys) for _ in range(4)]
        if backend == "numba":
            assert step.whole and "def core(" in step.source, step.source
        results.append((losses, [p.value.copy() for p in model.parameters()], step.evaluate(xs, ys)))
    tol = 1e-12 if dtype == "float64" else 2e-5
    (l0, p0, e0), (l1, p1, e1) = results
    np.testing.assert_allclose(l1, l0, rtol=tol, atol=tol)
    for a, b in zip(p1, p0):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_allclose(e1, e0, rtol=tol, atol=tol)


def test_numba_step_fuses_the_update_and_keeps_the_numpy_names():
    model, X, Y, loss = _mlp()
    step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[X, Y], backend="numba")
    src = step.source
    assert step.whole and step.kernels and all(f"# ---- {k.name}:" in src for k in step.kernels)
    driver, core = src.split("# ---- ")[:2]
    assert "seq_0_W = _param" in driver and "_r = _core(" in driver
    # the optimizer update of a weight is one kernel call writing into the param's own array
    assert re.search(r"\n +seq_0_W = _ck\d+\(_nk_\w+, .*, seq_0_W\)\n", core), core
    assert "# grad of: seq.0.W" in core and "matmul_into(" in core  # one BLAS gemm per product
    numpy_src = sg.compile_step(loss, sg.optim.Adam(lr=0.01), inputs=[X, Y]).source
    assert "# grad of: seq.0.W" in numpy_src
    assert isinstance(step.compile_seconds, float) and step.jit_seconds is None
    step(np.ones((2, 3)), np.ones((2, 2)))
    assert step.jit_seconds > 0


@pytest.mark.parametrize("opt_name,whole", [("Adam", True), ("Adam", False), ("SGD", True)])
def test_numba_optimizer_state_is_updated_in_its_params_kernel(opt_name, whole):
    """A new optimizer state read only by its param's update (Adam's m and v, a momentum) is computed in
    that update's loop and written into the state's array there: one kernel call per param, no call of
    its own, and the states after a few steps equal the NumPy backend's."""
    opt = lambda: sg.optim.Adam(lr=0.01) if opt_name == "Adam" else sg.optim.SGD(lr=0.05, momentum=0.9)  # noqa: E731
    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    got = {}
    for backend in ("numpy", "numba"):
        model, X, Y, loss = _mlp()
        kw = {"whole": whole} if backend == "numba" else {}
        step = sg.compile_step(loss, opt(), inputs=[X, Y], backend=backend, **kw)
        for _ in range(3):
            step(xs, ys)
        got[backend] = ([a.copy() for a in step._state_list], [p.value.copy() for p in model.parameters()], step)
    (s0, p0, _), (s1, p1, step) = got["numpy"], got["numba"]
    assert len(s1) == len(s0) == (8 if opt_name == "Adam" else 4)
    for a, b in zip(s1 + p1, s0 + p0):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert step.whole == whole
    state = "adam_m_" if opt_name == "Adam" else "sgd_b_"
    for name in ("seq_0_W", "seq_0_b", "seq_2_W", "seq_2_b"):  # the state is no kernel's result, only an input
        assert not re.search(rf"\n +{state}{name} = _nk_", step.source), step.source
        assert re.search(rf"\n +{name} = (_ck\d+\()?_nk_\w+(\(|, ){state}{name}\b", step.source), step.source
    assert "also writes x0, x3" in step.source if opt_name == "Adam" else "also writes x0" in step.source


def test_numba_kernels_are_cached_on_disk_by_source_hash(tmp_path, monkeypatch):
    import os
    from symgrad.backends import numba_kernels
    monkeypatch.setenv("SYMGRAD_CACHE", str(tmp_path))
    monkeypatch.setenv("SYMGRAD_NUMBA_CACHE", "1")
    x = sg.var("x", shape=("n",))
    f = sg.compile(sg.exp(x) * 3.0 - x, [x], backend="numba")
    (k,) = f.kernels
    path = os.path.join(tmp_path, "numba", f"k_{numba_kernels.digest(k.source)}.py")
    with open(path, encoding="utf-8") as fh:
        assert fh.read() == k.source
    xs = np.array([0.0, 1.0, -2.0])
    np.testing.assert_allclose(f(xs), np.exp(xs) * 3.0 - xs, rtol=1e-15)
    # Numba saved the compiled kernel next to its file (its index and object code)
    saved = os.listdir(os.path.join(tmp_path, "numba", "__pycache__"))
    assert any(n.startswith(f"k_{numba_kernels.digest(k.source)}") and n.endswith(".nbi") for n in saved), saved
    # the same expression again is the same kernel object (in-process cache keyed by the source's hash)
    g = sg.compile(sg.exp(x) * 3.0 - x, [x], backend="numba")
    assert g.kernels[0].fn is k.fn


def test_numba_random_nodes_draw_what_the_numpy_backend_draws():
    model, X, Y, loss = _mlp(dropout=True)
    xs, ys = np.ones((4, 3)), np.zeros((4, 2))
    got = []
    for backend in ("numpy", "numba"):
        step = sg.compile_step(loss, sg.optim.SGD(lr=0.1), inputs=[X, Y], seed=3, backend=backend)
        got.append(step.evaluate(xs, ys))
        assert not getattr(step, "whole", False)  # random draws: a driver calling kernels, not a whole core
    assert got[0] == pytest.approx(got[1], rel=1e-13)
    f_np = sg.compile(loss, [X, Y], seed=1)
    f_nb = sg.compile(loss, [X, Y], seed=1, backend="numba")
    assert f_np(xs, ys) == pytest.approx(f_nb(xs, ys), rel=1e-13)


def test_unknown_backend_and_missing_extra_are_typed_errors(monkeypatch):
    from symgrad import backends
    x = sg.var("x")
    with pytest.raises(GraphError, match="unknown backend 'cuda'.*'numba'"):
        sg.compile(x * 2.0, [x], backend="cuda")
    monkeypatch.setitem(backends.BACKENDS, "fake", backends.Backend("symgrad.backends.fake", "no_such_pkg_xyz",
                                                                     "fake"))
    with pytest.raises(DependencyError, match=r"symgrad\[fake\]"):
        sg.compile_step(x * x, sg.optim.SGD(lr=0.1), inputs=[x], backend="fake")
    assert get_backend("numba").compile is not None
