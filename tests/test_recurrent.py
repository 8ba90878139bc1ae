"""sg.nn.RNN, LSTM and GRU against NumPy references written here (values, and every parameter
gradient against central differences of the reference) and PyTorch (values and all parameter
gradients with mapped weights), compiled == evaluated, and the checks of their arguments."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg

B, S, I, H = 3, 5, 4, 6


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_rnn(x, W_ih, W_hh, b_ih, b_hh, h, act=np.tanh):
    outs = []
    for t in range(x.shape[1]):
        h = act(x[:, t] @ W_ih + b_ih + h @ W_hh + b_hh)
        outs.append(h)
    return np.stack(outs, 1), h


def np_lstm(x, W_ih, W_hh, b_ih, b_hh, h, c):
    outs = []
    for t in range(x.shape[1]):
        i, f, g, o = np.split(x[:, t] @ W_ih + b_ih + h @ W_hh + b_hh, 4, axis=1)
        c = _sig(f) * c + _sig(i) * np.tanh(g)
        h = _sig(o) * np.tanh(c)
        outs.append(h)
    return np.stack(outs, 1), h, c


def np_gru(x, W_ih, W_hh, b_ih, b_hh, h):
    outs = []
    for t in range(x.shape[1]):
        xr, xz, xn = np.split(x[:, t] @ W_ih + b_ih, 3, axis=1)
        hr, hz, hn = np.split(h @ W_hh + b_hh, 3, axis=1)
        r, z = _sig(xr + hr), _sig(xz + hz)
        n = np.tanh(xn + r * hn)
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.stack(outs, 1), h


LAYERS = {
    "rnn": (lambda: sg.nn.RNN(I, H, seed=1), lambda x, p, s: np_rnn(x, *p, s[0])[:2]),
    "rnn_relu": (lambda: sg.nn.RNN(I, H, nonlinearity="relu", seed=2),
                 lambda x, p, s: np_rnn(x, *p, s[0], act=lambda z: np.maximum(z, 0.0))[:2]),
    "lstm": (lambda: sg.nn.LSTM(I, H, seed=3), lambda x, p, s: np_lstm(x, *p, s[0], s[1])),
    "gru": (lambda: sg.nn.GRU(I, H, seed=4), lambda x, p, s: np_gru(x, *p, s[0])[:2]),
}


def _build(kind, layer, x, with_state):
    rng = np.random.default_rng(11)
    states = [rng.normal(size=(B, H)) * 0.5 for _ in range(2 if kind == "lstm" else 1)]
    svars = [sg.var(f"s{k}", shape=("batch", H)) for k in range(len(states))]
    if with_state:
        out, state = layer(x, tuple(svars) if kind == "lstm" else svars[0])
    else:
        out, state = layer(x)
        states = [np.zeros((B, H)) for _ in states]
        svars = []
    finals = list(state) if kind == "lstm" else [state]
    return out, finals, svars, states


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("with_state", [False, True])
def test_layer_matches_numpy_reference_values_and_parameter_gradients(kind, with_state):
    make, ref = LAYERS[kind]
    layer = make()
    rng = np.random.default_rng(5)
    x = sg.var("x", shape=("batch", "seq", I))
    out, finals, svars, states = _build(kind, layer, x, with_state)
    xv = rng.normal(size=(B, S, I))
    feeds = {"x": xv, **{v.name: s for v, s in zip(svars, states)}}
    params = [layer.W_ih, layer.W_hh, layer.b_ih, layer.b_hh]
    pv = [p.value for p in params]
    want = ref(xv, pv, states)
    got = sg.evaluate([out] + finals, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    # gradients of a random linear function of the outputs and final state, against central differences
    wo, wf = rng.normal(size=(B, S, H)), rng.normal(size=(B, H))
    wov, wfv = sg.var("wo", shape=("batch", "seq", H)), sg.var("wf", shape=("batch", H))
    L = sg.sum(out * wov) + sg.sum(finals[-1] * wfv)
    feeds.update(wo=wo, wf=wf)
    grads = sg.evaluate(sg.grad(L, params + [x] + svars), feeds)
    f = sg.compile(sg.grad(L, params), [x, wov, wfv] + svars)
    for g, c in zip(f(xv, wo, wf, *(states if svars else [])), grads):
        np.testing.assert_allclose(g, c, rtol=1e-12, atol=1e-12)

    def loss(values, xv=xv, states=states):
        res = ref(xv, values, states)
        return float(np.sum(res[0] * wo) + np.sum(res[-1] * wf))
    eps = 1e-6
    for k, p in enumerate(pv):
        d = rng.normal(size=p.shape)
        plus = loss([q + eps * d if j == k else q for j, q in enumerate(pv)])
        minus = loss([q - eps * d if j == k else q for j, q in enumerate(pv)])
        assert abs(np.sum(grads[k] * d) - (plus - minus) / (2 * eps)) < 1e-6 * max(1.0, abs(plus - minus) / eps)


def test_parameters_are_pytorch_layout_and_initial_range():
    lstm = sg.nn.LSTM(I, H, seed=0, name="enc")
    assert [(n, p.shape) for n, p in lstm.named_parameters()] == [
        ("enc.W_ih", (I, 4 * H)), ("enc.W_hh", (H, 4 * H)), ("enc.b_ih", (4 * H,)), ("enc.b_hh", (4 * H,))]
    k = 1 / np.sqrt(H)
    assert all(np.abs(p.value).max() <= k for _, p in lstm.named_parameters())
    assert sg.nn.GRU(I, H).W_hh.shape == (H, 3 * H) and sg.nn.RNN(I, H).W_ih.shape == (I, H)


def test_layers_compile_and_train_in_a_step():
    gru = sg.nn.GRU(I, H, seed=7)
    x, y = sg.var("x", shape=("batch", "seq", I)), sg.var("y", shape=("batch", H))
    out, h = gru(x)
    L = sg.losses.mse(h, y)
    rng = np.random.default_rng(8)
    xv, yv = rng.normal(size=(B, S, I)), rng.normal(size=(B, H))
    before = [p.value.copy() for _, p in gru.named_parameters()]
    grads = sg.evaluate(sg.grad(L, [p for _, p in gru.named_parameters()]), {"x": xv, "y": yv})
    step = sg.compile_step(L, sg.optim.SGD(lr=0.5), inputs=[x, y])
    step(xv, yv)
    for (_, p), b, g in zip(gru.named_parameters(), before, grads):
        np.testing.assert_allclose(p.value, b - 0.5 * g, rtol=1e-12, atol=1e-12)


def test_bad_arguments_are_refused():
    rnn = sg.nn.RNN(I, H)
    with pytest.raises(sg.ShapeError, match=r"expects input of shape \(batch, seq, 4\), got \(3, 4\)"):
        rnn(sg.var("x", shape=(3, 4)))
    with pytest.raises(sg.ShapeError, match=r"initial state must have shape \(2, 6\)"):
        rnn(sg.var("x", shape=(2, 5, I)), sg.var("h", shape=(2, 5)))
    with pytest.raises(sg.GraphError, match="nonlinearity"):
        sg.nn.RNN(I, H, nonlinearity="sigmoid")
    with pytest.raises(sg.GraphError, match="pair"):
        sg.nn.LSTM(I, H)(sg.var("x", shape=(2, 5, I)), sg.var("h", shape=(2, H)))
    with pytest.raises(sg.ShapeError, match="hidden_size"):
        sg.nn.GRU(I, 0)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_layer_matches_pytorch_values_and_all_parameter_gradients(kind):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    T = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](I, H, batch_first=True).double()
    ours = {"rnn": sg.nn.RNN, "lstm": sg.nn.LSTM, "gru": sg.nn.GRU}[kind](I, H, seed=0)
    for p, tname in ((ours.W_ih, "weight_ih_l0"), (ours.W_hh, "weight_hh_l0"), (ours.b_ih, "bias_ih_l0"),
                     (ours.b_hh, "bias_hh_l0")):
        t = getattr(T, tname).detach().numpy()
        p.value = t.T.copy() if t.ndim == 2 else t.copy()
    rng = np.random.default_rng(9)
    xv, wo = rng.normal(size=(B, S, I)), rng.normal(size=(B, S, H))
    h0 = rng.normal(size=(B, H))
    xt = torch.tensor(xv, requires_grad=True)
    state_t = (torch.tensor(h0[None]), torch.tensor(h0[None] * 0.5)) if kind == "lstm" else torch.tensor(h0[None])
    out_t, _ = T(xt, state_t)
    (out_t * torch.tensor(wo)).sum().backward()
    x = sg.var("x", shape=(B, "seq", I))
    state = (sg.const(h0), sg.const(h0 * 0.5)) if kind == "lstm" else sg.const(h0)
    out, _ = ours(x, state)
    L = sg.sum(out * sg.var("w", shape=(B, "seq", H)))
    params = [ours.W_ih, ours.W_hh, ours.b_ih, ours.b_hh]
    got = sg.evaluate([out] + sg.grad(L, params + [x]), {"x": xv, "w": wo})
    np.testing.assert_allclose(got[0], out_t.detach().numpy(), rtol=1e-10, atol=1e-10)
    want = [T.weight_ih_l0.grad.numpy().T, T.weight_hh_l0.grad.numpy().T, T.bias_ih_l0.grad.numpy(),
            T.bias_hh_l0.grad.numpy(), xt.grad.numpy()]
    for g, w in zip(got[1:], want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)


def _bench(name, *args):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    res = subprocess.run([sys.executable, os.path.join(root, "bench", name), *args], capture_output=True, text=True,
                         timeout=300, cwd=root)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_rnn_bench_quick_prints_the_ratio_and_agreement():
    out = _bench("rnn_bptt.py", "--quick")
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.startswith(("NumPy", "symgrad"))}
    assert float(rows["NumPy"][2]) == 1.0 and float(rows["symgrad"][2]) > 0
    assert float(rows["symgrad"][4].rstrip(",")) < 1e-9 and float(rows["symgrad"][6].rstrip(";")) < 1e-9  # loss, gradients
    assert 0 < float(rows["symgrad"][-1]) < 10  # the paired per-round ratio
    numba_row = next(ln.split() for ln in out.splitlines() if ln.startswith("sg numba"))
    if numba_row[2] != "-":  # the Numba backend's step (when the extra is installed), same loss
        assert float(numba_row[3]) > 0 and float(numba_row[5].rstrip(";")) < 1e-9


def test_lstm_adding_smoke_run_learns_below_its_start():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "lstm_adding.py")
    spec = importlib.util.spec_from_file_location("lstm_adding", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--smoke"])
    assert res["final"] < 0.5 * res["start"]
    x, y = mod.adding_batch(np.random.default_rng(0), 4, 10)
    assert x.shape == (4, 10, 2) and x[:, :, 1].sum() == 8
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * x[:, :, 1]).sum(axis=1))
