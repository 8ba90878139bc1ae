"""Gallery pages on training deep networks (10-14): each script runs in smoke mode; its printed
numbers are checked against NumPy references written here and against the models it returns."""
from __future__ import annotations

import re

import numpy as np
import pytest
import sympy

import symgrad as sg
from test_gallery import is_png, numbers_after, run_script, svg_node_count, svg_texts


# ---------------------------------------------------------------- NumPy references
def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softmax_xent_grad(logits, labels):
    """The gradient of the mean cross-entropy over the batch with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    d = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    d[np.arange(len(labels)), labels] -= 1.0
    return d / len(labels)


ACTIVATIONS = {"sigmoid": (sigmoid, lambda z: sigmoid(z) * (1 - sigmoid(z))),
               "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
               "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float))}


def mlp_activations(Ws, X, act):
    """The hidden activations of a bias-free MLP (or one whose biases are all zero)."""
    hs = [X]
    for W in Ws[:-1]:
        hs.append(ACTIVATIONS[act][0](hs[-1] @ W))
    return hs[1:]


def mlp_weight_grads(Ws, X, Y, act):
    """‖∂L/∂W_l‖ of a bias-free MLP (act between layers, linear output) by hand-written backprop."""
    f, df = ACTIVATIONS[act]
    hs, zs = [X], []
    for W in Ws[:-1]:
        zs.append(hs[-1] @ W)
        hs.append(f(zs[-1]))
    d = softmax_xent_grad(hs[-1] @ Ws[-1], Y)
    grads = [hs[-1].T @ d]
    for k in range(len(Ws) - 2, -1, -1):
        d = (d @ Ws[k + 1].T) * df(zs[k])
        grads.append(hs[k].T @ d)
    return [float(np.linalg.norm(g)) for g in reversed(grads)]


def residual_forward(Ws, X):
    h = np.maximum(X @ Ws[0], 0)
    for W in Ws[1:-1]:
        h = h + np.maximum(h @ W, 0)
    return h @ Ws[-1]


def residual_weight_grads(Ws, X, Y):
    """‖∂L/∂W_l‖ of x → ReLU(x W₀) → blocks h + ReLU(h W) → h W_last, by hand."""
    z0 = X @ Ws[0]
    hs, zs = [np.maximum(z0, 0)], []
    for W in Ws[1:-1]:
        zs.append(hs[-1] @ W)
        hs.append(hs[-1] + np.maximum(zs[-1], 0))
    d = softmax_xent_grad(hs[-1] @ Ws[-1], Y)
    grads = [hs[-1].T @ d]
    dh = d @ Ws[-1].T
    for k in range(len(Ws) - 3, -1, -1):          # block k maps hs[k] to hs[k + 1]
        dz = dh * (zs[k] > 0)
        grads.append(hs[k].T @ dz)
        dh = dh + dz @ Ws[k + 1].T                  # the skip path adds δ itself
    grads.append(X.T @ (dh * (z0 > 0)))
    return [float(np.linalg.norm(g)) for g in reversed(grads)]


# ---------------------------------------------------------------- pages
def test_10_vanishing_gradients(tmp_path, capsys):
    result, out = run_script("10_vanishing_gradients", tmp_path, capsys)
    assert "σ′(z) = (1 - σ(z))⋅σ(z)" in out and "σ′(0) = 0.2500" in out
    assert "δ_Z₁ = δ_A₁ ⊙ σ′(Z₁)" in out and "δ_A₁ = δ_Z₂⋅W₂" in out
    # the chain of four sigmoids at x = 0.5 with w = 1: the product of σ′ along the chain
    h, want = 0.5, 1.0
    for _ in range(4):
        h = sigmoid(h)
        want *= h * (1 - h)
    assert numbers_after(out, "four factors σ′ ≤ 1/4: ∂h₄/∂x =")[0] == pytest.approx(want, abs=5e-7)
    assert numbers_after(out, "w = 1.01: w¹⁰⁰⁰ =")[0] == pytest.approx(1.01 ** 1000, rel=1e-3)

    batch = result["batch"]
    X, Y = batch["X"], batch["Y"]
    for kind, label in (("sigmoid", "sigmoid, Xavier init"), ("relu", "ReLU, He init"),
                        ("exploding", "ReLU, N(0, 0.5²) init"), ("residual", "residual ReLU blocks")):
        Ws = result["init_weights"][kind]
        assert len(Ws) == 20
        want = (residual_weight_grads(Ws, X, Y) if kind == "residual"
                else mlp_weight_grads(Ws, X, Y, "sigmoid" if kind == "sigmoid" else "relu"))
        printed = numbers_after(out, label)
        assert printed[:3] == pytest.approx([want[0], want[9], want[-1]], rel=1e-3)
        assert printed[3] == pytest.approx(want[0] / want[-1], rel=2e-3)
    sig = result["init_norms"]["sigmoid"]
    assert sig[0] / sig[-1] < 1e-10 and all(a < b for a, b in zip(sig, sig[1:]))  # vanishes towards the input
    relu, res = result["init_norms"]["relu"], result["init_norms"]["residual"]
    assert 0.1 < relu[0] / relu[-1] < 10 and 0.1 < res[0] / res[-1] < 10      # level

    # training: printed losses and accuracies are the histories'; the residual model's accuracy recomputed
    for kind in ("sigmoid", "relu", "residual"):
        h = result["histories"][kind]
        line = numbers_after(out, f"  {kind:9} loss")
        assert line[:2] == pytest.approx([h["loss"][0], h["loss"][-1]], abs=5e-5)
        assert list(h.grad_norms) == [f"net.{i}.W" for i in range(20)]
    assert result["histories"]["sigmoid"].grad_norms["net.0.W"][-1] < 1e-9
    Ws = [p.value for _, p in result["models"]["residual"].named_parameters()]
    val = result["validation"]
    accuracy = 100 * np.mean(np.argmax(residual_forward(Ws, val["X"]), axis=1) == val["Y"])
    assert numbers_after(out, "  residual  loss")[2] == pytest.approx(accuracy, abs=0.05)
    assert "stopped it: fit: exploding gradients: gradient norm above max_grad_norm=1000" in out
    assert "max(c, ‖g‖)" in out
    for name in ("grad_norms_over_layers", "grad_norms_over_training", "grad_norms_sigmoid"):
        assert is_png(tmp_path / f"{name}.png")
    texts = svg_texts(tmp_path / "sigmoid_net_backward.svg")
    assert "∂L/∂net.0" in texts and svg_node_count(tmp_path / "sigmoid_net_backward.svg") > 10


def test_11_initialisation(tmp_path, capsys):
    result, out = run_script("11_initialisation", tmp_path, capsys)
    assert "Var(z) = Var(w)⋅Var(x)⋅n" in out
    # the formulas' values for a 64 × 64 layer, and the drawn matrices' spread near them
    for name, want in (("random", 0.01), ("xavier", np.sqrt(2 / 128)), ("he", np.sqrt(2 / 64))):
        line = next(ln for ln in out.splitlines() if ln.startswith(f"  {name:10} std = "))
        value, drawn = [float(v) for v in re.findall(r"= (\d\.\d+)   drawn: (\d\.\d+)", line)[0]]
        assert value == pytest.approx(want, abs=5e-5) and drawn == pytest.approx(want, rel=0.03)
    assert numbers_after(out, "max |WᵀW − I| =")[0] < 1e-12 and "‖Wx‖/‖x‖ = 1.000000" in out

    # per-layer statistics against a NumPy forward and backward pass with the networks' initial weights
    X, Y = result["batch"]["X"], result["batch"]["Y"]
    tanh_part, relu_part = out.split("relu network")[0].split("tanh network")[1], out.split("relu network")[1]
    for act, part in (("tanh", tanh_part), ("relu", relu_part)):
        for name in ("zeros", "constant", "random", "xavier", "he", "orthogonal"):
            Ws = result["stats"][(act, name)]["weights"]
            hs = mlp_activations(Ws, X, act)
            grads = mlp_weight_grads(Ws, X, Y, act)
            printed = numbers_after(part, f"  {name:10} activation std")
            want = [hs[0].std(), hs[-1].std(), grads[0], grads[-1]]
            if name == "constant":  # equal rows in the last W: the hidden layers' δ is 0 up to rounding
                assert printed[2] < 1e-12 * printed[3] and grads[0] < 1e-12 * grads[-1]
                printed, want = printed[:2] + printed[3:4], want[:2] + want[3:]
            assert printed[:len(want)] == pytest.approx(want, rel=2e-3, abs=1e-300)
            units = int(re.search(rf"  {name:10} .*distinct units: (\d+)", part).group(1))
            if name in ("zeros", "constant"):
                assert units == 1  # every unit of a layer computes the same thing
            elif act == "tanh":
                assert units == 64
    tanh_random = result["stats"][("tanh", "random")]["std"]
    assert tanh_random[-1] < 1e-6 * tanh_random[0]  # std 0.01 shrinks the signal at every layer

    # symmetry on the course's network: ∂L/∂W₃ at zero weights by hand, rows that stay copies
    assert "δ_h₂ = W₃" in out
    zeros = result["symmetry"]["zeros"]
    yhat, h2 = np.array([0.5, 0.5]), np.full(3, 0.5)
    dyhat = (yhat - np.array([1.0, 0.0])) / (yhat * (1 - yhat)) / 2
    dz = (np.diag(yhat) - np.outer(yhat, yhat)) @ dyhat
    np.testing.assert_allclose(zeros["grads"][2], np.outer(dz, h2), atol=1e-15)
    assert not zeros["grads"][0].any() and not zeros["grads"][1].any()
    assert "∂L/∂W₃ at the start = [[-0.25 -0.25 -0.25] [ 0.25  0.25  0.25]]" in out
    for name, rows in (("zeros", 1), ("constant", 1), ("random", 3)):
        params = result["symmetry"][name]["params"]
        W1, W2 = params[0].value, params[1].value
        assert len({tuple(np.round(r, 12)) for r in W1}) == rows and len({tuple(np.round(r, 12)) for r in W2}) == rows
        assert result["symmetry"][name]["rows"] == [rows, rows]
    assert len(re.findall(r"distinct rows of W₁: 1, of W₂: 1", out)) == 2
    assert "distinct rows of W₁: 3, of W₂: 3" in out

    histories = result["histories"]
    for name in ("zeros", "xavier"):
        line = numbers_after(out, f"  {name:10} loss")
        h = histories[name]
        assert line == pytest.approx([h["loss"][0], h["loss"][-1], 100 * h["val_accuracy"][-1]], abs=5e-5)
    assert histories["zeros"]["loss"][-1] == pytest.approx(np.log(10), abs=0.01)  # stuck at chance
    assert histories["xavier"]["val_accuracy"][-1] > histories["zeros"]["val_accuracy"][-1] + 0.2
    assert is_png(tmp_path / "layer_statistics.png")
    texts = svg_texts(tmp_path / "zero_init_backward.svg")
    assert "[[0, 0, 0]," in texts and "[[-0.25, -0.25, -0.25]," in texts
