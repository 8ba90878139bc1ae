"""Gradient-flow monitoring in sg.fit: per-epoch gradient norms against NumPy references, the tracked
step keeps the step's optimizer state, exploding gradients stop training with the layer named and the
best weights kept, and fit's seed reaches the step's own random generator."""
from __future__ import annotations

import math

import numpy as np
import pytest

import symgrad as sg
from symgrad import gradflow


def linear_model(lr=0.1, optimizer=None):
    """Y ≈ X W + b with L = mean((X W + b − Y)²): ∂L/∂W = 2/(n·k) Xᵀ R, ∂L/∂b = 2/(n·k) Σ_rows R."""
    W = sg.param("lin.W", np.array([[0.5, -0.2], [0.1, 0.3], [-0.4, 0.2]]))
    b = sg.param("lin.b", np.array([0.05, -0.1]))
    X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 2))
    L = sg.mean((X @ W + b - Y) ** 2)
    step = sg.compile_step(L, optimizer or sg.optim.SGD(lr=lr), inputs=[X, Y])
    return W, b, step


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return {"X": X, "Y": X @ np.array([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]]) + 0.1 * rng.normal(size=(n, 2))}


def numpy_sgd_norms(W, b, batches, lr):
    """Per-update gradient norms of the linear model under SGD, computed by hand."""
    norms = []
    for X, Y in batches:
        R = X @ W + b - Y
        gW, gb = 2 / R.size * X.T @ R, 2 / R.size * R.sum(axis=0)
        norms.append((np.linalg.norm(gW), np.linalg.norm(gb), len(X)))
        W, b = W - lr * gW, b - lr * gb
    return norms, W, b


def test_grad_norms_are_the_batch_weighted_mean_of_each_updates_norm():
    W, b, step = linear_model(lr=0.1)
    W0, b0 = W.value.copy(), b.value.copy()
    d = data(n=10)
    h = sg.fit(step, d, epochs=2, batch_size=4, shuffle=False, verbose=0, track="grad_norms")
    batches = [(d["X"][s:s + 4], d["Y"][s:s + 4]) for s in (0, 4, 8)] * 2  # batches of 4, 4, 2 per epoch
    norms, W_end, b_end = numpy_sgd_norms(W0, b0, batches, 0.1)
    for epoch in range(2):
        part = norms[3 * epoch:3 * epoch + 3]
        size = sum(n for _, _, n in part)
        want_W = sum(gw * n for gw, _, n in part) / size
        want_b = sum(gb * n for _, gb, n in part) / size
        assert h["grad_norm/lin.W"][epoch] == pytest.approx(want_W, rel=1e-12)
        assert h.grad_norms["lin.b"][epoch] == pytest.approx(want_b, rel=1e-12)
    assert list(h.grad_norms) == ["lin.W", "lin.b"]
    np.testing.assert_allclose(W.value, W_end, rtol=1e-12)  # the tracked step trained as SGD does
    np.testing.assert_allclose(b.value, b_end, rtol=1e-12)
    assert "grad norms of 2 params" in repr(h) and "grad_norm" not in repr(h)


def test_untracked_fit_runs_the_step_itself_and_records_no_norms():
    W, b, step = linear_model()
    h = sg.fit(step, data(), epochs=1, batch_size=4, seed=0, verbose=0)
    assert h.grad_norms == {} and list(h.history) == ["loss"]
    assert step not in gradflow._VARIANTS  # no variant was compiled
    with pytest.raises(sg.TrainingError, match="no gradient norms recorded"):
        h.plot_grad_norms()


def test_tracking_keeps_the_steps_optimizer_state_and_matches_an_untracked_run():
    runs = []
    for track in (None, "grad_norms"):
        W, b, step = linear_model(optimizer=sg.optim.Adam(lr=0.05))
        step(data(4, seed=5)["X"], data(4, seed=5)["Y"])  # one update before fit: state and t are not zero
        h = sg.fit(step, data(), epochs=3, batch_size=5, seed=1, verbose=0, track=track)
        runs.append((W.value.copy(), b.value.copy(), step.t, {k: dict(v) for k, v in step.state.items()}, h))
    (W1, b1, t1, s1, h1), (W2, b2, t2, s2, h2) = runs
    assert t1 == t2 == 1 + 3 * 3
    np.testing.assert_allclose(W2, W1, rtol=1e-12)
    np.testing.assert_allclose(b2, b1, rtol=1e-12)
    for p in s1:
        for k in s1[p]:
            np.testing.assert_allclose(s2[p][k], s1[p][k], rtol=1e-12)
    assert h2["loss"] == pytest.approx(h1["loss"], rel=1e-12)


def test_exploding_gradients_stop_with_the_layer_named_and_the_best_weights_kept():
    d = data(n=16)
    W, b, step = linear_model(lr=3.0)  # too large a rate: the loss and the gradients grow every update
    h = sg.fit(step, d, epochs=6, batch_size=16, shuffle=False, verbose=0, track="grad_norms")
    growth = h["grad_norm/lin.W"]
    assert all(b > a for a, b in zip(growth, growth[1:]))  # exploding
    limit = math.sqrt(growth[2] * growth[3])  # between the norms of the 3rd and 4th updates
    W, b, step = linear_model(lr=3.0)
    with pytest.raises(sg.TrainingError) as info:
        sg.fit(step, d, epochs=6, batch_size=16, shuffle=False, verbose=0, max_grad_norm=limit)
    message = str(info.value)
    assert "exploding gradients: gradient norm above max_grad_norm=" in message
    assert "lin.W (layer lin)" in message and "at epoch 4, batch 1" in message
    assert len(info.value.history) == 3 and info.value.history.best_epoch == 1  # loss grows: epoch 1 is best
    assert "of epoch 1 (the best" in message
    # the weights are those after epoch 1, recomputed by hand
    norms, W_best, b_best = numpy_sgd_norms(linear_model()[0].value, linear_model()[1].value,
                                            [(d["X"], d["Y"])], 3.0)
    np.testing.assert_allclose(W.value, W_best, rtol=1e-12)
    np.testing.assert_allclose(b.value, b_best, rtol=1e-12)
    assert step.t == 1  # the update count of the best epoch, given back to the step


def test_a_non_finite_gradient_with_a_finite_loss_is_named():
    w = sg.param("scale.w", 1.0)
    x = sg.var("x", shape=("batch",))
    L = sg.mean(sg.sqrt(w * x))  # at x = 0 the loss is finite, its gradient x/(2√(w·x)) = 0·∞ = NaN
    step = sg.compile_step(L, sg.optim.SGD(lr=0.1), inputs=[x])
    with pytest.raises(sg.TrainingError, match=r"the gradient of scale\.w \(layer scale\) is not finite \(nan\)"):
        sg.fit(step, {"x": np.array([1.0, 4.0, 0.0, 9.0])}, batch_size=2, shuffle=False, verbose=0,
               track="grad_norms")
    assert float(w.value) == pytest.approx(1.0 - 0.1 * np.mean([0.5 / np.sqrt(1.0), 0.5 * 4.0 / np.sqrt(4.0)]))


def test_plot_grad_norms_per_layer(tmp_path):
    model = sg.nn.MLP([3, 8, 8, 2], activation="sigmoid", seed=0)
    X, y = sg.var("X", shape=("batch", 3)), sg.var("y", shape=("batch",), dtype="int")
    step = sg.compile_step(sg.losses.cross_entropy(model(X), y), sg.optim.SGD(lr=0.5), inputs=[X, y])
    rng = np.random.default_rng(0)
    h = sg.fit(step, {"X": rng.normal(size=(32, 3)), "y": rng.integers(0, 2, 32)}, epochs=3, batch_size=8,
               seed=0, verbose=0, track="grad_norms")
    assert set(h.grad_norms) == {f"mlp.{i}.{k}" for i in range(3) for k in "Wb"}
    # sigmoid layers shrink the gradient on its way back: the first layer's is the smallest
    assert h.grad_norms["mlp.0.W"][0] < h.grad_norms["mlp.2.W"][0]
    fig = h.plot_grad_norms(tmp_path / "norms.png", title="gradient flow")
    over_time, by_depth = fig.axes
    assert len(over_time.get_lines()) == 6 and over_time.get_yscale() == "log"
    assert [t.get_text() for t in by_depth.get_xticklabels()] == ["mlp.0", "mlp.1", "mlp.2"]
    first = by_depth.get_lines()[0].get_ydata()
    want = [math.hypot(h.grad_norms[f"mlp.{i}.W"][0], h.grad_norms[f"mlp.{i}.b"][0]) for i in range(3)]
    np.testing.assert_allclose(first, want, rtol=1e-12)
    assert (tmp_path / "norms.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kwargs, match", [
    ({"track": "norms"}, "track must be None or 'grad_norms'"),
    ({"max_grad_norm": 0}, "max_grad_norm must be a positive finite number"),
    ({"max_grad_norm": float("inf")}, "max_grad_norm must be a positive finite number"),
    ({"max_grad_norm": "1"}, "max_grad_norm must be a positive finite number"),
])
def test_bad_tracking_settings(kwargs, match):
    _, _, step = linear_model()
    with pytest.raises(sg.TrainingError, match=match):
        sg.fit(step, data(), verbose=0, **kwargs)


class Recorder:
    """A step wrapper with the ``seed`` method a StepFunction with random nodes has."""

    def __init__(self, step):
        self.step, self.seeds, self.batches = step, [], []
        self.inputs, self.params = step.inputs, step.params

    def __call__(self, *batch):
        self.batches.append(batch[0].copy())
        return self.step(*batch)

    def evaluate(self, *batch):
        return self.step.evaluate(*batch)

    def seed(self, value):
        self.seeds.append(value)


def test_fit_seeds_the_steps_random_generator_apart_from_the_shuffling():
    def run(seed, with_seed_method=True):
        rec = Recorder(linear_model()[2])
        if not with_seed_method:
            rec.seed = None
        sg.fit(rec, data(), epochs=2, batch_size=4, seed=seed, verbose=0)
        return rec
    a, b, c = run(3), run(3), run(4)
    assert len(a.seeds) == 1 and isinstance(a.seeds[0], int) and a.seeds == b.seeds != c.seeds
    assert run(None).seeds == []
    # the shuffling is the same with or without a seed method: the step's seed is another stream
    plain = run(3, with_seed_method=False)
    assert all(np.array_equal(p, q) for p, q in zip(a.batches, plain.batches))
    # a Generator seed works too, and leaves the Generator's own stream alone
    gen = np.random.default_rng(3)
    rec = Recorder(linear_model()[2])
    sg.fit(rec, data(), epochs=1, batch_size=4, seed=gen, verbose=0)
    assert rec.seeds == [gradflow.step_seed(np.random.default_rng(3))]
    assert gradflow.step_seed(3) == a.seeds[0] and gradflow.step_seed(3) != gradflow.step_seed(4)


def test_tracking_draws_the_same_dropout_masks_as_the_step_would():
    def run(track):
        rng = np.random.default_rng(0)
        X, T = sg.var("X", shape=("batch", 4)), sg.var("T", shape=("batch", 1))
        w = sg.param("w", np.full((4, 1), 0.1))
        step = sg.compile_step(sg.losses.mse(sg.dropout(X, 0.5) @ w, T), sg.optim.SGD(lr=0.05), inputs=[X, T],
                               seed=5)
        xs = rng.normal(size=(32, 4))
        h = sg.fit(step, {"X": xs, "T": xs @ np.array([[1.0], [-1.0], [0.5], [2.0]])}, epochs=2, batch_size=8,
                   shuffle=False, verbose=0, track=track)
        return w.value.copy(), h["loss"], step.rng.random()

    plain, tracked = run(None), run("grad_norms")
    np.testing.assert_allclose(tracked[0], plain[0], rtol=1e-12)
    assert tracked[1] == pytest.approx(plain[1], rel=1e-12)
    assert tracked[2] == plain[2]  # the step's generator went on from where the tracked variant left it


def test_grad_norms_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    model = sg.nn.MLP([3, 8, 4], activation="tanh", seed=2)
    X, y = sg.var("X", shape=("batch", 3)), sg.var("y", shape=("batch",), dtype="int")
    step = sg.compile_step(sg.losses.cross_entropy(model(X), y), sg.optim.SGD(lr=0.5), inputs=[X, y])
    xs, ys = rng.normal(size=(10, 3)), rng.integers(0, 4, 10)
    start = [torch.tensor(p.value.copy(), requires_grad=True) for p in model.parameters()]
    h = sg.fit(step, {"X": xs, "y": ys}, epochs=2, batch_size=10, shuffle=False, verbose=0, track="grad_norms")
    params, want = start, []
    for _ in range(2):  # one full batch per epoch: the epoch's norm is that update's
        W1, b1, W2, b2 = params
        logits = torch.tanh(torch.tensor(xs) @ W1 + b1) @ W2 + b2
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor(ys))
        grads = torch.autograd.grad(loss, params)
        want.append([float(torch.linalg.vector_norm(g)) for g in grads])
        params = [(p - 0.5 * g).detach().requires_grad_(True) for p, g in zip(params, grads)]
    names = [p.name for p in model.parameters()]
    for epoch in range(2):
        np.testing.assert_allclose([h.grad_norms[n][epoch] for n in names], want[epoch], rtol=1e-10)
