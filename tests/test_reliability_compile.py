"""Reliability of compiled and evaluated code: threads, user values that must not reach the generated
source, graphs without ops, generated names that could meet the function's own, losses and softmax at
extreme and infinite logits, gradients at removable singularities, value checks (class indices, bce
targets) alike in sg.evaluate and compiled functions."""
from __future__ import annotations

import ast
import math
import threading
import warnings

import numpy as np
import pytest

import symgrad as sg
from symgrad.ops import REGISTRY, apply
from symgrad.ops.declare import elementwise_op

MARK = "HOSTILE_MARK"


def _code(source: str) -> str:
    """The source without comments."""
    return "\n".join(ln.split("#")[0] for ln in source.splitlines())


def _calls(source: str) -> set[str]:
    """Names of the functions the generated source calls by a plain name."""
    return {n.func.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


# ------------------------------------------------------------------ threads
def _mlp(seed: int):
    X, Y = sg.var("X", shape=("batch", 8)), sg.var("Y", shape=("batch",), dtype="int")
    W1 = sg.param("W1", shape=(8, 16), init="xavier", seed=seed)
    b1 = sg.param("b1", shape=(16,))
    W2 = sg.param("W2", shape=(16, 5), init="xavier", seed=seed + 1)
    return X, Y, [W1, b1, W2], sg.losses.cross_entropy(sg.tanh(X @ W1 + b1) @ W2, Y)


def _batch():
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 8)), rng.integers(0, 5, size=64)


def _run_threads(work, n_threads: int = 2) -> None:
    errors: list[BaseException] = []

    def run():
        try:
            work()
        except BaseException as e:  # noqa: BLE001  re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_step_called_from_two_threads_equals_two_sequential_runs(dtype):
    """A step keeps work buffers, Adam state and updates params in place: its calls are serialised.
    Both threads feed the same batch, so every order of the calls gives the same result."""
    xb, yb = _batch()
    calls = 30
    X, Y, params, L = _mlp(0)
    step = sg.compile_step(L, sg.optim.Adam(lr=1e-2), inputs=[X, Y], dtype=dtype)
    if dtype == "float32":  # a float64 master held in a float32 working array, too
        params[1].value = params[1].value.astype(np.float64)
    losses: list[float] = []
    _run_threads(lambda: losses.extend(step(xb, yb) for _ in range(calls)))

    X2, Y2, params2, L2 = _mlp(0)
    ref = sg.compile_step(L2, sg.optim.Adam(lr=1e-2), inputs=[X2, Y2], dtype=dtype)
    want = [ref(xb, yb) for _ in range(2 * calls)]
    assert step.t == ref.t == 2 * calls
    assert sorted(losses) == sorted(want)
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p.value, q.value)
    for name in step.state:
        for k in step.state[name]:
            np.testing.assert_array_equal(step.state[name][k], ref.state[name][k])
    assert "lock" in type(step).__doc__  # the docstring says what a step does with threads


def test_step_evaluate_in_another_thread_sees_whole_steps():
    """``step.evaluate`` takes the step's lock: run beside training it returns a loss the sequential
    run passes through (the params before or after some step), never one of half-updated params."""
    xb, yb = _batch()
    X, Y, params, L = _mlp(3)
    step = sg.compile_step(L, sg.optim.SGD(lr=0.5), inputs=[X, Y])
    X2, Y2, params2, L2 = _mlp(3)
    ref = sg.compile_step(L2, sg.optim.SGD(lr=0.5), inputs=[X2, Y2])
    passed = {ref.evaluate(xb, yb)}
    for _ in range(20):
        ref(xb, yb)
        passed.add(ref.evaluate(xb, yb))
    seen: list[float] = []
    started, done = threading.Event(), threading.Event()

    def train():
        started.wait()
        for _ in range(20):
            step(xb, yb)
        done.set()

    def watch():
        started.set()
        while True:
            seen.append(step.evaluate(xb, yb))
            if done.is_set():
                break

    threads = [threading.Thread(target=train), threading.Thread(target=watch)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen and set(seen) <= passed


def test_compiled_function_called_from_two_threads_equals_sequential_calls():
    """A compiled function keeps no buffers between calls: concurrent calls give the sequential results."""
    X, Y, params, L = _mlp(1)
    f = sg.compile([L] + sg.grad(L, params), inputs=[X, Y])
    rng = np.random.default_rng(1)
    batches = [(rng.normal(size=(64, 8)), rng.integers(0, 5, size=64)) for _ in range(6)]
    want = [f(*b) for b in batches]
    got: dict[int, list] = {}
    lock = threading.Lock()

    def work():
        for _ in range(5):
            for k, b in enumerate(batches):
                out = f(*b)
                with lock:
                    got.setdefault(k, []).append(out)

    _run_threads(work, 3)
    for k, outs in got.items():
        assert len(outs) == 15
        for out in outs:
            for g, w in zip(out, want[k]):
                np.testing.assert_array_equal(g, w)
    assert "_ws" not in f.source  # no work arrays kept between calls


# ------------------------------------------------ user values and the source
class _HostileInt(int):
    def __repr__(self):
        return f"__import__('os').system('echo {MARK}')"

    __str__ = __repr__

    def __format__(self, spec):
        return repr(self)


class _HostileFloat(float):
    def __repr__(self):
        return f"__import__('os').system('echo {MARK}')"

    __str__ = __repr__

    def __format__(self, spec):
        return repr(self)


class _HostileTuple(tuple):
    def __repr__(self):
        return f"__import__('os').system('echo {MARK}')"

    __str__ = __repr__


def test_one_hot_class_count_of_an_int_subclass_never_reaches_the_source():
    y = sg.var("y", shape=("batch",), dtype="int")
    oh = sg.one_hot(y, _HostileInt(3))
    assert type(oh.attr("num_classes")) is int  # converted when the node is made
    f = sg.compile(oh * 2.0, inputs=[y])
    assert MARK not in f.source
    np.testing.assert_array_equal(f(np.array([0, 2])), [[2.0, 0, 0], [0, 0, 2.0]])
    with pytest.raises(sg.FeedError, match=r"class index out of range \[0, 3\)"):
        f(np.array([3]))


def test_one_hot_refuses_bool_and_non_integer_class_counts():
    y = sg.var("y", shape=(2,), dtype="int")
    for bad in (True, 2.0, "3", None, np.float64(3.0)):
        with pytest.raises(sg.ShapeError, match="num_classes must be an int"):
            sg.one_hot(y, bad)
    with pytest.raises(sg.ShapeError, match="positive"):
        sg.one_hot(y, 0)
    oh = sg.one_hot(y, np.int64(4))  # NumPy integers are ints
    assert type(oh.attr("num_classes")) is int and oh.shape == (2, 4)


def test_attr_values_of_subclasses_and_numpy_scalars_never_reach_the_code():
    x = sg.var("x", shape=(2, 3))
    hi = _HostileInt
    graphs = [sg.leaky_relu(x, _HostileFloat(0.1)), sg.sum(x, axis=hi(1)), sg.max(x, axis=_HostileTuple((hi(0),))),
              sg.mean(x, axis=_HostileTuple((hi(0), hi(1))), keepdims=True), sg.reshape(x, _HostileTuple((hi(3), hi(2)))),
              sg.transpose(x, _HostileTuple((hi(1), hi(0)))), sg.expand_dims(x, hi(0)), x * _HostileFloat(2.0),
              x * np.float32(2.0), sg.leaky_relu(x, np.float32(0.25)), sg.softmax(x, axis=hi(0)),
              sg.sum(x, axis=np.int64(1))]
    xv = np.arange(6.0).reshape(2, 3) - 2.5
    for out in graphs:
        f = sg.compile(out, inputs=[x])
        assert MARK not in f.source, f.source
        np.testing.assert_allclose(f(xv), sg.evaluate(out, {x: xv}), rtol=1e-15)


# ------------------------------------------------------- graphs without ops
def test_compiling_a_graph_without_ops_gives_a_valid_function():
    x = sg.var("x")
    w = sg.param("w", 1.5)
    for out, want in [(x, 2.0), (x + 0.0, 2.0), (-(-x), 2.0), (x * 1.0, 2.0)]:
        f = sg.compile(out, inputs=[x])
        assert float(f(2.0)) == want
    assert float(sg.compile(w, inputs=[x])(2.0)) == 1.5
    assert float(sg.compile(sg.const(3.0), inputs=[])()) == 3.0
    got = sg.compile([x, -(-x)], inputs=[x])(np.float64(4.0))
    assert [float(v) for v in got] == [4.0, 4.0]
    X = sg.var("X", shape=("batch", 2))
    np.testing.assert_array_equal(sg.compile(X + 0.0, inputs=[X])([[1, 2]]), [[1.0, 2.0]])


# ----------------------------------------------------------- generated names
def test_a_step_returning_relu_prime_does_not_call_itself():
    """relu′ is the op ``step``, the name of a training step's function: it is bound under another name."""
    x = sg.var("x", shape=(3,))
    w = sg.param("w", np.array([1.0, -2.0, 3.0]))
    relu_prime = sg.grad(sg.sum(sg.relu(x)), x)  # relu′(x) = step(x)
    assert any(n.op is REGISTRY["step"] for n in sg.Graph(relu_prime).order)
    loss = sg.sum(sg.relu(w * x))
    step = sg.compile_step(loss, sg.optim.SGD(lr=0.1), inputs=[x], outputs=[relu_prime])
    tree = ast.parse(step.source)
    assert tree.body[0].name == "step" and "step" not in _calls(step.source)
    xv = np.array([1.0, -2.0, -3.0])
    got_loss, got_prime = step(xv)
    assert got_loss == pytest.approx(1.0 + 4.0)
    np.testing.assert_array_equal(got_prime, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(w.value, [1.0 - 0.1, -2.0 + 0.2, 3.0])


def test_a_custom_op_named_fn_does_not_recurse():
    """A user op called ``fn``, the name of a compiled function: the op is bound under another name."""
    before = dict(REGISTRY)
    try:
        elementwise_op("fn", lambda t: t ** 3 + 1, lambda a: a ** 3 + 1.0, label="fn", vjp=None)
        x = sg.var("x", shape=(3,))
        out = apply("fn", x)
        f = sg.compile(out, inputs=[x])
        assert ast.parse(f.source).body[0].name == "fn" and "fn" not in _calls(f.source)
        np.testing.assert_array_equal(f(np.array([1.0, 2.0, -1.0])), [2.0, 9.0, 0.0])
    finally:
        REGISTRY.clear()
        REGISTRY.update(before)


# ------------------------------------------------- losses at extreme logits
def _xent_reference(logits, target: int) -> float:
    """logsumexp(z) − z[target] in exact arithmetic on floats (math.fsum), −∞ logits dropped."""
    z = [float(v) for v in logits]
    m = max(z)
    total = math.fsum(math.exp(v - m) for v in z if v != -math.inf)
    return math.log(total) + (m - z[target])


XENT_CASES = [
    ([-np.inf, 1.0, 0.0], 1),
    ([1e308, -1e308], 0),
    ([1e308, -1e308], 1),
    ([-1e308, 1e308, 0.0], 2),
    ([-np.inf, -np.inf, 3.0], 2),
    ([1.7e308, 1.7e308, -1.7e308], 0),
    ([2.0, -np.inf, 0.5], 0),
]


@pytest.mark.parametrize("logits,target", XENT_CASES)
def test_cross_entropy_is_exact_and_silent_for_extreme_and_minus_inf_logits(logits, target):
    z = sg.var("z", shape=("batch", len(logits)))
    y = sg.var("y", shape=("batch",), dtype="int")
    L = sg.losses.cross_entropy(z, y)
    dz = sg.grad(L, z)
    zv, yv = np.array([logits]), np.array([target])
    want = _xent_reference(logits, target)
    f = sg.compile([L, dz], inputs=[z, y])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            got_eval, grad_eval = sg.evaluate([L, dz], {z: zv, y: yv})
            got_comp, grad_comp = f(zv, yv)
    assert float(got_eval) == pytest.approx(want, rel=1e-15, abs=0) and float(got_comp) == float(got_eval)
    assert np.all(np.isfinite(grad_eval)) and np.all(np.isfinite(grad_comp))
    np.testing.assert_allclose(grad_comp, grad_eval, rtol=1e-15, atol=0)
    # the gradient is softmax − one-hot (a −∞ logit, or one below the max by more than the float range, gets 0)
    z = [float(v) for v in logits]
    e = [math.exp(v - max(z)) if v - max(z) > -math.inf else 0.0 for v in z]
    np.testing.assert_allclose(grad_eval[0], np.array(e) / math.fsum(e) - np.eye(len(z))[target], atol=1e-15)


def test_cross_entropy_with_probability_rows_and_a_minus_inf_logit_is_finite():
    z = sg.var("z", shape=("batch", 3))
    t = sg.var("t", shape=("batch", 3))
    L = sg.losses.cross_entropy(z, t)
    zv, tv = np.array([[-np.inf, 1.0, 0.0]]), np.array([[0.0, 0.25, 0.75]])
    lse = 1.0 + math.log1p(math.exp(-1.0))
    want = 0.25 * (lse - 1.0) + 0.75 * lse
    f = sg.compile(L, inputs=[z, t])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(sg.evaluate(L, {z: zv, t: tv})) == pytest.approx(want, rel=1e-15)
        assert float(f(zv, tv)) == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_and_log_softmax_are_exact_and_silent_for_extreme_finite_logits(dtype):
    big = float(np.finfo(dtype).max)
    z = sg.var("z", shape=(4,))
    outs = [sg.softmax(z), sg.log_softmax(z)]
    f = sg.compile(outs, inputs=[z], dtype=dtype)
    zv = np.array([big, -big, 0.0, big], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            for sm, lsm in (sg.evaluate(outs, {z: zv}), f(zv)):
                np.testing.assert_array_equal(sm, [0.5, 0.0, 0.0, 0.5])
                assert lsm[0] == lsm[3] == pytest.approx(-math.log(2), rel=1e-6)
                assert lsm[1] == -np.inf and lsm[2] == pytest.approx(-big, rel=1e-6)
            sm, lsm = sg.evaluate(outs, {z: np.array([-np.inf, 1.0, 0.0, -np.inf])})
    p1 = 1.0 / (1.0 + math.exp(-1.0))
    np.testing.assert_allclose(sm, [0.0, p1, 1.0 - p1, 0.0], rtol=1e-15)
    np.testing.assert_allclose(lsm, [-np.inf, math.log(p1), math.log1p(-p1), -np.inf], rtol=1e-15)


def test_bce_bce_with_logits_and_mse_at_extreme_inputs_are_exact_and_silent():
    p, z, y = sg.var("p", shape=(4,)), sg.var("z", shape=(4,)), sg.var("y", shape=(4,))
    w = sg.param("w", 1.0)
    bce, bcel, mse = sg.losses.bce(p * w, y), sg.losses.bce_with_logits(z * w, y), sg.losses.mse(z * w, y)
    outs = [bce, bcel] + sg.grad(bce, [w]) + sg.grad(bcel, [w])
    f = sg.compile(outs, inputs=[p, z, y])
    pv = np.array([0.0, 1.0, 1e-300, 1.0 - 1e-16])
    zv = np.array([1e308, -1e308, 1e-300, -1.7e308])
    yv = np.array([1.0, 0.0, 0.5, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            got = f(pv, zv, yv)
            want = sg.evaluate(outs, {p: pv, z: zv, y: yv})
    for g, v in zip(got, want):
        assert np.isfinite(g) and float(g) == float(v)
    # references: the logs clamped at −100 as PyTorch's BCELoss; softplus(z) − y·z for logits
    ref_bce = math.fsum([100.0, 100.0, 50.0, -math.log(pv[3])]) / 4
    assert float(got[0]) == pytest.approx(ref_bce, rel=1e-15)
    ref_bcel = math.fsum([0.0, 0.0, math.log(2.0), 1.7e308]) / 4
    assert float(got[1]) == pytest.approx(ref_bcel, rel=1e-15)
    # mse: exact while the square is a float; beyond, it is ∞ (the rounded value), never NaN
    zm = np.array([1e154, -1e153, 0.5, 0.0])
    ym = np.array([0.0, 0.0, 1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got_mse = float(sg.evaluate(mse, {z: zm, y: ym}))
        assert float(sg.compile(mse, inputs=[z, y])(zm, ym)) == got_mse
    assert got_mse == pytest.approx(math.fsum([1e308, 1e306, 0.25, 1.0]) / 4, rel=1e-15)
    with np.errstate(over="ignore"):
        assert float(sg.evaluate(mse, {z: zv, y: yv})) == math.inf


def test_cross_entropy_matches_pytorch_at_minus_inf_and_extreme_logits():
    torch = pytest.importorskip("torch")
    z = sg.var("z", shape=("batch", 3))
    y = sg.var("y", shape=("batch",), dtype="int")
    L = sg.losses.cross_entropy(z, y)
    f = sg.compile(L, inputs=[z, y])
    for logits, target in [([-np.inf, 1.0, 0.0], 1), ([1e308, -1e308, 0.0], 0), ([1e308, -1e308, 0.0], 2)]:
        want = float(torch.nn.functional.cross_entropy(torch.tensor([logits], dtype=torch.float64),
                                                       torch.tensor([target])))
        assert float(f(np.array([logits]), [target])) == pytest.approx(want, rel=1e-15)
        assert float(sg.evaluate(L, {z: [logits], y: [target]})) == pytest.approx(want, rel=1e-15)


# ------------------------------------------------ gradients at singularities
def _grads(out, wrt, feeds):
    """The gradients by sg.evaluate and by a compiled function (NumPy may warn inside the branch a
    ``where`` discards)."""
    gs = sg.grad(out, wrt)
    ins = list(wrt)
    with np.errstate(all="ignore"):
        ev = sg.evaluate(gs, {k: v for k, v in feeds.items() if k in sg.Graph(gs)})
        comp = sg.compile(gs, inputs=ins)(*[feeds[v] for v in ins])
    return [float(v) for v in ev], [float(v) for v in comp]


def test_pow_gradients_at_removable_singularities_follow_pytorch():
    x, y = sg.var("x"), sg.var("y")
    cases = [  # (out, wrt, feeds, PyTorch's gradients)
        (x ** 0, [x], {x: 0.0}, [0.0]),  # d/dx x**0 = 0, also at 0
        (x ** y, [x, y], {x: 0.0, y: 0.0}, [0.0, 0.0]),  # exponent 0: 0; base 0, exponent >= 0: 0
        (x ** y, [x, y], {x: 0.0, y: 2.0}, [0.0, 0.0]),
        (x ** y, [x, y], {x: 0.0, y: 1.0}, [1.0, 0.0]),
        (sg.const(0.0) ** x, [x], {x: 1.5}, [0.0]),  # d/dx 0**x = 0 for x >= 0
        (sg.const(0.0) ** x, [x], {x: 0.0}, [0.0]),
        (x ** x, [x], {x: 0.0}, [0.0]),
        (x ** y, [x, y], {x: 2.0, y: 3.0}, [12.0, 8.0 * math.log(2.0)]),  # away from 0: as before
        (x ** y, [x, y], {x: 0.5, y: 0.0}, [0.0, math.log(0.5)]),
    ]
    for out, wrt, feeds, want in cases:
        ev, comp = _grads(out, wrt, feeds)
        assert ev == pytest.approx(want, rel=1e-15) and comp == ev, (out, feeds)


def test_pow_gradients_still_pass_finite_differences_with_variable_exponents():
    x, y = sg.var("x", shape=(3,)), sg.var("y", shape=(3,))
    out = sg.sum(x ** y + y ** x)
    feeds = {x: np.array([0.5, 1.5, 2.0]), y: np.array([0.3, 0.7, 2.0])}
    assert sg.check_grad(out, [x, y], feeds) < 1e-6
    c = sg.var("c", shape=(3,))
    with np.errstate(divide="ignore", invalid="ignore"):  # log 0 in the branch the mask discards
        assert sg.check_grad(sg.sum(sg.const([2.0, 0.0, 3.0]) ** c), [c], {c: np.array([0.5, 1.0, 2.0])}) < 1e-6


def test_max_with_a_nan_entry_sends_the_gradient_to_the_nan_entries():
    """As torch.max(): the max of a row holding NaN is NaN and its gradient goes to the NaN entries
    (shared when several); other rows are untouched."""
    X = sg.var("X", shape=(3, 3))
    xv = np.array([[1.0, np.nan, 3.0], [1.0, 5.0, 5.0], [np.nan, 0.0, np.nan]])
    g_rows = sg.grad(sg.sum(sg.max(X, axis=1)), X)
    g_all = sg.grad(sg.max(X), X)
    for g, want in [(g_rows, [[0, 1, 0], [0, 0.5, 0.5], [0.5, 0, 0.5]]),
                    (g_all, [[0, 1 / 3, 0], [0, 0, 0], [1 / 3, 0, 1 / 3]])]:
        np.testing.assert_allclose(sg.evaluate(g, {X: xv}), want, rtol=1e-15)
        np.testing.assert_allclose(sg.compile(g, inputs=[X])(xv), want, rtol=1e-15)
    assert sg.check_grad(sg.max(X), [X], {X: np.arange(9.0).reshape(3, 3)}) < 1e-6


# ------------------------------------------------------------- value checks
def test_bce_targets_outside_0_1_are_refused_where_the_value_is_known():
    x, y = sg.var("x", shape=(2,)), sg.var("y", shape=(2,))
    w = sg.param("w", 0.5)
    with pytest.raises(sg.GraphError, match=r"bce: input 1 must lie in \[0, 1\], got values 0\.\.5"):
        sg.losses.bce(sg.sigmoid(w * x), sg.const([0.0, 5.0]))
    with pytest.raises(sg.GraphError, match=r"bce_logits: input 1 must lie in \[0, 1\]"):
        sg.losses.bce_with_logits(w * x, sg.const([-0.5, 1.0]))
    for L in (sg.losses.bce(sg.sigmoid(w * x), y), sg.losses.bce_with_logits(w * x, y)):
        f = sg.compile(L, inputs=[x, y])
        step = sg.compile_step(L, sg.optim.SGD(lr=0.1), inputs=[x, y])
        xv, good, bad = np.array([1.0, 2.0]), np.array([0.0, 1.0]), np.array([0.0, 5.0])
        want = float(sg.evaluate(L, {x: xv, y: good}))
        assert float(f(xv, good)) == pytest.approx(want, rel=1e-15)
        with pytest.raises(sg.FeedError, match=r"feed for 'y'.*must lie in \[0, 1\], got values 0\.\.5"):
            sg.evaluate(L, {x: xv, y: bad})
        with pytest.raises(sg.FeedError, match=r"input 'y': values must lie in \[0, 1\]"):
            f(xv, bad)
        with pytest.raises(sg.FeedError, match=r"input 'y': values must lie in \[0, 1\]"):
            step(xv, -bad)
        assert w.value == 0.5 and step.t == 0  # refused before anything changed
        # a computed target is checked by sg.evaluate
        with pytest.raises(sg.FeedError, match="must lie in"):
            sg.evaluate(sg.losses.bce(sg.sigmoid(x), y * 3.0), {x: xv, y: good})


def test_evaluate_raises_feed_error_for_a_class_index_out_of_range():
    z = sg.var("z", shape=("batch", 3))
    y = sg.var("y", shape=("batch",), dtype="int")
    L = sg.losses.cross_entropy(z, y)
    f = sg.compile(L, inputs=[z, y])
    zv = np.zeros((2, 3))
    for bad in ([0, 3], [-1, 0]):
        with pytest.raises(sg.FeedError, match=r"'y'.*class index out of range \[0, 3\)"):
            sg.evaluate(L, {z: zv, y: bad})
        with pytest.raises(sg.FeedError, match=r"'y'.*class index out of range \[0, 3\)"):
            f(zv, bad)
    assert float(sg.evaluate(L, {z: zv, y: [0, 2]})) == pytest.approx(math.log(3.0), rel=1e-15)
