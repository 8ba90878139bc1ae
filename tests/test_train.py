"""fit and History: loss goes down, per-epoch numbers are the batch means,
shuffling is reproducible, early stopping restores the best weights,
bad data gives typed errors, plots are written.  Steps are real compiled
ones (``sg.compile_step``)."""
import math
import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import FeedError, TrainingError
from symgrad.train import History, accuracy_counts


def make_step(loss, lr, inputs, outputs=()):
    kwargs = {"outputs": list(outputs)} if outputs else {}
    return sg.compile_step(loss, sg.optim.SGD(lr=lr), inputs=list(inputs), **kwargs)


class Spy:
    """Wraps a step and records the batches it is called with."""

    def __init__(self, step):
        self.step, self.calls, self.losses = step, [], []
        self.inputs, self.params, self.outputs = step.inputs, step.params, step.outputs

    def __call__(self, *batch):
        self.calls.append([np.array(b) for b in batch])
        out = self.step(*batch)
        self.losses.append(out[0] if isinstance(out, tuple) else out)
        return out

    def evaluate(self, *batch):
        return self.step.evaluate(*batch)


def _blobs(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    return centers[y] + 0.6 * rng.normal(size=(n, 2)), y


def _classifier(seed=0, lr=0.3):
    model = sg.nn.MLP([2, 8, 3], activation="tanh", seed=seed)
    X, Y = sg.var("X", shape=("batch", 2)), sg.var("Y", shape=("batch",), dtype="int")
    logits = model(X)
    loss = sg.losses.cross_entropy(logits, Y)
    return model, X, Y, logits, loss, make_step(loss, lr, [X, Y], [logits])


def _line_regression(w0, lr):
    """y = w x with one weight: training data pull w to 2."""
    w = sg.param("w", w0)
    x, y = sg.var("x", shape=("batch",)), sg.var("y", shape=("batch",))
    loss = sg.losses.mse(w * x, y)
    return w, x, y, loss, make_step(loss, lr, [x, y])


def test_fit_reduces_loss_and_reports_accuracy():
    Xtr, ytr = _blobs(120, 0)
    Xva, yva = _blobs(60, 1)
    model, X, Y, logits, loss, step = _classifier()
    before = float(sg.evaluate(loss, {"X": Xtr, "Y": ytr}))
    h = sg.fit(step, {"X": Xtr, "Y": ytr}, epochs=8, batch_size=16, validation={"X": Xva, "Y": yva},
               seed=0, verbose=0)
    after = float(sg.evaluate(loss, {"X": Xtr, "Y": ytr}))
    assert after < 0.3 * before
    assert h.epochs == list(range(1, 9)) and len(h) == 8
    assert sorted(h.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert h["loss"][-1] < h["loss"][0]
    assert h["val_accuracy"][-1] >= 0.9
    # the last validation numbers are those of the final weights
    val_logits, val_loss = sg.evaluate([logits, loss], {"X": Xva, "Y": yva})
    assert h["val_loss"][-1] == pytest.approx(float(val_loss), rel=1e-12)
    assert h["val_accuracy"][-1] == np.mean(np.argmax(val_logits, axis=1) == yva)
    assert step.t == 8 * math.ceil(120 / 16)
    assert h.best_epoch == int(np.argmin(h["val_loss"])) + 1 and h.monitor == "val_loss"


def test_history_loss_is_the_weighted_mean_of_batch_losses():
    Xtr, ytr = _blobs(50, 2)
    *_, step = _classifier(seed=1)
    spy = Spy(step)
    h = sg.fit(spy, {"X": Xtr, "Y": ytr}, epochs=3, batch_size=16, seed=3, verbose=0)
    sizes = [16, 16, 16, 2]
    assert [len(c[0]) for c in spy.calls] == sizes * 3
    for e in range(3):
        losses = spy.losses[4 * e:4 * e + 4]
        assert h["loss"][e] == pytest.approx(np.dot(losses, sizes) / 50, rel=1e-12)
    assert "val_loss" not in h.history and h.monitor == "loss"


def test_shuffling_reproducible_with_seed():
    Xtr, ytr = _blobs(40, 3)
    runs = []
    for seed in (5, 5, 6):
        *_, step = _classifier(seed=2)
        spy = Spy(step)
        h = sg.fit(spy, {"X": Xtr, "Y": ytr}, epochs=2, batch_size=8, seed=seed, verbose=0)
        runs.append((spy, h, [p.value.copy() for p in step.params]))
    (s1, h1, p1), (s2, h2, p2), (s3, h3, p3) = runs
    assert h1.history == h2.history
    assert all(np.array_equal(a, b) for a, b in zip(p1, p2))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(s1.calls, s2.calls))
    assert h1["loss"] != h3["loss"]
    # each epoch visits every sample exactly once, in a fresh order
    order = [np.concatenate([c[0] for c in s1.calls[5 * e:5 * e + 5]]) for e in range(2)]
    for o in order:
        assert sorted(map(tuple, o)) == sorted(map(tuple, Xtr))
    assert not np.array_equal(order[0], order[1])
    assert not np.array_equal(order[0], Xtr)
    # shuffle=False keeps the data order
    *_, step = _classifier(seed=2)
    spy = Spy(step)
    sg.fit(spy, {"X": Xtr, "Y": ytr}, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert np.array_equal(np.concatenate([c[0] for c in spy.calls]), Xtr)


def test_early_stopping_restores_best_weights():
    # training pulls w from -1 towards 2; validation wants w = 0.5, so its loss
    # falls while w < 0.5 and rises after
    xs = np.linspace(-1.0, 1.0, 21)
    w, x, y, loss, step = _line_regression(-1.0, lr=0.05)
    h = sg.fit(step, {"x": xs, "y": 2.0 * xs}, epochs=100, batch_size=7, validation={"x": xs, "y": 0.5 * xs},
               early_stopping=3, seed=0, verbose=0)
    val = h["val_loss"]
    best = h.best_epoch
    assert h.stopped_early and h.restored_best
    assert 1 < best < h.epochs[-1] == best + 3
    assert val[best - 1] == min(val)
    assert all(v > val[best - 1] for v in val[best:])  # it rose for `patience` epochs
    restored = float(sg.evaluate(loss, {"x": xs, "y": 0.5 * xs}))
    assert restored == pytest.approx(val[best - 1], rel=1e-12)
    assert abs(float(w.value) - 0.5) < abs(2.0 - 0.5)
    assert h.best("val_loss") == val[best - 1]


def test_early_stopping_min_delta_and_no_restore():
    xs = np.linspace(-1.0, 1.0, 21)
    w, x, y, loss, step = _line_regression(-1.0, lr=0.05)
    h = sg.fit(step, {"x": xs, "y": 2.0 * xs}, epochs=100, batch_size=7, validation={"x": xs, "y": 0.5 * xs},
               early_stopping=2, restore_best=False, seed=0, verbose=0)
    assert h.stopped_early and not h.restored_best
    last = float(sg.evaluate(loss, {"x": xs, "y": 0.5 * xs}))
    assert last == pytest.approx(h["val_loss"][-1], rel=1e-12)
    # a huge min_delta stops after patience epochs: only the first counts as an improvement
    *_, step2 = _line_regression(-1.0, lr=0.05)
    h2 = sg.fit(step2, {"x": xs, "y": 2.0 * xs}, epochs=50, batch_size=7, validation={"x": xs, "y": 0.5 * xs},
                early_stopping=2, min_delta=1e9, seed=0, verbose=0)
    assert h2.epochs == [1, 2, 3] and h2.best_epoch == 1


def test_no_early_stop_without_patience():
    xs = np.linspace(-1.0, 1.0, 10)
    *_, step = _line_regression(0.0, lr=0.1)
    h = sg.fit(step, {"x": xs, "y": 2.0 * xs}, epochs=4, batch_size=5, validation={"x": xs, "y": -xs},
               verbose=0)
    assert h.epochs == [1, 2, 3, 4] and not h.stopped_early and not h.restored_best


def test_binary_accuracy_from_one_output_column():
    rng = np.random.default_rng(0)
    Xd = rng.normal(size=(80, 2))
    yd = (Xd[:, 0] + Xd[:, 1] > 0).astype(float)[:, None]
    model = sg.nn.MLP([2, 1], seed=0, output_activation="sigmoid")
    X, Y = sg.var("X", shape=("batch", 2)), sg.var("Y", shape=("batch", 1))
    prob = model(X)
    step = make_step(sg.losses.bce(prob, Y), 1.0, [X, Y], [prob])
    h = sg.fit(step, {"X": Xd, "Y": yd}, epochs=10, batch_size=20, validation={"X": Xd, "Y": yd}, seed=0,
               verbose=0)
    p = sg.evaluate(prob, {"X": Xd})
    assert h["val_accuracy"][-1] == np.mean((p > 0.5) == (yd == 1)) and h["val_accuracy"][-1] > 0.9


def test_accuracy_counts_rules():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    assert accuracy_counts(logits, np.array([0, 2])) == (2, 2)
    assert accuracy_counts(logits, np.array([1.0, 2.0])) == (1, 2)  # integral floats count as indices
    assert accuracy_counts(logits, np.eye(3)[[0, 0]]) == (1, 2)  # one-hot rows
    assert accuracy_counts(np.array([[-0.3], [2.0]]), np.array([[0.0], [0.0]])) == (1, 2)  # logits: > 0
    assert accuracy_counts(np.array([0.4, 0.6]), np.array([1, 1])) == (1, 2)  # probabilities: > 0.5
    assert accuracy_counts(np.array([0.4, 0.6]), np.array([1, 1]), threshold=0.3) == (2, 2)
    assert accuracy_counts(np.array([0.4, 0.6]), np.array([0.2, 1.5])) is None  # regression targets
    assert accuracy_counts(logits, np.array([0, 1, 2])) is None  # lengths differ


def test_data_validation_errors():
    *_, step = _classifier()
    Xtr, ytr = _blobs(10, 0)
    with pytest.raises(FeedError, match=r"missing input\(s\) \['Y'\]"):
        sg.fit(step, {"X": Xtr}, verbose=0)
    with pytest.raises(FeedError, match="'Z' that is not an input.*\\['X', 'Y'\\]"):
        sg.fit(step, {"X": Xtr, "Y": ytr, "Z": ytr}, verbose=0)
    with pytest.raises(FeedError, match=r"different lengths \{'X': 10, 'Y': 9\}"):
        sg.fit(step, {"X": Xtr, "Y": ytr[:9]}, verbose=0)
    with pytest.raises(FeedError, match="validation.*different lengths"):
        sg.fit(step, {"X": Xtr, "Y": ytr}, validation={"X": Xtr, "Y": ytr[:3]}, verbose=0)
    with pytest.raises(FeedError, match="no samples"):
        sg.fit(step, {"X": Xtr[:0], "Y": ytr[:0]}, verbose=0)
    with pytest.raises(FeedError, match="dict"):
        sg.fit(step, [Xtr, ytr], verbose=0)
    with pytest.raises(FeedError, match="scalar"):
        sg.fit(step, {"X": Xtr, "Y": 3}, verbose=0)
    with pytest.raises(FeedError, match="target 'T'"):
        sg.fit(step, {"X": Xtr, "Y": ytr}, target="T", verbose=0)
    assert step.t == 0  # nothing ran


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, "epochs"), ({"batch_size": 2.5}, "batch_size"), ({"early_stopping": 0}, "early_stopping"),
    ({"verbose": 3}, "verbose"), ({"epochs": True}, "epochs"), ({"min_delta": "x"}, "min_delta"),
])
def test_bad_settings_are_typed_errors(kwargs, match):
    *_, step = _classifier()
    Xtr, ytr = _blobs(10, 0)
    with pytest.raises(TrainingError, match=match):
        sg.fit(step, {"X": Xtr, "Y": ytr}, **kwargs)


def test_not_a_step_and_divergence():
    with pytest.raises(TrainingError, match="no 'inputs'"):
        sg.fit(lambda *a: 0.0, {"X": np.zeros((2, 2))})
    xs = np.linspace(-1.0, 1.0, 10) * 1e3
    *_, step = _line_regression(0.0, lr=10.0)
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(TrainingError, match="diverged"):
            sg.fit(step, {"x": xs, "y": xs}, epochs=50, batch_size=10, verbose=0)


def test_progress_output(capsys, monkeypatch):
    xs = np.linspace(-1.0, 1.0, 10)
    *_, step = _line_regression(0.0, lr=0.1)
    sg.fit(step, {"x": xs, "y": xs}, epochs=2, batch_size=5, verbose=2)
    out = capsys.readouterr()
    assert out.out.splitlines()[0].startswith("epoch 1/2: loss=") and len(out.out.splitlines()) == 2
    sg.fit(step, {"x": xs, "y": xs}, epochs=2, batch_size=5, verbose=1)  # stderr is not a TTY here
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    sg.fit(step, {"x": xs, "y": xs}, epochs=3, batch_size=5, verbose=1)
    err = capsys.readouterr().err
    assert "fit: 100%" in err and "3/3" in err and "loss=" in err
    sg.fit(step, {"x": xs, "y": xs}, epochs=3, batch_size=5, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_history_plot_writes_png(tmp_path):
    Xtr, ytr = _blobs(40, 4)
    *_, step = _classifier()
    h = sg.fit(step, {"X": Xtr, "Y": ytr}, epochs=3, batch_size=10, validation={"X": Xtr, "Y": ytr},
               seed=0, verbose=0)
    fig = h.plot(tmp_path / "curves.png", title="blobs")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy (%)"]
    lines = fig.axes[0].get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), h["loss"])
    np.testing.assert_allclose(lines[1].get_ydata(), h["val_loss"])
    np.testing.assert_allclose(fig.axes[1].get_lines()[1].get_ydata(), np.array(h["val_accuracy"]) * 100)
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]


def test_history_plot_without_matplotlib(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    h = History(monitor="loss")
    h.record(1, {"loss": 1.0})
    with pytest.raises(sg.DependencyError, match="matplotlib"):
        h.plot()
    with pytest.raises(ImportError):  # also an ImportError for generic handlers
        h.plot()
