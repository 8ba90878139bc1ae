"""Gallery pages on training deep networks (10-14): each script runs in smoke mode; its printed
numbers are checked against NumPy references written here and against the models it returns."""
from __future__ import annotations

import re

import numpy as np
import pytest
import sympy

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


def regression_net_mse(net, data):
    """The MSE of the 1-64-64-1 tanh network of page 12 in evaluation mode, by a NumPy forward pass."""
    p = {name.split(".", 1)[1]: v.value for name, v in net.named_parameters()}
    fc = sorted({k.split(".")[0] for k in p if k.endswith(".W")}, key=int)
    h = data["X"]
    for k, i in enumerate(fc):
        h = h @ p[f"{i}.W"] + p[f"{i}.b"]
        if k < len(fc) - 1:
            h = np.tanh(h)
    return float(np.mean((h - data["Y"]) ** 2))


def test_12_regularisation(tmp_path, capsys):
    result, out = run_script("12_regularisation", tmp_path, capsys)
    assert "∂J/∂W₂ = 2⋅λ⋅W₂ + " in out and "∂J/∂W₁ = 2⋅λ⋅W₁ + " in out  # the penalty's 2λW
    assert "g ← g + λ⋅θ" in out
    assert numbers_after(out, "largest difference of the weights")[0] < 1e-15
    assert "m ~ Bernoulli(0.8)" in out and "D = 5/4⋅(H ⊙ m)" in out and "δ_H = 5/4⋅(m ⊙ δ_D)" in out
    zero_fraction, mean = numbers_after(out, "on 100,000 ones: fraction set to 0 =")[::2]
    assert zero_fraction == pytest.approx(0.2, abs=0.005) and mean == pytest.approx(1.0, abs=0.01)

    runs, train, val = result["runs"], result["train"], result["val"]
    assert train["X"].shape == (15, 1) and val["X"].shape == (200, 1)
    labels = {"none": "  none ", "L2": "  L2 (λ = 0.003) ", "dropout": "  dropout (p = 0.2) ",
              "early stopping": "  early stopping (patience 25) "}
    for name, label in labels.items():
        line = numbers_after(out, label)
        net = runs[name]["net"]
        assert net.training  # the script gave the module back in training mode
        if name != "early stopping":  # the last epoch's weights are the ones kept
            assert line[:2] == pytest.approx([regression_net_mse(net, train), regression_net_mse(net, val)], abs=5e-5)
        weights = sum(float((p.value ** 2).sum()) for n, p in net.named_parameters() if n.endswith(".W"))
        assert line[-1] == pytest.approx(weights, abs=0.005)
        curves = runs[name]["curves"]
        assert line[2] == pytest.approx(min(curves["val"]), abs=5e-5)
    assert numbers_after(out, labels["L2"])[-1] < numbers_after(out, labels["none"])[-1]  # the penalty shrinks the weights
    h = runs["early stopping"]["history"]
    restored = numbers_after(out, "validation MSE of the restored weights")[0]
    assert restored == pytest.approx(regression_net_mse(runs["early stopping"]["net"], val), abs=5e-5)
    assert restored == pytest.approx(h.best("val_loss"), abs=5e-5)
    assert f"put back epoch {h.best_epoch}:" in out
    for name in ("train_validation_curves", "fitted_functions"):
        assert is_png(tmp_path / f"{name}.png")
    assert "m ~ Bernoulli(0.8)" in svg_texts(tmp_path / "dropout_backward.svg")


def norm_backward_reference(xs, V, W, gamma, beta, axis, eps=1e-5):
    """δ_h of L = Σ tanh(norm(X V) W) for batch norm (axis 0) or layer norm (axis 1), by hand:
    each step of the chain rule through x̂ = (h − μ)/√(σ² + ε), μ and σ² over ``axis``."""
    h = xs @ V
    n = h.shape[axis]
    mu = h.mean(axis=axis, keepdims=True)
    xc = h - mu
    var = (xc ** 2).mean(axis=axis, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = xc * inv
    y = xhat * gamma + beta
    dy = (1 - np.tanh(y @ W) ** 2) @ W.T
    dxhat = dy * gamma
    dvar = (dxhat * xc).sum(axis=axis, keepdims=True) * -0.5 * inv ** 3
    dmu = -(dxhat * inv).sum(axis=axis, keepdims=True) - 2 * dvar * xc.mean(axis=axis, keepdims=True)
    return dxhat * inv + dvar * 2 * xc / n + dmu / n


def test_13_normalisation(tmp_path, capsys):
    result, out = run_script("13_normalisation", tmp_path, capsys)
    for lhs in ("δ_bn.x̂ =", "δ_bn.var =", "δ_bn.xc =", "δ_bn.μ =", "δ_ln.x̂ =", "δ_ln.var =", "δ_ln.μ =", "δ_h ="):
        assert lhs in out
    for kind, axis in (("batch", 0), ("layer", 1)):
        eq = result["equations"][kind]
        V, W, gamma, beta = (p.value for p in eq["params"])
        want = norm_backward_reference(eq["xs"], V, W, gamma, beta, axis)
        np.testing.assert_allclose(eq["values"]["δ_h"], want, atol=1e-12)
        np.testing.assert_allclose(eq["compact"], want, atol=1e-12)
    compact, vs_grad = numbers_after(out, "the compact form gives the same, largest difference")[0], \
        numbers_after(out, "against sg.grad: largest difference")[0]
    assert compact < 1e-13 and vs_grad < 1e-12

    assert "bn.running_mean ← bn.μ/10 + 9/10⋅bn.running_mean" in out
    eq = result["equations"]["batch"]
    h = eq["xs"] @ eq["params"][0].value
    running = numbers_after(out, "one step on the 6 samples above: bn.running_mean =")
    np.testing.assert_allclose(running[:2], 0.1 * h.mean(axis=0), atol=5e-5)
    np.testing.assert_allclose(running[2:], 0.9 + 0.1 * h.var(axis=0, ddof=1), rtol=5e-4)
    np.testing.assert_allclose(result["running"]["running_var"], 0.9 + 0.1 * h.var(axis=0, ddof=1), rtol=1e-12)
    assert "bn.running_mean" in out.split("In evaluation mode")[1].split("wrote")[0]

    # the trained networks: evaluation-mode accuracy recomputed by a NumPy forward pass with the running statistics
    val = result["validation"]
    for kind, label in (("none", "  none "), ("batch norm", "  batch norm "), ("layer norm", "  layer norm ")):
        run = result["runs"][kind]
        params = {n: p.value for n, p in run["net"].named_parameters()}
        buffers = {n: b.value for n, b in run["net"].named_buffers()}
        logits = numpy_deep_net(params, buffers, val["X"], kind)
        accuracy = 100 * np.mean(np.argmax(logits, axis=1) == val["Y"])
        line = numbers_after(out, label)
        assert line[3] == pytest.approx(accuracy, abs=0.05)
        assert line[:2] == pytest.approx([run["history"]["loss"][0], run["history"]["loss"][-1]], abs=5e-5)
    none, bn = numbers_after(out, "  none ")[4], numbers_after(out, "  batch norm ")[4]
    assert none < 1e-4 < 1e-2 < bn  # the first layer's gradient vanishes without normalisation
    assert is_png(tmp_path / "training_with_and_without.png")
    assert "evaluation graph — reads bn.running_mean, bn.running_var" in svg_texts(tmp_path / "batch_norm_evaluation.svg")
    assert svg_node_count(tmp_path / "batch_norm_backward.svg") > 20


def numpy_deep_net(params, buffers, x, kind, depth=10, eps=1e-5):
    """Page 13's network in evaluation mode: Linear → (batch norm | layer norm) → sigmoid, ×9, then Linear.
    Its Sequential names the children net.0, net.1, …: three per layer with a norm, two without."""
    per = 2 if kind == "none" else 3
    for layer in range(depth - 1):
        i = per * layer
        x = x @ params[f"net.{i}.W"]
        if kind == "none":
            x = x + params[f"net.{i}.b"]
        elif kind == "batch norm":
            mean, var = buffers[f"net.{i + 1}.running_mean"], buffers[f"net.{i + 1}.running_var"]
            x = (x - mean) / np.sqrt(var + eps) * params[f"net.{i + 1}.gamma"] + params[f"net.{i + 1}.beta"]
        else:
            mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
            x = (x - mu) / np.sqrt(var + eps) * params[f"net.{i + 1}.gamma"] + params[f"net.{i + 1}.beta"]
        x = sigmoid(x)
    last = per * (depth - 1)
    return x @ params[f"net.{last}.W"] + params[f"net.{last}.b"]


def tanh_blocks_grads(values, X, Y, skip):
    """‖∂L/∂h_l‖, l = 0 … 30, of page 14's network (64 → tanh → 30 blocks → 10) by hand; ``values`` are
    [W_in, b_in, W_1, b_1, …, W_out, b_out]."""
    W_in, b_in, W_out, b_out = values[0], values[1], values[-2], values[-1]
    blocks = [(values[i], values[i + 1]) for i in range(2, len(values) - 2, 2)]
    hs, gs = [np.tanh(X @ W_in + b_in)], []
    for W, b in blocks:
        gs.append(np.tanh(hs[-1] @ W + b))
        hs.append(hs[-1] + gs[-1] if skip else gs[-1])
    dh = softmax_xent_grad(hs[-1] @ W_out + b_out, Y) @ W_out.T
    norms = [np.linalg.norm(dh)]
    for (W, b), g in zip(reversed(blocks), reversed(gs)):
        dbranch = ((1 - g ** 2) * dh) @ W.T
        dh = dbranch + dh if skip else dbranch
        norms.append(np.linalg.norm(dh))
    return norms[::-1], hs[-1] @ W_out + b_out


def test_14_residual(tmp_path, capsys):
    result, out = run_script("14_residual", tmp_path, capsys)
    dH = 0.8 * 0.5 * (1 - np.tanh(0.8 * 0.5) ** 2)
    assert "+ 1 = 1.34226" in out
    assert numbers_after(out, "the path through H ∂H/∂x =")[:3] == pytest.approx([dH, dH, 1 + dH], abs=5e-7)
    chain = result["scalar"]["chain"]
    assert len(chain.paths) == 2 and chain.value == pytest.approx(1 + dH, abs=1e-12)
    sym = {str(v): v for v in chain.total.free_symbols}
    w1, w2, g = sym["w1"], sym["w2"], sym["g"]
    assert sympy.simplify(chain.total - (1 + w1 * w2 * (1 - g ** 2))) == 0  # ∂a/∂x = 1 + ∂H/∂x
    # k stacked blocks: 2^k paths, ∂a_k/∂x = Π(1 + ∂H_i/∂a_{i−1}) computed here
    a, product = 0.5, 1.0
    for k in range(1, 5):
        product *= 1 + 0.5 * (1 - np.tanh(0.5 * a) ** 2)
        a = a + np.tanh(0.5 * a)
        assert f"k = {k}: {2 ** k:2} paths" in out
        assert numbers_after(out, f"k = {k}:")[:2] == pytest.approx([product, product], abs=5e-7)
    line = next(ln for ln in out.splitlines() if "∂L/∂X = " in ln)
    assert line.rstrip().endswith("+ δ_A")  # the skip path adds δ_A itself
    assert "∂a/∂x = ∂a/∂a + ∂a/∂z · w₁" in svg_texts(tmp_path / "residual_block_chain_rule.svg")

    X, Y = result["batch"]["X"], result["batch"]["Y"]
    for kind in ("plain", "residual"):
        run = result["runs"][kind]
        want, _ = tanh_blocks_grads(run["init_values"], X, Y, kind == "residual")
        printed = numbers_after(out, f"  {kind:8} h₀ (input side):")
        assert printed == pytest.approx([want[0], want[15], want[30], want[0] / want[30]], rel=1e-3)
        assert run["init_norms"] == pytest.approx(want, rel=1e-9)
    assert result["runs"]["plain"]["init_norms"][0] < 1e-6 * result["runs"]["plain"]["init_norms"][-1]
    assert result["runs"]["residual"]["init_norms"][0] > result["runs"]["residual"]["init_norms"][-1]

    val = result["validation"]
    for kind in ("plain", "residual"):
        run = result["runs"][kind]
        h = run["history"]
        _, logits = tanh_blocks_grads([p.value for p in run["params"]], val["X"], val["Y"], kind == "residual")
        accuracy = 100 * np.mean(np.argmax(logits, axis=1) == val["Y"])
        line = numbers_after(out, f"  {kind:8} loss")
        assert line[:3] == pytest.approx([h["loss"][0], h["loss"][-1], accuracy], abs=5e-5)
    assert numbers_after(out, "  plain    loss")[3] < 1e-6  # block 1 hardly moves without the skips
    assert is_png(tmp_path / "with_and_without_skips.png")
    assert svg_node_count(tmp_path / "residual_block_backward.svg") > 10
