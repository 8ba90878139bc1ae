"""fit never leaves a broken model behind and never loses the History: a
diverging learning rate, a NaN in the data, an update that makes the weights
infinite, or a KeyboardInterrupt put back the best (or the last good) params,
optimizer state and update count, and the exception carries the History.
Bad settings of fit, History, the optimizers and the schedules are typed
errors naming the setting; the learning rate is checked when set and a
schedule's value at every update."""
import math

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import OptimizerError, RenderError, TrainingError
from symgrad.optim import schedules
from symgrad.train import History, accuracy_counts


class Recorder:
    """Wraps a compiled step: records the params, optimizer state and ``t`` after every update, and can
    raise an exception at a chosen call (after the update ran, as a Ctrl-C arriving at the end of the
    generated code would)."""

    def __init__(self, step, raise_at=None, exc=KeyboardInterrupt, raise_in_evaluate_at=None):
        self.step, self.raise_at, self.exc = step, raise_at, exc
        self.raise_in_evaluate_at = raise_in_evaluate_at
        self.inputs, self.params, self.outputs = step.inputs, step.params, step.outputs
        self.calls, self.evaluations, self.after = 0, 0, []

    @property
    def state(self):
        return self.step.state

    @property
    def t(self):
        return self.step.t

    @t.setter
    def t(self, value):
        self.step.t = value

    def snapshot(self):
        return ([p.value.copy() for p in self.params],
                {k: {s: a.copy() for s, a in d.items()} for k, d in self.step.state.items()}, self.step.t)

    def __call__(self, *batch):
        out = self.step(*batch)
        self.calls += 1
        if self.raise_at is not None and self.calls == self.raise_at:
            for p in self.params:  # leave the params half-way somewhere, as an interrupted update could
                p.value[...] = 1e6
            raise self.exc()
        self.after.append(self.snapshot())
        return out

    def evaluate(self, *batch):
        self.evaluations += 1
        if self.raise_in_evaluate_at is not None and self.evaluations == self.raise_in_evaluate_at:
            raise KeyboardInterrupt
        return self.step.evaluate(*batch)


def assert_model_is(rec, snap):
    params, state, t = snap
    for p, v in zip(rec.params, params):
        np.testing.assert_array_equal(p.value, v)
        assert np.isfinite(p.value).all()
    for name, group in state.items():
        for s, arr in group.items():
            np.testing.assert_array_equal(rec.step.state[name][s], arr)
    assert rec.step.t == t


def line(lr, w0=0.0, momentum=0.9):
    """y = w x with one weight (SGD with momentum, so there is optimizer state to restore)."""
    w = sg.param("w", w0)
    x, y = sg.var("x", shape=("batch",)), sg.var("y", shape=("batch",))
    step = sg.compile_step(sg.losses.mse(w * x, y), sg.optim.SGD(lr=lr, momentum=momentum), inputs=[x, y])
    return w, step


XS = np.linspace(-1.0, 1.0, 20)
DATA = {"x": XS, "y": 2.0 * XS}  # 4 batches of 5


def classifier(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 3))
    Y = (X[:, 0] > 0).astype(np.int64)
    model = sg.nn.MLP([3, 4, 2], activation="tanh", seed=seed)
    Xv, Yv = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch",), dtype="int")
    logits = model(Xv)
    step = sg.compile_step(sg.losses.cross_entropy(logits, Yv), sg.optim.Adam(lr=0.05), inputs=[Xv, Yv],
                           outputs=[logits])
    return X, Y, step


# ----------------------------------------------------------------- divergence
def test_diverging_lr_restores_the_best_epoch_and_the_error_carries_the_history():
    # a rate that is fine for 8 updates (2 epochs), then far too large: the loss blows up
    w, step = line(lambda k: 0.1 if k < 8 else 40.0)
    rec = Recorder(step)
    with pytest.raises(TrainingError, match="training diverged") as info:
        sg.fit(rec, DATA, epochs=500, batch_size=5, seed=0, verbose=0)
    h = info.value.history
    assert isinstance(h, History) and 2 < len(h) < 500
    assert h.epochs == list(range(1, len(h) + 1))
    assert h.best_epoch == 2 and h.restored_best
    assert h["loss"][1] == min(h["loss"])
    # params, momentum buffer and t are those at the end of epoch 2 (update 8), not the diverged ones
    assert_model_is(rec, rec.after[7])
    assert step.t == 8
    assert "epoch 2 (the best" in str(info.value)


def test_diverging_lr_without_restore_best_keeps_the_weights_before_the_failed_update():
    w, step = line(40.0)
    rec = Recorder(step)
    with pytest.raises(TrainingError, match="diverged") as info:
        sg.fit(rec, DATA, epochs=500, batch_size=5, seed=0, restore_best=False, verbose=0)
    assert not info.value.history.restored_best
    # the failed update (number rec.calls) saw a non-finite loss: everything is as after the one before
    assert rec.calls == len(rec.after) and rec.calls >= 2
    assert_model_is(rec, rec.after[-2])
    assert step.t == rec.calls - 1
    assert "from before the failed update were put back" in str(info.value)


def test_update_with_finite_loss_but_infinite_gradient_is_undone_too():
    # L = sum(sqrt(w) x) at w = 0: the loss is 0 but dL/dw = inf, so the update sets w = -inf; the next
    # loss is NaN and fit goes back to before the update that broke w
    w = sg.param("w", 0.0)
    x = sg.var("x", shape=("batch",))
    step = sg.compile_step(sg.sum(sg.sqrt(w) * x), sg.optim.SGD(lr=0.1), inputs=[x])
    with pytest.raises(TrainingError, match="preceding the failed one") as info:
        sg.fit(step, {"x": np.ones(4)}, epochs=3, batch_size=2, verbose=0)
    assert float(w.value) == 0.0 and step.t == 0 and len(info.value.history) == 0
    # when the broken update is the last one of fit, the check at the end of the epoch catches it
    with pytest.raises(TrainingError, match="not finite after epoch 1"):
        sg.fit(step, {"x": np.ones(2)}, epochs=1, batch_size=2, verbose=0)
    assert float(w.value) == 0.0 and step.t == 0


def test_divergence_is_silent_apart_from_the_error(recwarn):
    w, step = line(40.0)
    with pytest.raises(TrainingError):
        sg.fit(step, DATA, epochs=500, batch_size=5, seed=0, verbose=0)
    assert [str(r.message) for r in recwarn] == []


def test_epoch_mean_of_huge_finite_losses_does_not_overflow():
    from symgrad.train import _Meter
    m = _Meter()
    for loss in (1e308, 1.5e308, 1e308):
        m.add(loss, 5, None)
    assert m.loss == pytest.approx(3.5 / 3 * 1e308, rel=1e-12) and math.isfinite(m.loss)


# ----------------------------------------------------------------- NaN in the data
def test_nan_in_one_batch_leaves_params_and_adam_state_as_before_that_batch():
    X, Y, step = classifier()
    X = X.copy()
    X[17, 1] = np.nan  # batch 3 of 5 (rows 16..23) with shuffle=False
    rec = Recorder(step)
    with pytest.raises(TrainingError, match=r"epoch 1, batch 3: .*NaN or infinite.*'X' at row\(s\) 17 of the data"):
        sg.fit(rec, {"X": X, "Y": Y}, epochs=3, batch_size=8, shuffle=False, verbose=0)
    assert rec.calls == 3
    assert_model_is(rec, rec.after[1])  # as after batch 2: params, Adam's m and v, t = 2


def test_nan_in_a_later_epoch_restores_the_best_epoch():
    X, Y, step = classifier(seed=1)

    class PoisonAtEpoch3(Recorder):
        def __call__(self, *batch):
            if self.calls == 10:  # first batch of epoch 3 (5 batches an epoch)
                batch = (np.full_like(batch[0], np.nan),) + batch[1:]
            return super().__call__(*batch)

    rec = PoisonAtEpoch3(step)
    with pytest.raises(TrainingError, match="epoch 3, batch 1") as info:
        sg.fit(rec, {"X": X, "Y": Y}, epochs=10, batch_size=8, seed=0, verbose=0)
    h = info.value.history
    assert h.epochs == [1, 2] and h.restored_best
    assert_model_is(rec, rec.after[5 * h.best_epoch - 1])


def test_nan_in_validation_data_names_the_row_and_keeps_the_history():
    w, step = line(0.1)
    with pytest.raises(TrainingError, match=r"validation loss is nan at epoch 1, batch 1: .*'y' at row\(s\) 3 "
                                            r"of the validation data") as info:
        sg.fit(step, DATA, validation={"x": XS[:5], "y": np.array([0, 0, 0, np.nan, 0.0])}, epochs=3,
               batch_size=5, verbose=0)
    assert len(info.value.history) == 0 and np.isfinite(w.value) and step.t == 4


# ----------------------------------------------------------------- KeyboardInterrupt
def test_keyboard_interrupt_mid_update_restores_the_last_complete_update_and_carries_the_history():
    w, step = line(0.1)
    rec = Recorder(step, raise_at=11)  # epoch 3, batch 3
    with pytest.raises(KeyboardInterrupt) as info:
        sg.fit(rec, DATA, epochs=10, batch_size=5, seed=0, restore_best=False, verbose=0)
    assert info.value.history.epochs == [1, 2]
    assert_model_is(rec, rec.after[9])  # the 1e6 left by the interrupted update is gone, t = 10
    assert step.t == 10


def test_keyboard_interrupt_with_restore_best_puts_back_the_best_epoch():
    w, step = line(0.1)
    rec = Recorder(step, raise_at=11)
    with pytest.raises(KeyboardInterrupt) as info:
        sg.fit(rec, DATA, epochs=10, batch_size=5, seed=0, verbose=0)
    h = info.value.history
    assert h.epochs == [1, 2] and h.best_epoch == 2 and h.restored_best
    assert_model_is(rec, rec.after[7])  # end of epoch 2


def test_keyboard_interrupt_during_validation_keeps_the_weights_of_the_last_update():
    w, step = line(0.1)
    rec = Recorder(step, raise_in_evaluate_at=2)  # validation of epoch 2
    with pytest.raises(KeyboardInterrupt) as info:
        sg.fit(rec, DATA, validation=DATA, eval_batch_size=20, epochs=10, batch_size=5, seed=0,
               restore_best=False, verbose=0)
    assert info.value.history.epochs == [1]
    assert_model_is(rec, rec.after[7])


def test_other_errors_from_the_step_also_undo_the_update_and_carry_the_history():
    w, step = line(0.1)
    rec = Recorder(step, raise_at=6, exc=MemoryError)
    with pytest.raises(MemoryError) as info:
        sg.fit(rec, DATA, epochs=10, batch_size=5, seed=0, restore_best=False, verbose=0)
    assert info.value.history.epochs == [1]
    assert_model_is(rec, rec.after[4])


# ----------------------------------------------------------------- fit, History settings
@pytest.mark.parametrize("kwargs, match", [
    ({"threshold": "a"}, "threshold"), ({"threshold": math.nan}, "threshold"),
    ({"shuffle": "no"}, "shuffle"), ({"restore_best": None}, "restore_best"),
    ({"seed": "x"}, "seed"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"),
    ({"min_delta": math.nan}, "min_delta"), ({"min_delta": -0.1}, "min_delta"),
    ({"verbose": 1.5}, "verbose"), ({"verbose": "2"}, "verbose"),
])
def test_bad_fit_settings_are_training_errors_naming_the_setting(kwargs, match):
    w, step = line(0.1)
    with pytest.raises(TrainingError, match=match):
        sg.fit(step, DATA, **kwargs)
    assert step.t == 0 and float(w.value) == 0.0


def test_fit_accepts_true_and_false_as_verbose():
    w, step = line(0.1)
    assert len(sg.fit(step, DATA, epochs=2, batch_size=5, verbose=False)) == 2


def test_bad_history_arguments_are_typed_errors(tmp_path):
    with pytest.raises(TrainingError, match="monitor"):
        History(monitor=3)
    h = History(monitor="loss")
    for epoch, values, match in [(0, {"loss": 1.0}, "epoch"), (True, {"loss": 1.0}, "epoch"),
                                 (1, [1.0], "dict"), (1, {"loss": "low"}, "'loss' must be a number"),
                                 (1, {2: 1.0}, "names must be strings")]:
        with pytest.raises(TrainingError, match=match):
            h.record(epoch, values)
    h.record(1, {"loss": 1.0})
    with pytest.raises(TrainingError, match="does not follow"):
        h.record(1, {"loss": 0.5})
    with pytest.raises(TrainingError, match="title"):
        h.plot(title=5)
    with pytest.raises(TrainingError, match="path"):
        h.plot(3.5)
    with pytest.raises(RenderError, match=r"unknown image format 'xyz'"):
        h.plot(tmp_path / "curves.xyz")
    assert list(tmp_path.iterdir()) == []


def test_accuracy_counts_threshold_is_checked():
    with pytest.raises(TrainingError, match="threshold"):
        accuracy_counts([0.2, 0.8], [0, 1], threshold="a")


# ----------------------------------------------------------------- learning rate
def test_lr_is_validated_when_set_after_construction():
    opt = sg.optim.Adam(lr=0.01)
    for bad in ("fast", math.nan, math.inf, -0.1, 0.0, True, None, schedules.cosine):
        with pytest.raises(OptimizerError, match="Adam: lr"):
            opt.lr = bad
    assert opt.lr == 0.01
    with pytest.raises(OptimizerError, match="the update index k as its one argument"):
        opt.lr = lambda: 0.1
    opt.lr = np.float32(0.5)
    assert opt.lr == 0.5 and type(opt.lr) is float


def test_lr_set_after_compile_is_used_by_the_next_update():
    w, step = line(0.1, momentum=0.0)
    step(np.array([1.0]), np.array([2.0]))  # dL/dw = 2 (w x − y) x = −4: w = 0.4
    step.optimizer.lr = 0.05
    step(np.array([1.0]), np.array([2.0]))  # −2 · 1.6 = −3.2: w = 0.4 + 0.16
    assert float(w.value) == pytest.approx(0.56, rel=1e-12)
    with pytest.raises(OptimizerError):
        step.optimizer.lr = "fast"
    step(np.array([1.0]), np.array([2.0]))
    assert float(w.value) == pytest.approx(0.56 + 0.05 * 2 * 1.44, rel=1e-12)


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "fast", None])
def test_lr_schedule_value_is_checked_at_every_update(bad):
    w, step = line(lambda k: 0.1 if k < 2 else bad)
    step(np.array([1.0]), np.array([2.0]))
    step(np.array([1.0]), np.array([2.0]))
    before, b_before = w.value.copy(), step.state["w"]["b"].copy()
    with pytest.raises(OptimizerError, match=r"SGD: the lr schedule gave .* for update 3 \(k=2\)"):
        step(np.array([1.0]), np.array([2.0]))
    # no gradient ascent, nothing moved
    assert np.array_equal(w.value, before) and np.array_equal(step.state["w"]["b"], b_before) and step.t == 2


def test_lr_schedule_reaching_zero_is_allowed_and_leaves_params_in_place():
    w, step = line(schedules.cosine(0.1, total_steps=2, min_lr=0.0), momentum=0.0)
    for _ in range(2):
        step(np.array([1.0]), np.array([2.0]))
    before = w.value.copy()
    assert step.optimizer.lr_at(2) == 0.0
    step(np.array([1.0]), np.array([2.0]))
    assert np.array_equal(w.value, before)


def test_lr_schedule_error_in_fit_restores_the_model_and_carries_the_history():
    w, step = line(lambda k: 0.1 if k < 6 else -1.0)
    with pytest.raises(OptimizerError, match="gave -1.0") as info:
        sg.fit(step, DATA, epochs=5, batch_size=5, seed=0, verbose=0)
    assert info.value.history.epochs == [1] and step.t == 4 and np.isfinite(w.value)


def test_growing_decay_factors_are_refused_at_construction():
    with pytest.raises(OptimizerError, match=r"schedules.exponential: gamma must be in \(0, 1\]"):
        schedules.exponential(0.1, gamma=1.01)
    with pytest.raises(OptimizerError, match=r"schedules.step: gamma must be in \(0, 1\]"):
        schedules.step(0.1, step_size=10, gamma=2.0)
    # γ ≤ 1 never overflows: a long decay ends at 0, a rate fit accepts
    e = schedules.exponential(0.1, gamma=0.5)
    assert e(1030) == 0.1 * 0.5 ** 1030 and e(10 ** 6) == 0.0
    assert schedules.exponential(0.1, gamma=1.0)(10 ** 6) == 0.1
    assert sg.optim.SGD(lr=e).lr_at(10 ** 6) == 0.0


@pytest.mark.parametrize("k", [-1, 1.5, "3", True, None])
def test_schedule_index_must_be_a_non_negative_int(k):
    for sched in (schedules.constant(0.1), schedules.step(0.1, 2), schedules.exponential(0.1, 0.9),
                  schedules.cosine(0.1, 10), schedules.linear_warmup(0.1, 3)):
        with pytest.raises(OptimizerError, match="update index"):
            sched(k)
    with pytest.raises(OptimizerError, match="update index"):
        sg.optim.SGD(lr=schedules.constant(0.1)).lr_at(k)


@pytest.mark.parametrize("make", [
    lambda: sg.optim.SGD(lr=True), lambda: sg.optim.SGD(lr="0.1"), lambda: sg.optim.SGD(momentum=math.nan),
    lambda: sg.optim.Adam(eps=math.inf), lambda: sg.optim.AdamW(weight_decay=-1.0),
    lambda: sg.optim.RMSProp(alpha=True), lambda: sg.optim.SGD(clip_norm="big"),
    lambda: schedules.constant(math.nan), lambda: schedules.cosine(0.1, total_steps=2.5),
    lambda: schedules.linear_warmup(lambda k: 0.1, warmup_steps=3), lambda: schedules.exponential(0.1, 0.0),
])
def test_bad_optimizer_and_schedule_settings_are_optimizer_errors(make):
    with pytest.raises(OptimizerError):
        make()
