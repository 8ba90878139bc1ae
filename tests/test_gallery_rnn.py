"""Gallery pages on recurrent networks (17 RNN and BPTT, 18 LSTM gates): each script runs in smoke mode;
its printed equations, gradients and gate activations are checked against NumPy references written here."""
from __future__ import annotations

import re

import numpy as np
import pytest

from test_gallery import is_png, numbers_after, run_script
from test_gallery import svg_texts as raw_svg_texts


def svg_texts(path) -> list[str]:
    """The SVG's texts, Graphviz's no-break spaces read as spaces."""
    return [t.replace("\xa0", " ") for t in raw_svg_texts(path)]


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def rnn_bptt(p: dict, X: np.ndarray, Y: np.ndarray, per_step: bool):
    """A tanh RNN (x @ W layout) by hand: states h_0 … h_T and, by backpropagation through time, the total
    ∂L/∂h_t for t = 0 … T and ∂L/∂W_hh.  L = ½ Σ_t ‖h_t − y_t‖² (per_step) or ½ ‖h_T − y‖² (Y is (B, H))."""
    B, T, _ = X.shape
    hs = [np.zeros((B, p["W_hh"].shape[0]))]
    for t in range(T):
        hs.append(np.tanh(X[:, t] @ p["W_ih"] + p["b_ih"] + p["b_hh"] + hs[-1] @ p["W_hh"]))
    dh = [None] * (T + 1)
    dh[T] = (hs[T] - Y[:, T - 1]) if per_step else hs[T] - Y
    dW = np.zeros_like(p["W_hh"])
    for t in range(T, 0, -1):
        dz = dh[t] * (1 - hs[t] ** 2)
        dW += hs[t - 1].T @ dz
        dh[t - 1] = dz @ p["W_hh"].T + ((hs[t - 1] - Y[:, t - 2]) if per_step and t > 1 else 0)
    return hs, dh, dW


def lstm_forward(p: dict, X: np.ndarray) -> tuple[np.ndarray, dict, list]:
    """An LSTM by hand (PyTorch's gates i, f, g, o; x @ W layout): the last h, every gate (n, T, H), and the
    per-step cache (h_{t−1}, c_{t−1}, i, f, g, o) for the backward pass."""
    B, T, _ = X.shape
    H = p["W_hh"].shape[0]
    h, c = np.zeros((B, H)), np.zeros((B, H))
    cache = []
    for t in range(T):
        a = X[:, t] @ p["W_ih"] + h @ p["W_hh"] + p["b_ih"] + p["b_hh"]
        i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        cache.append((h, c, i, f, g, o))
        c = f * c + i * g
        h = o * np.tanh(c)
    gates = {k: np.stack([step[2 + n] for step in cache], axis=1) for n, k in enumerate("ifgo")}
    return h, gates, cache


def lstm_last_step_grads(p: dict, X: np.ndarray, Y: np.ndarray) -> tuple[list, list, np.ndarray]:
    """The total ∂L/∂h_t and ∂L/∂c_t for t = 0 … T of L = ½ ‖h_T − y‖², and ∂L/∂W_hh, by BPTT by hand."""
    h, _, cache = lstm_forward(p, X)
    T = X.shape[1]
    dh, dc = [None] * (T + 1), [None] * (T + 1)
    dh[T], dc[T] = h - Y, np.zeros_like(h)
    dW = np.zeros_like(p["W_hh"])
    for t in range(T, 0, -1):
        h_prev, c_prev, i, f, g, o = cache[t - 1]
        c_t = f * c_prev + i * g
        dc_t = dc[t] + dh[t] * o * (1 - np.tanh(c_t) ** 2)
        da = np.concatenate([dc_t * g * i * (1 - i), dc_t * c_prev * f * (1 - f), dc_t * i * (1 - g ** 2),
                             dh[t] * np.tanh(c_t) * o * (1 - o)], axis=1)
        dW += h_prev.T @ da
        dh[t - 1], dc[t - 1] = da @ p["W_hh"].T, dc_t * f
    return dh, dc, dW


def table(out: str, header: str) -> np.ndarray:
    """The rows of numbers printed under the line holding ``header``."""
    rows = []
    for line in out.split(header, 1)[1].splitlines()[1:]:
        values = re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]\d+)?", line)
        if not values or not re.fullmatch(r"[\s\d.e+-]+", line):
            break
        rows.append([float(v) for v in values])
    return np.array(rows)


def weights(module) -> dict:
    return {k.split(".")[-1]: v for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- 17 RNN and BPTT
def test_17_rnn_bptt(tmp_path, capsys):
    result, out = run_script("17_rnn_bptt", tmp_path, capsys)
    lines = [ln.rstrip() for ln in out.splitlines()]
    # the forward recurrence and BPTT, printed by sg.pretty / sg.latex
    assert "  hₜ = tanh(zₜ)" in lines and "  h₀ = 0" in lines
    assert "    δ_zₜ = ⎝-hₜ   + 𝟙⎠ ⊙ (δ_hₜ + ∂L/∂hₜ)" in lines
    assert "    δ_hₜ = δ_zₜ₊₁⋅rnn.W_hh" in lines and "  δ_h_T = 0" in lines
    assert "  ∂L/∂rnn.W_hh = Σₜ hₜ₋₁ ⋅δ_zₜ" in lines and "  ∂L/∂rnn.W_ih = Σₜ xₜ ⋅δ_zₜ" in lines
    tex = (tmp_path / "formulas.tex").read_text(encoding="utf-8")
    assert r"\delta_{h_{t}} &= \delta_{z_{t+1}} \mathrm{rnn.W\_hh}^{T}" in tex
    assert r"\frac{\partial L}{\partial \mathrm{rnn.W\_hh}} &= \sum_{t} h_{t-1}^{T} \delta_{z_{t}}" in tex
    assert r"h_{t} &= \tanh\left(z_{t}\right)" in tex

    # the equations' numbers: sg.grad to rounding, and ∂L/∂W_hh as BPTT by hand computes it
    ck = result["check"]
    assert max(ck["diffs"].values()) < 1e-12 and ck["identity"] < 1e-12
    for name, d in ck["diffs"].items():
        assert numbers_after(out, f"max |Σ_t … − sg.grad| for {name}")[0] == pytest.approx(d, abs=1e-13)
    p = weights(result["equations"]["rnn"])
    X, Y = ck["feeds"]["x"], ck["feeds"]["y"]
    hs, dh, dW = rnn_bptt(p, X, Y, per_step=True)
    printed = numbers_after(out, "∂L/∂W_hh = Σ_t h_{t−1}ᵀ δ_z_t =")
    assert printed == pytest.approx(dW.ravel(), abs=5e-7)
    # the direct part (h_t − y_t), the carried δ_h_t and the total ∂L/∂h_t at each step
    T = X.shape[1]
    want = [[t, np.linalg.norm(hs[t] - Y[:, t - 1]), np.linalg.norm(dh[t] - hs[t] + Y[:, t - 1]),
             np.linalg.norm(dh[t])] for t in range(1, T + 1)]
    assert table(out, "‖direct‖   ‖carried δ_h_t‖") == pytest.approx(np.array(want), abs=5e-5)

    # drawings: the body once in a box marked × T; unrolled: one copy per step
    folded = svg_texts(tmp_path / "rnn_folded.svg")
    assert "× T   t = 1…T" in folded and sum(t == "hₜ = tanh(·)" for t in folded) == 1
    assert "× T   backward loop, t = T…1" in svg_texts(tmp_path / "rnn_folded_backward.svg")
    for name in ("rnn_unrolled", "rnn_unrolled_backward"):
        texts = svg_texts(tmp_path / f"{name}.svg")
        assert not any(t.startswith("×") for t in texts)
        assert [t for t in texts if re.fullmatch(r"h[₁₂₃] = tanh\(·\)", t)] == ["h₁ = tanh(·)", "h₂ = tanh(·)",
                                                                             "h₃ = tanh(·)"]
    assert any(t.startswith("∂L/∂h₁") for t in svg_texts(tmp_path / "rnn_unrolled_backward.svg"))

    # ‖∂L/∂h_t‖ over t: the RNN's and the LSTMs' curves by BPTT by hand
    curves, X, Y, T = result["curves"], result["X"], result["Y"], result["T"]
    _, dh, _ = rnn_bptt(weights(curves["rnn"]["model"]), X, Y, per_step=False)
    assert curves["rnn"]["dh"] == pytest.approx([np.linalg.norm(d) for d in dh], rel=1e-9)
    for kind in ("lstm", "lstm_forget1"):
        dh, dc, _ = lstm_last_step_grads(weights(curves[kind]["model"]), X, Y)
        assert curves[kind]["dh"] == pytest.approx([np.linalg.norm(d) for d in dh], rel=1e-9)
        assert curves[kind]["dc"][:T] == pytest.approx([np.linalg.norm(d) for d in dc[:T]], rel=1e-9)
    assert result["bptt_check"] < 1e-12
    # the tanh RNN's gradient vanishes through time faster than either LSTM's
    ratios = result["ratios"]
    assert ratios["rnn"] < 1e-8 and ratios["rnn"] < ratios["lstm"] < ratios["lstm_forget1"]
    assert result["per_step"]["rnn"] < result["per_step"]["lstm"] < result["per_step"]["lstm_forget1"] < 1
    assert numbers_after(out, "‖∂L/∂h_1‖/‖∂L/∂h_T‖:") == pytest.approx(
        [v for k in ("rnn", "lstm", "lstm_forget1") for v in (ratios[k],)], rel=1e-3)
    W_hh = curves["rnn"]["model"].W_hh.value
    assert curves["rnn"]["rho"] == pytest.approx(np.max(np.abs(np.linalg.eigvals(W_hh))))
    assert numbers_after(out, "w^1000:")[::2] == pytest.approx([1.0, 1.01 ** 1000, 0.99 ** 1000, 0.0], rel=1e-3)
    assert is_png(tmp_path / "grad_through_time.png")


# ---------------------------------------------------------------- 18 LSTM gates
def test_18_lstm_gates(tmp_path, capsys):
    result, out = run_script("18_lstm_gates", tmp_path, capsys)
    lines = [ln.rstrip() for ln in out.splitlines()]
    # the gate equations and their gradients through time, printed by sg.pretty / sg.latex
    assert "  cₜ = cₜ₋₁ ⊙ fₜ + gₜ ⊙ iₜ" in lines and "  hₜ = oₜ ⊙ tanh(cₜ)" in lines
    assert "  lstm.W_if = lstm.W_ih[:, 3:6]" in lines and "  lstm.b_f = lstm.b_if + lstm.b_hf" in lines
    assert "    δ_oₜ = tanh(cₜ) ⊙ δ_hₜ" in lines and "  δ_c_T = 0" in lines
    assert "  ∂L/∂lstm.W_hf = Σₜ hₜ₋₁ ⋅((-fₜ + 𝟙) ⊙ fₜ ⊙ δ_fₜ)" in lines
    assert any(ln.startswith("    δ_cₜ = ") and ln.endswith("⊙ fₜ₊₁") for ln in lines)  # the cell's δ times f
    tex = (tmp_path / "formulas.tex").read_text(encoding="utf-8")
    assert r"c_{t} &= c_{t-1} \odot f_{t} + g_{t} \odot i_{t}" in tex and r"\delta_{c_{t}} &=" in tex

    # the equations' numbers: sg.grad to rounding, ∂L/∂W_hf as BPTT by hand computes it
    ck = result["check"]
    assert max(ck["diffs"].values()) < 1e-12 and len(ck["diffs"]) == 4
    p = weights(result["equations"]["lstm"])
    _, _, dW = lstm_last_step_grads(p, ck["feeds"]["x"], ck["feeds"]["y"])
    printed = numbers_after(out, "∂L/∂lstm.W_hf = Σ_t h_{t−1}ᵀ((1 − f_t) ⊙ f_t ⊙ δ_f_t) =")
    assert printed == pytest.approx(dW[:, 3:6].ravel(), abs=5e-7)

    # the cell drawn: the body once in the × T box with its named gates, forward and backward
    texts = svg_texts(tmp_path / "lstm_cell.svg")
    assert "× T   t = 1…T" in texts
    for gate, act in (("i", "σ"), ("f", "σ"), ("g", "tanh"), ("o", "σ")):
        assert sum(t.startswith(f"{gate}ₜ = {act}(") for t in texts) == 1
    assert "× T   backward loop, t = T…1" in svg_texts(tmp_path / "lstm_cell_backward.svg")

    # training on the adding problem: the printed MSEs from a NumPy forward pass with the trained weights
    tr = result["trained"]
    X, Y, marked = tr["X"], tr["Y"], tr["marked"]
    assert np.array_equal(X[np.arange(len(X))[:, None], marked, 1], np.ones_like(marked, dtype=float))
    assert np.allclose(Y[:, 0], X[np.arange(len(X))[:, None], marked, 0].sum(1))
    p = weights(tr["lstm"])
    h, gates, _ = lstm_forward(p, X[:50])
    head = weights(tr["head"])
    h_all, _, _ = lstm_forward(p, X)
    mse = np.mean((h_all @ head["W"] + head["b"] - Y) ** 2)
    assert tr["final"] == pytest.approx(mse, rel=1e-10)
    assert numbers_after(out, "test MSE (500 sequences):")[:3] == pytest.approx(
        [tr["start"], mse, np.mean((Y - Y.mean()) ** 2)], abs=5e-6)
    # the gates the page shows are the LSTM's, and the printed means are theirs
    assert result["gates"]["agree"] < 1e-12
    for k in "ifgo":
        assert np.allclose(result["gates"][k], gates[k], atol=1e-12)
    is_marked = np.zeros((50, X.shape[1]), dtype=bool)
    np.put_along_axis(is_marked, marked[:50], True, axis=1)
    assert numbers_after(out, "  input gate i ")[:2] == pytest.approx(
        [gates["i"][is_marked].mean(), gates["i"][~is_marked].mean()], abs=5e-5)
    unit = result["stats"]["unit"]
    gap = gates["i"][is_marked].mean(0) - gates["i"][~is_marked].mean(0)
    assert unit == int(np.argmax(gap)) and f"unit {unit}, whose input gate" in out
    assert is_png(tmp_path / "lstm_gates.png") and is_png(tmp_path / "adding_training.png")
