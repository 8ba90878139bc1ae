"""The JAX backend (``backend="jax"``): compiled == evaluated for every op case, float32 kept
float32, training steps equal to the NumPy backend's for every optimizer, random nodes from keys,
buffers (batch norm), loops (``jax.lax.scan``) and a data-parallel step over two host devices.

XLA compiles each jitted function once, which costs far more than running it, so the op cases are
checked in groups: one compiled function computes every case of a group (its inputs side by side),
and each case's outputs are compared with ``sg.evaluate`` of that case alone."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import symgrad as sg  # noqa: E402
from symgrad.backends import jax_backend  # noqa: E402
from symgrad.errors import OpDefinitionError  # noqa: E402

from test_codegen import ANY, CASES, _case_graph, _value  # noqa: E402

GROUPS = 12
#: XLA options that compile several times faster (code that runs once): the emitted code is under test here
FAST = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
_GROUPS = [CASES[k::GROUPS] for k in range(GROUPS)]


def _group_ids(group) -> str:
    return ",".join(sorted({c[0] for c in group}))[:60]


def _group_graph(group, seed):
    """Every case of ``group``: its inputs, outputs and feeds, and where its outputs lie in the whole."""
    xs, outputs, feeds, spans = [], [], [], []
    for case in group:
        rng = np.random.default_rng(abs(hash((case[0], str(case[1]), seed))) % 2**32)
        cx, cout, cfeeds = _case_graph(case, rng, f"c{len(spans)}_")
        spans.append((case, cx, cout, len(outputs), len(xs)))
        xs += cx
        outputs += cout
        feeds += cfeeds
    return xs, outputs, feeds, spans


def _check(got, feeds, spans, tol, dtype=None):
    for case, cx, cout, at, xat in spans:
        name, shapes = case[0], case[1]
        fed = [f.astype(np.float64) if f.dtype.kind == "f" else f for f in feeds[xat:xat + len(cx)]]
        want = sg.evaluate(cout, dict(zip(cx, fed)))
        for k, w in enumerate(want):
            g = got[at + k]
            if dtype is not None:
                assert np.asarray(g).dtype == dtype, (name, shapes, k)
            g, w = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
            assert g.shape == w.shape, f"{name} {shapes} output {k}: shape {g.shape} != {w.shape}"
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"{name} {shapes} output {k}")


@pytest.mark.parametrize("group", _GROUPS, ids=[_group_ids(g) for g in _GROUPS])
def test_jax_compiled_equals_evaluate_for_every_op(group):
    xs, outputs, feeds, spans = _group_graph(group, 0)
    f = jax_backend.compile(outputs, inputs=xs, compiler_options=FAST)
    _check(f(*feeds), feeds, spans, 1e-12)
    if group is not _GROUPS[0]:
        return
    # another size of the named dim: the same function (traced again by jax.jit); one group is enough
    rng = np.random.default_rng(1)
    feeds2 = []
    for case, cx, *_ in spans:
        domain = case[3]
        feeds2 += [_value(tuple(3 if d == "batch" else d for d in x.shape), domain[i] if i < len(domain) else ANY,
                          rng, x.dtype) for i, x in enumerate(cx)]
    _check(f(*feeds2), feeds2, spans, 1e-12)


@pytest.mark.parametrize("group", _GROUPS, ids=[_group_ids(g) for g in _GROUPS])
def test_jax_float32_compiles_every_op_in_float32(group):
    xs, outputs, feeds, spans = _group_graph(group, 7)
    feeds = [f.astype(np.float32) if f.dtype.kind == "f" else f for f in feeds]
    got = jax_backend.compile(outputs, inputs=xs, dtype="float32", compiler_options=FAST)(*feeds)
    _check(got, feeds, spans, 2e-5, np.float32)


# ------------------------------------------------------------------ a missing JAX form
def test_op_without_a_jax_form_raises_a_typed_error_naming_op_and_backend():
    from symgrad.ops.base import OpDef, apply
    op = OpDef("cg_no_jax_form", 1, lambda nodes: nodes[0].shape, lambda x: x + 1.0, lambda x: x, vjp=None,
               label="nj")  # not registered: the registry's coverage meta-test stays as it is
    x = sg.var("x", shape=(2,))
    with pytest.raises(OpDefinitionError, match=r"backend 'jax': op 'cg_no_jax_form' has no JAX form"):
        sg.compile(apply(op, x), [x], backend="jax")


# ------------------------------------------------------------------ training steps
def _mlp(seed=0, n_in=3, hidden=4, n_out=2, tag="m"):
    rng = np.random.default_rng(seed)
    W1 = sg.param(f"{tag}.W1", rng.normal(size=(n_in, hidden)) * 0.5)
    b1 = sg.param(f"{tag}.b1", rng.normal(size=(hidden,)) * 0.1)
    W2 = sg.param(f"{tag}.W2", rng.normal(size=(hidden, n_out)) * 0.5)
    X, Y = sg.var("X", shape=("batch", n_in)), sg.var("Y", shape=("batch", n_out))
    out = sg.tanh(X @ W1 + b1) @ W2
    return X, Y, [W1, b1, W2], sg.losses.mse(out, Y), out


OPTIMIZERS = {
    "SGD": lambda: sg.optim.SGD(lr=0.1),
    "SGD-momentum-nesterov-decay": lambda: sg.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "AdaGrad": lambda: sg.optim.AdaGrad(lr=0.1),
    "RMSProp": lambda: sg.optim.RMSProp(lr=0.01, momentum=0.5),
    "Adam": lambda: sg.optim.Adam(lr=0.01),
    "AdamW-clip": lambda: sg.optim.AdamW(lr=0.01, weight_decay=0.1, clip_norm=0.5),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jax_step_equals_numpy_step_for_every_optimizer(name):
    rng = np.random.default_rng(3)
    xs, ys = rng.normal(size=(4, 8, 3)), rng.normal(size=(4, 8, 2))
    runs = {}
    for backend in ("numpy", "jax"):
        X, Y, params, loss, out = _mlp()
        if backend == "numpy":
            step = sg.compile_step(loss, OPTIMIZERS[name](), [X, Y], [out])
        else:
            step = jax_backend.compile_step(loss, OPTIMIZERS[name](), [X, Y], [out], compiler_options=FAST)
        ids = [id(p.value) for p in params]
        losses = [step(x, y) for x, y in zip(xs, ys)]
        assert [id(p.value) for p in params] == ids  # updated in place: the same arrays
        runs[backend] = (losses, [p.value.copy() for p in params], step)
    (l_np, p_np, s_np), (l_jax, p_jax, s_jax) = runs["numpy"], runs["jax"]
    for (a, oa), (b, ob) in zip(l_np, l_jax):
        assert isinstance(b, float)
        np.testing.assert_allclose(b, a, rtol=1e-12)
        np.testing.assert_allclose(ob, oa, rtol=1e-12, atol=1e-14)
    for a, b in zip(p_np, p_jax):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    assert s_jax.t == 4 and s_jax.state.keys() == s_np.state.keys()
    for k in s_np.state:
        for m in s_np.state[k]:
            np.testing.assert_allclose(s_jax.state[k][m], s_np.state[k][m], rtol=1e-12, atol=1e-14)
    s_jax.reset()
    assert s_jax.t == 0 and all(not a.any() for g in s_jax.state.values() for a in g.values())


def test_jax_step_float32_and_device_resident_params_sync_back():
    rng = np.random.default_rng(4)
    xs, ys = rng.normal(size=(3, 8, 3)), rng.normal(size=(3, 8, 2))
    X, Y, params, loss, _ = _mlp(tag="a")
    ref = sg.compile_step(loss, sg.optim.Adam(lr=0.01), [X, Y])
    want = [ref(x, y) for x, y in zip(xs, ys)]
    # float32: losses and params within float32 rounding of the float64 NumPy step
    X, Y, params32, loss, _ = _mlp(tag="a")
    s32 = jax_backend.compile_step(loss, sg.optim.Adam(lr=0.01), [X, Y], dtype="float32", compiler_options=FAST)
    got = [s32(x, y) for x, y in zip(xs, ys)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for p, q in zip(params32, params):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-5, atol=1e-6)
    # sync=False: params stay on the device until step.sync()
    X, Y, params_dev, loss, _ = _mlp(tag="a")
    before = [p.value.copy() for p in params_dev]
    sd = jax_backend.compile_step(loss, sg.optim.Adam(lr=0.01), [X, Y], sync=False, compiler_options=FAST)
    losses = [sd(x, y) for x, y in zip(xs, ys)]
    assert isinstance(losses[0], jax.Array)
    np.testing.assert_allclose([float(v) for v in losses], want, rtol=1e-12)
    for p, b in zip(params_dev, before):
        np.testing.assert_array_equal(p.value, b)
    sd.sync()
    for p, q in zip(params_dev, params):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sd.state["a.W1"]["adam_m_W1"] if "adam_m_W1" in sd.state["a.W1"] else
                               next(iter(sd.state["a.W1"].values())), next(iter(ref.state["a.W1"].values())),
                               rtol=1e-12, atol=1e-14)


def test_jax_step_updates_batch_norm_running_statistics_as_numpy_does():
    rng = np.random.default_rng(5)
    xs, ys = rng.normal(size=(3, 6, 3)) * 2 + 1, rng.normal(size=(3, 6, 2))
    results = []
    for backend in ("numpy", "jax"):
        model = sg.nn.Sequential(sg.nn.Linear(3, 4, seed=1), sg.nn.BatchNorm1d(4), sg.nn.Linear(4, 2, seed=2))
        X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 2))
        loss = sg.losses.mse(model(X), Y)
        kw = dict(compiler_options=FAST) if backend == "jax" else {}
        make = jax_backend.compile_step if backend == "jax" else sg.compile_step
        step = make(loss, sg.optim.SGD(lr=0.1, momentum=0.9), [X, Y], **kw)
        losses = [step(x, y) for x, y in zip(xs, ys)]
        assert len(step.buffers) == 2
        results.append((losses, [b.value.copy() for b in step.buffers], [p.value.copy() for p in step.params]))
    (l0, b0, p0), (l1, b1, p1) = results
    np.testing.assert_allclose(l1, l0, rtol=1e-12)
    assert not np.allclose(b1[0], 0.0) and not np.allclose(b1[1], 1.0)  # the statistics did move
    for a, b in zip(b0 + p0, b1 + p1):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ random nodes
def test_jax_random_nodes_are_drawn_from_a_key_that_seed_resets():
    x = sg.var("x", shape=("batch", 200))
    y = sg.dropout(x, 0.25)
    eps = sg.random.normal(like=x) * 2.0 + 1.0
    (dx,) = sg.grad(sg.sum(y), [x])
    f = sg.compile([y, dx, eps], [x], backend="jax", seed=3)
    ones = np.ones((50, 200))
    y1, d1, e1 = f(ones)
    y2, _, _ = f(ones)
    # inverted dropout: kept entries are x / (1 − p), about a quarter dropped; the gradient is the same mask
    assert set(np.unique(y1.round(12))) == {0.0, round(1 / 0.75, 12)}
    assert abs((y1 == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(d1, y1)
    assert abs(e1.mean() - 1.0) < 0.05 and abs(e1.std() - 2.0) < 0.05
    assert not np.array_equal(y1, y2)  # each call splits the key: fresh masks
    f.seed(3)
    np.testing.assert_array_equal(f(ones)[0], y1)
    g = sg.compile([y, dx, eps], [x], backend="jax", seed=3)  # the same seed, the same draws
    np.testing.assert_array_equal(g(ones)[2], e1)
    assert "jax.random.bernoulli" in f.source and "jax.random.normal" in f.source


# ------------------------------------------------------------------ loops
@pytest.mark.parametrize("cell", ["RNN", "LSTM"])
def test_jax_scan_values_and_gradients_equal_evaluate(cell):
    layer = getattr(sg.nn, cell)(3, 4, seed=0)
    x = sg.var("x", shape=("batch", "seq", 3))
    out, _ = layer(x)
    loss = sg.sum(out * out)
    params = list(layer.parameters()) if hasattr(layer, "parameters") else sg.Graph(loss).params
    grads = sg.grad(loss, [x] + params)
    xs = np.random.default_rng(6).normal(size=(2, 5, 3))
    want = sg.evaluate([out, loss] + grads, {x: xs})
    f = sg.compile([out, loss] + grads, [x], backend="jax")
    assert "jax.lax.scan(" in f.source
    for g, w in zip(f(xs), want):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)


# ------------------------------------------------------------------ several devices
_TWO_DEVICES = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, numpy as np, symgrad as sg
    from symgrad.backends import jax_backend
    assert len(jax.devices()) == 2, jax.devices()

    def run(devices):
        rng = np.random.default_rng(0)
        W1 = sg.param("W1", rng.normal(size=(3, 8)) * 0.5)
        W2 = sg.param("W2", rng.normal(size=(8, 2)) * 0.5)
        X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 2))
        loss = sg.losses.mse(sg.tanh(X @ W1) @ W2, Y)
        step = sg.compile_step(loss, sg.optim.Adam(lr=0.01), [X, Y], backend="jax", devices=devices)
        data = np.random.default_rng(1)
        losses = [step(data.normal(size=(16, 3)), data.normal(size=(16, 2))) for _ in range(5)]
        return losses, [W1.value.copy(), W2.value.copy()], step

    l1, p1, _ = run(None)
    l2, p2, step = run(jax.devices())
    print("losses", max(abs(a - b) for a, b in zip(l1, l2)))
    print("params", max(float(abs(a - b).max()) for a, b in zip(p1, p2)))
    print("sharded", step._place.mesh.shape)
""")


def test_jax_data_parallel_step_over_two_host_devices_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True, env=env, cwd=here,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in res.stdout.splitlines())
    assert float(lines["losses"]) < 1e-12 and float(lines["params"]) < 1e-12
    assert "('batch', 2)" in lines["sharded"]


# ------------------------------------------------------------------ the source
def test_jax_source_names_values_as_the_numpy_backend_does():
    X, Y, params, loss, out = _mlp(tag="mlp")
    step_np = sg.compile_step(loss, sg.optim.SGD(lr=0.1), [X, Y])
    step_jax = sg.compile_step(loss, sg.optim.SGD(lr=0.1), [X, Y], backend="jax")
    for line in ("# grad of: mlp.W1", "# grad of: mlp.W2", "# update of mlp.W1"):
        assert line in step_np.source and line in step_jax.source
    assert "dL_dmlp_W1 = " in step_jax.source and "out=" not in step_jax.source
    assert "mlp_W1 = params[0]  # param mlp.W1" in step_jax.source


def test_backend_options_reach_the_jax_backend_and_the_numpy_backend_refuses_them():
    X, Y, params, loss, out = _mlp(tag="o")
    step = sg.compile_step(loss, sg.optim.SGD(lr=0.1), [X, Y], backend="jax", sync=False, compiler_options=FAST)
    assert isinstance(step, jax_backend.JaxStep) and step._sync is False
    with pytest.raises(sg.errors.GraphError, match="backend 'numpy' takes no option"):
        sg.compile_step(loss, sg.optim.SGD(lr=0.1), [X, Y], devices=None)


# ------------------------------------------------------------------ compile times and the on-disk cache
def test_jax_step_reports_its_compile_and_first_call_seconds():
    X, Y, params, loss, out = _mlp(tag="timed")
    step = sg.compile_step(loss, sg.optim.SGD(lr=0.1), [X, Y], backend="jax", compiler_options=FAST)
    assert isinstance(step.compile_seconds, float) and step.compile_seconds > 0 and step.jit_seconds is None
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
    step(xs, ys)
    first = step.jit_seconds
    assert first > 0
    step(xs, ys)
    assert step.jit_seconds == first  # the first call's time, kept
    f = sg.compile(out, [X], backend="jax", compiler_options=FAST)
    assert f.jit_seconds is None
    f(xs)
    assert f.jit_seconds > 0 and f.compile_seconds > 0


_CACHED = textwrap.dedent("""
    import os, sys, jax
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # cache even quick compiles
    import numpy as np, symgrad as sg
    W = sg.param("W", np.full((3, 2), 0.5))
    X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 2))
    step = sg.compile_step(sg.losses.mse(sg.tanh(X @ W), Y), sg.optim.SGD(lr=0.1), [X, Y], backend="jax")
    loss = step(np.ones((4, 3)), np.zeros((4, 2)))
    folder = jax.config.jax_compilation_cache_dir
    print("dir", folder)
    print("files", len(os.listdir(folder)) if folder else 0)
    print("loss", repr(loss))
""")


def test_jax_backend_keeps_xla_compiles_in_symgrads_cache_folder_unless_turned_off(tmp_path):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = []
    for off in ("1", "1", "0"):  # twice with the cache (the second loads what the first saved), once without
        env = dict(os.environ, SYMGRAD_CACHE=str(tmp_path), SYMGRAD_JAX_CACHE=off, JAX_PLATFORMS="cpu")
        res = subprocess.run([sys.executable, "-c", _CACHED], capture_output=True, text=True, env=env, cwd=here,
                             timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        runs.append(dict(line.split(" ", 1) for line in res.stdout.splitlines()))
    assert runs[0]["dir"] == str(tmp_path / "jax") and int(runs[0]["files"]) > 0
    assert runs[1]["files"] == runs[0]["files"]  # nothing new compiled: every computation came from the cache
    assert runs[2]["dir"] == "None"
    assert runs[0]["loss"] == runs[1]["loss"] == runs[2]["loss"]
