"""Gallery pages on sequences (20 attention, 21 transformer encoder): each script runs in smoke mode;
its printed numbers are checked against NumPy references written here."""
from __future__ import annotations

import re

import numpy as np
import pytest

from test_gallery import is_png, numbers_after, run_script, svg_texts


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def causal_softmax(scores):
    n = scores.shape[-1]
    return softmax(np.where(np.triu(np.ones((n, n)), k=1) > 0, -np.inf, scores))


def printed_matrix(out: str, title: str) -> np.ndarray:
    lines = out.split(title, 1)[1].splitlines()[2:]
    rows = []
    for line in lines:
        values = re.findall(r"-?\d+\.\d{4}", line)
        if not values:
            break
        rows.append([float(v) for v in values])
    return np.array(rows)


# ---------------------------------------------------------------- 20 attention
def test_20_attention(tmp_path, capsys):
    result, out = run_script("20_attention", tmp_path, capsys)
    assert "scores = Q⋅K /√3" in out and "out = softmax⎝Q⋅K /√3⎠⋅V" in out
    assert "weights = softmax⎝Q⋅K /√3⎠" in out
    assert "attn.scores[i,j,k,l] = ⎨   m" in out and "√3⋅Σ K[i,j,l,m]⋅Q[i,j,k,m]" in out
    assert "-∞              for k - l ≤ -1" in out
    assert "mha.Q[i,j,k,l] = mha.b_q[4j + l] + Σ mha.W_q[m,4j + l]⋅x[i,k,m]" in out

    # the four-token example, recomputed from X and the projection weights
    ex = result["example"]
    Q, K, V = (ex["X"] @ ex[w] for w in ("W_q", "W_k", "W_v"))
    weights = softmax(Q @ K.T / np.sqrt(3))
    causal = causal_softmax(Q @ K.T / np.sqrt(3))
    for title, want in (("Q·Kᵀ (α₁,ᵢ = q¹·kⁱ in row 1)", Q @ K.T), ("weights = softmax(Q·Kᵀ/√3)", weights),
                        ("causal weights", causal), ("out = weights·V", weights @ V)):
        assert printed_matrix(out, title) == pytest.approx(want, abs=5e-5)
    assert np.allclose(ex["causal_out"], causal @ V, atol=1e-12)
    assert np.allclose(causal.sum(axis=1), 1) and np.all(np.triu(causal, k=1) == 0)
    assert numbers_after(out, "max |b¹ − v¹| =")[0] < 1e-12

    # √d: the printed standard deviations and saturation, recomputed with the page's random numbers
    rng = np.random.default_rng(1)
    for d, s, ss, m, ms in result["scaling"]:
        q, k = rng.normal(size=(200, 1, d)), rng.normal(size=(200, 8, d))
        dots = np.einsum("nqd,nkd->nqk", q, k)
        assert (s, ss) == pytest.approx((dots.std(), (dots / np.sqrt(d)).std()), abs=1e-9)
        assert (m, ms) == pytest.approx((softmax(dots).max(axis=-1).mean(),
                                         softmax(dots / np.sqrt(d)).max(axis=-1).mean()), abs=1e-9)
        assert f"  {d:4d}   {s:8.3f}   {ss:11.3f}" in out
    assert result["scaling"][-1][3] > 0.9 > 0.5 > result["scaling"][-1][4]  # unscaled d = 512 saturates

    # multi-head attention against a NumPy forward pass with the module's weights
    mh = result["multihead"]
    p = mh["module"].state_dict()
    X = mh["X"][0]
    split = [(X @ p[f"mha.W_{r}"] + p[f"mha.b_{r}"]).reshape(5, 2, 4).transpose(1, 0, 2) for r in "qkv"]
    heads_w = causal_softmax(split[0] @ split[1].transpose(0, 2, 1) / 2.0)
    concat = (heads_w @ split[2]).transpose(1, 0, 2).reshape(5, 8)
    assert np.allclose(mh["weights"][0], heads_w, atol=1e-12)
    assert np.allclose(mh["out"][0], concat @ p["mha.W_o"] + p["mha.b_o"], atol=1e-12)
    for row in ("  mha.Q        (batch, 2, 5, 4)", "  mha.scores   (batch, 2, 5, 5)",
                "  mha.concat   (batch, 5, 8)", "  mha.out      (batch, 5, 8)"):
        assert row in out
    assert "288 parameters" in out and 4 * 8 * 8 + 4 * 8 == 288
    texts = svg_texts(tmp_path / "multihead_shapes.svg")
    assert "(batch, 2, 5, 4)" in texts and "(batch, 5, 8)" in texts
    assert is_png(tmp_path / "attention_maps.png")


# ---------------------------------------------------------------- 21 transformer encoder
def layer_norm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps) * gamma + beta


def encoder_forward(p: dict, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Embedding + positions → post-norm encoder block (2 heads) → linear: logits and attention weights."""
    x = p["emb.E"][tokens] + p["pos.P"]
    n, t, d = x.shape
    a = "block.self_attn."
    q, k, v = ((x @ p[a + f"W_{r}"] + p[a + f"b_{r}"]).reshape(n, t, 2, d // 2).transpose(0, 2, 1, 3)
               for r in "qkv")
    w = softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // 2))
    attn = (w @ v).transpose(0, 2, 1, 3).reshape(n, t, d) @ p[a + "W_o"] + p[a + "b_o"]
    h = layer_norm(x + attn, p["block.norm1.gamma"], p["block.norm1.beta"])
    ff = np.maximum(h @ p["block.linear1.W"] + p["block.linear1.b"], 0) @ p["block.linear2.W"] + p["block.linear2.b"]
    out = layer_norm(h + ff, p["block.norm2.gamma"], p["block.norm2.beta"])
    return out @ p["head.W"] + p["head.b"], w


def test_21_transformer(tmp_path, capsys):
    result, out = run_script("21_transformer", tmp_path, capsys)
    p = {k: v for m in result["modules"].values() for k, v in m.state_dict().items()}
    sizes = {k: m.num_parameters() for k, m in result["modules"].items()}
    # block: 4 attention matrices 16×16 and biases, FF 16·32 + 32 + 32·16 + 16, two norms' γ and β
    assert sizes == {"emb": 160, "pos": 80, "block": 4 * (256 + 16) + 16 * 32 + 32 + 32 * 16 + 16 + 4 * 16,
                     "head": 170}
    assert f"parameters: emb 160, pos 80, block 2224, head 170; {sum(sizes.values())} in all" in out
    for row in ("  block.self_attn.Q        (batch, 2, 5, 8)", "  block.self_attn.weights  (batch, 2, 5, 5)",
                "  block.linear1.a          (batch, 5, 32)", "  block.out                (batch, 5, 16)"):
        assert row in out
    assert "ln.out[i,j] = ln.β[j] + " in out
    # the printed accuracies are those a NumPy forward pass with the trained weights gives
    logits, weights = encoder_forward(p, result["X_test"])
    assert np.allclose(weights, result["weights"], atol=1e-9)
    predicted, Y = logits.argmax(axis=-1), result["Y_test"]
    assert np.array_equal(Y, result["X_test"][:, ::-1])
    token, seq = np.mean(predicted == Y), np.mean(np.all(predicted == Y, axis=1))
    assert (result["token_accuracy"], result["sequence_accuracy"]) == (token, seq)
    assert f"token accuracy {100 * token:.1f} %, whole-sequence accuracy {100 * seq:.1f} %" in out
    assert token > 0.25  # three smoke epochs on 600 sequences already beat chance (10 %)
    losses = numbers_after(out, "loss per epoch:")
    assert losses == pytest.approx(result["loss"], abs=5e-4) and losses[-1] < losses[0]
    mirrored = weights[:, :, np.fliplr(np.eye(5)) > 0].sum(axis=-1).mean(axis=0) / 5
    assert numbers_after(out, "mirrored position T − 1 − t, per head:")[:2] == pytest.approx(mirrored, abs=5e-4)
    assert "block.self_attn" in svg_texts(tmp_path / "transformer_collapsed.svg")
    assert "∂L/∂block" in svg_texts(tmp_path / "transformer_backward_collapsed.svg")
    assert is_png(tmp_path / "training_and_attention.png")
