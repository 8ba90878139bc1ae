"""Gallery pages on models (15 universal approximation, 16 CNN, 19 embeddings, 22 VAE): each script
runs in smoke mode; its printed numbers are checked against NumPy references written here, fed the
weights the script returns."""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from test_gallery import is_png, numbers_after, run_script, svg_texts


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------- 15 universal approximation
def target(x):
    return np.sin(3 * x) + 0.5 * x


def staircase_error(n: int, xs: np.ndarray) -> float:
    """The page's recipe, written again: n steps on [−2, 2], sigmoid k centred mid-step with slope
    4/Δ and height f(t_k) − f(t_{k−1}), plus f(−2); its largest error on the grid."""
    knots = np.linspace(-2.0, 2.0, n + 1)
    slope = 4.0 / (4.0 / n)
    y = target(knots[0]) + sum((target(knots[k + 1]) - target(knots[k])) *
                               sigmoid(slope * (xs - (knots[k] + knots[k + 1]) / 2)) for k in range(n))
    return float(np.max(np.abs(y - target(xs))))


def test_15_universal_approximation(tmp_path, capsys):
    fits, out = run_script("15_universal_approximation", tmp_path, capsys)
    assert "y = b + c₁⋅σ(b₁ + w₁⋅x) + c₂⋅σ(b₂ + w₂⋅x) + c₃⋅σ(b₃ + w₃⋅x)" in out
    assert "∂y/∂c₁ = σ(b₁ + w₁⋅x)" in out
    assert "∂y/∂w₁ = c₁⋅x⋅(1 - σ(b₁ + w₁⋅x))⋅σ(b₁ + w₁⋅x)" in out
    assert "y[i,j] = b₀ + Σ σ(b[k] + w[0,k]⋅x[i,0])⋅c[k,j]" in out
    xs = np.linspace(-2.0, 2.0, 201)
    rows = {int(ln.split()[0]): [float(v) for v in ln.split()[1:]]
            for ln in (tmp_path / "errors.txt").read_text().splitlines()[2:]}
    assert sorted(rows) == sorted(fits) == [1, 4, 8]
    for n, (stair, from_stair, from_random) in rows.items():
        assert stair == pytest.approx(staircase_error(n, xs), abs=5e-5)
        for key, printed in (("from staircase", from_stair), ("from random", from_random)):
            p = fits[n][key]
            y = p["b0"] + sigmoid(np.outer(xs, p["w"]) + p["b"]) @ p["c"]
            assert printed == pytest.approx(float(np.max(np.abs(y - target(xs)))), abs=5e-5)
    assert rows[8][1] < rows[8][0]  # Adam improves on the written-down staircase
    # the drawing: N = 3 staircase weights at x = 0.5, L = (y − f(0.5))²
    knots = np.linspace(-2.0, 2.0, 4)  # Δ = 4/3, slope 4/Δ = 3
    y = target(-2.0) + sum((target(knots[k + 1]) - target(knots[k]))
                           * sigmoid(3 * (0.5 - (knots[k] + knots[k + 1]) / 2)) for k in range(3))
    texts = svg_texts(tmp_path / "three_sigmoids.svg")
    assert "L = (y − t)²" in texts and f"{(y - target(0.5)) ** 2:.4g}" in texts
    assert is_png(tmp_path / "sum_of_sigmoids.png")


# ---------------------------------------------------------------- 16 CNN
def cnn_logits(state: dict, X: np.ndarray) -> np.ndarray:
    """Conv 3×3 (padding 1) → ReLU → 2×2 max pool → flatten (channel, row, column) → linear."""
    W, b = state["cnn.0.W"], state["cnn.0.b"]
    padded = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))
    n, _, h, w = X.shape
    Z = np.zeros((n, W.shape[0], h, w))
    for p in range(3):
        for q in range(3):
            Z += np.einsum("nchw,kc->nkhw", padded[:, :, p:p + h, q:q + w], W[:, :, p, q])
    A = np.maximum(Z + b[None, :, None, None], 0)
    P = A.reshape(n, W.shape[0], h // 2, 2, w // 2, 2).max(axis=(3, 5))
    return P.reshape(n, -1) @ state["cnn.4.W"] + state["cnn.4.b"]


def test_16_cnn(tmp_path, capsys):
    result, out = run_script("16_cnn", tmp_path, capsys)
    rows = re.findall(r"^  (\d)×\d (?:image|map|digit)\s+(\d)×\d (filter|max pool)\s+(\d)\s+(\d)\s+"
                      r"(\d)×\d\s+(\d)×\d$", out, flags=re.M)
    assert len(rows) == 8
    for n, k, _, s, p, formula, node in rows:
        want = (int(n) + 2 * int(p) - int(k)) // int(s) + 1
        assert int(formula) == int(node) == want
    assert [r[5] for r in rows[:5]] == ["4", "2", "2", "6", "3"]  # the notes' 6×6 image, 3×3 filter
    assert "16·4·4 = 256 inputs to the linear layer (symgrad: 256)" in out
    # one pooled value sees the 4×4 patch of rows and columns 1-4 (3×3 windows around rows 2-3)
    field = np.zeros((8, 8), bool)
    field[1:5, 1:5] = True
    assert np.array_equal(result["receptive"] != 0, field)
    assert "depends on 16 pixels" in out and "  · ■ ■ ■ ■ · · ·" in out
    assert "Z[i,j,k,l] = b[j] +  Σ  W[j,0,p,q]⋅X[i,0,2k + p - 1,2l + q - 1]" in out
    assert "∂L/∂W[i,j,k,l] =   Σ   X[n,j,k + 2m - 1,l + 2p - 1]⋅δ_Z[n,i,m,p]" in out
    assert "∂L/∂cnn.0.W[i,j,k,l] =   Σ   X[n,j,k + m - 1,l + p - 1]⋅δ_cnn.0.z[n,i,m,p]" in out
    assert numbers_after(out, "against sg.grad: largest difference")[0] < 1e-9
    # the printed test accuracy is the one a NumPy forward pass with the trained weights gives
    state = result["model"].state_dict()
    predicted = cnn_logits(state, result["X_test"]).argmax(axis=1)
    correct = int(np.sum(predicted == result["y_test"]))
    assert result["accuracy"] == correct / len(predicted)
    assert f"test accuracy: {100 * correct / len(predicted):.1f} % ({correct}/{len(predicted)} test images)" in out
    assert result["accuracy"] > 0.3  # two smoke epochs on 300 images already beat chance (10 %)
    assert "cnn.0" in svg_texts(tmp_path / "cnn_collapsed.svg")
    assert is_png(tmp_path / "filters_and_feature_maps.png") and is_png(tmp_path / "training_curves.png")


# ---------------------------------------------------------------- 19 embeddings
def test_19_embeddings(tmp_path, capsys):
    result, out = run_script("19_embeddings", tmp_path, capsys)
    vocab, E = result["vocab"], result["E"]
    assert ("'The course contents are well organized' → ['the', 'course', 'contents', 'are', 'well', "
            "'organized']") in out
    texts = [s for sentences in result["corpus"].values() for s in sentences]
    counts = Counter(t for s in texts for t in re.findall(r"[a-z]+|\.", s.lower()))
    assert vocab.itos == ("<pad>", "<unk>") + tuple(sorted(counts, key=lambda t: (-counts[t], t)))
    ids = [vocab[t] for t in ("the", "course", "contents", "are", "well", "organized")]
    assert f"'The course contents are well organized' → {ids}" in out
    assert f"  {vocab['cat']:2d} cat ({counts['cat']})" in out
    assert numbers_after(out, "(largest difference")[0] == 0.0
    assert "emb.out[i,j,k] = emb.E[ids[i, j],k]" in out and "∂L/∂emb.E[i,j] =  Σ  ⎨" in out
    # <pad> is masked and <unk> never occurs: their rows get no gradient, every other row moves
    moved = ~np.all(E == result["start"], axis=1)
    assert not moved[:2].any() and moved[2:].all()
    assert "rows of E that training never moved: <pad>, <unk>" in out
    # nearest neighbours among the words of one topic, counted here
    topic_of = {}
    for topic, sentences in result["corpus"].items():
        for s in sentences:
            for t in re.findall(r"[a-z]+|\.", s.lower()):
                topic_of.setdefault(t, set()).add(topic)
    words = [w for w in vocab.itos[2:] if len(topic_of[w]) == 1]
    same = 0
    for w in words:
        d = {o: np.linalg.norm(E[vocab[o]] - E[vocab[w]]) for o in words if o != w}
        same += topic_of[min(d, key=d.get)] == topic_of[w]
    assert f"of the {len(words)} words used in one topic only, {same} have" in out
    # the new sentences' topic probabilities: masked mean of the rows, linear layer, softmax
    ids = result["new_ids"]
    mask = (ids != 0)[..., None]
    h = (E[ids] * mask).sum(axis=1) / mask.sum(axis=1)
    logits = h @ result["head_W"] + result["head_b"]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    for sentence, p in zip(("'A mouse runs.'", "'She eats an apple.'", "'The model reads text.'"), probs):
        assert numbers_after(out, sentence + " → ['") == pytest.approx(p, abs=6e-4)
    assert "['the', 'model', '<unk>', 'text', '.']" in out
    assert "emb" in svg_texts(tmp_path / "embed_forward.svg")
    assert is_png(tmp_path / "embedding_2d.png")


# ---------------------------------------------------------------- 22 VAE
def vae_forward(params: dict, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """μ, log σ² and the reconstruction from z = μ."""
    h = np.maximum(X @ params["enc.W"] + params["enc.b"], 0)
    mu = h @ params["enc_mu.W"] + params["enc_mu.b"]
    logvar = h @ params["enc_logvar.W"] + params["enc_logvar.b"]
    d = np.maximum(mu @ params["dec.0.W"] + params["dec.0.b"], 0)
    return mu, logvar, sigmoid(d @ params["dec.1.W"] + params["dec.1.b"])


def bce(xhat, X):
    """Cross-entropy summed over the pixels, mean over the images; logs clamped at −100 as sg.losses.bce."""
    with np.errstate(divide="ignore"):
        log_p, log_q = np.maximum(np.log(xhat), -100.0), np.maximum(np.log(1 - xhat), -100.0)
    return float(np.mean(-np.sum(X * log_p + (1 - X) * log_q, axis=1)))


def test_22_vae(tmp_path, capsys):
    result, out = run_script("22_vae", tmp_path, capsys)
    lines = out.splitlines()
    for line in ("z = ε⋅σ + μ", "∂z/∂μ = 1", "∂z/∂σ = ε", "∂KL/∂μ = μ", "  ε ~ 𝒩(0, 1)",
                 "  z = σ ⊙ ε + μ", "  δ_σ = δ_z ⊙ ε"):
        assert line in lines
    assert "∂KL/∂s = ──────" in out and "δ_μ = ─────⋅μ + δ_z" in out
    # the drawing at μ = 0.5, s = −1, ε = 0.8: z = μ + e^(s/2)·ε, L = z², ∂L/∂μ = 2z, ∂L/∂s = z·ε·σ
    sigma = np.exp(-0.5)
    z = 0.5 + sigma * 0.8
    texts = svg_texts(tmp_path / "reparameterisation.svg")
    for value in (z, z * z, 2 * z, z * 0.8 * sigma, 2 * z * 0.8):
        assert f"{value:.4g}" in texts
    assert "ε ~ 𝒩(0, 1)" in texts
    # the table: reconstruction from z = μ, KL per dim and the mean-image baseline, computed here
    params = {p.name: p.value for p in result["model"]["params"]}
    X_te, X_tr = result["X_test"], result["X_train"]
    mu, logvar, xhat = vae_forward(params, X_te)
    assert numbers_after(out, "reconstruction from z = μ (ε = 0), cross-entropy") == pytest.approx(
        [bce(xhat, X_te)], abs=6e-3)
    kl = np.mean(-0.5 * (1 + logvar - mu ** 2 - np.exp(logvar)), axis=0)
    assert numbers_after(out, "KL to the prior, per latent dim (ε = 0)") == pytest.approx(kl, abs=6e-3)
    mean = np.clip(X_tr.mean(axis=0), 1e-6, 1 - 1e-6)
    assert numbers_after(out, "mean training image for every image (no code)") == pytest.approx(
        [bce(np.broadcast_to(mean, X_te.shape), X_te)], abs=6e-3)
    np.testing.assert_allclose(result["mu"], mu, rtol=1e-9, atol=1e-12)
    history = result["history"]
    assert history["loss"][-1] < history["loss"][0]
    assert numbers_after(out, "−ELBO = reconstruction + KL, ε drawn (last epoch)") == pytest.approx(
        [history["val_loss"][-1]], abs=6e-3)
    for name in ("latent_2d.png", "samples.png"):
        assert is_png(tmp_path / name)
