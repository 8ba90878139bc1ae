"""A float32 step whose params are float64 masters must write every optimizer's new values back into
the masters (regression: an update computed in the float32 working array, such as AdamW's decayed θ,
was left there and the master never moved)."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

OPTIMIZERS = [
    lambda: sg.optim.SGD(lr=0.1),
    lambda: sg.optim.SGD(lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda: sg.optim.Adam(lr=0.05),
    lambda: sg.optim.AdamW(lr=0.1, weight_decay=0.1),
    lambda: sg.optim.RMSProp(lr=0.01),
    lambda: sg.optim.AdaGrad(lr=0.1),
]


def _train(make_opt, master: bool) -> np.ndarray:
    X = sg.var("X", shape=("batch", 3))
    W = sg.param("W", np.linspace(-1.0, 1.0, 6).reshape(3, 2))
    if not master:
        W.value = W.value.astype(np.float32)
    step = sg.compile_step(sg.mean(sg.tanh(X @ W) ** 2), make_opt(), inputs=[X], dtype="float32")
    xs = np.arange(12.0).reshape(4, 3) / 10
    for _ in range(4):
        step(xs)
    return W.value


@pytest.mark.parametrize("k", range(len(OPTIMIZERS)))
def test_float32_step_updates_float64_master_params_like_float32_params(k):
    start = np.linspace(-1.0, 1.0, 6).reshape(3, 2)
    master, direct = _train(OPTIMIZERS[k], True), _train(OPTIMIZERS[k], False)
    assert master.dtype == np.float64 and direct.dtype == np.float32
    assert not np.allclose(master, start)
    np.testing.assert_allclose(master, direct, rtol=1e-5, atol=1e-6)
