"""The VAE of bench/vae_digits.py (issue 10): it trains with sg.fit and kl_normal, seeded fits
repeat exactly, and its backprop equations show the reparameterisation z = μ + σ ⊙ ε
(δ_μ = δ_z + the KL's term, δ_σ = δ_z ⊙ ε), with numbers checked against a hand-written NumPy
backward pass, sg.grad, the compiled function and the compiled training step."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import symgrad as sg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def vae():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import vae_digits
    finally:
        sys.path.remove(os.path.join(ROOT, "bench"))
    return vae_digits


@pytest.fixture(scope="module")
def smoke(vae):
    return vae.train(seed=0, verbose=False, **vae.SMOKE)


def _batch(n=5, seed=3):
    return np.random.default_rng(seed).uniform(0.0, 1.0, size=(n, 64))


def _values(params):
    return {p.name: np.array(p.value, copy=True) for p in params}


# ---------------------------------------------------------------- training
def test_smoke_vae_trains_with_fit_and_beats_the_mean_image(smoke):
    losses = smoke["train_loss"]
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    assert losses[-1] < 0.7 * losses[0]
    assert smoke["test_loss"][-1] < 0.7 * smoke["test_loss"][0]
    test, base = smoke["test"], smoke["baseline"]
    assert test["elbo_loss"] == pytest.approx(test["rec"] + test["kl"])
    assert test["kl"] > 0.1  # the code carries information about the image
    assert test["elbo_loss"] < base["mean_bce"]  # −ELBO below the best a code-free model can do
    assert test["rec_mu_sse"] < base["mean_sse"]
    np.testing.assert_allclose(test["kl_per_dim"].sum(), test["kl"], rtol=1e-12)


def test_bench_metrics_match_numpy(vae):
    X = _batch(7)
    xhat = np.clip(X[::-1] * 0.8 + 0.1, 0.0, 1.0)
    want = np.mean(-np.sum(X * np.log(xhat) + (1 - X) * np.log(1 - xhat), axis=1))
    assert vae.bce_per_image(xhat, X) == pytest.approx(want, rel=1e-12)
    assert vae.bce_per_image(X.round(), X.round()) == 0.0  # 0·log 0 = 0 (clamped log, as sg.losses.bce)
    assert vae.sse_per_image(xhat, X) == pytest.approx(np.mean(np.sum((xhat - X) ** 2, axis=1)))


def test_bench_loss_is_summed_bce_plus_kl_per_image(vae):
    m = vae.build(latent=3, hidden=5, seed=1)
    X, eps = _batch(4), np.random.default_rng(8).normal(size=(4, 3))
    loss, xhat, mu, logvar = sg.evaluate([m["loss"], m["xhat"], m["mu"], m["logvar"]],
                                         {"X": X, "ε": eps})
    rec = np.mean(-np.sum(X * np.log(xhat) + (1 - X) * np.log(1 - xhat), axis=1))
    kl = np.mean(-0.5 * np.sum(1 + logvar - mu ** 2 - np.exp(logvar), axis=1))
    assert float(loss) == pytest.approx(rec + kl, rel=1e-12)


def test_bench_main_smoke_prints_the_table(vae, capsys):
    assert vae.main(["--smoke", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "epoch   2  train loss" in out
    assert "mean training image (KL = 0)" in out and "PCA, 2 components" in out


def test_seeded_fit_repeats_exactly_and_the_seed_changes_the_draws(vae):
    X = vae.load(0)[0][:96]

    def run(fit_seed):
        m = vae.build(latent=2, hidden=8, seed=0)
        step = sg.compile_step(m["loss"], sg.optim.Adam(lr=1e-2), inputs=[m["X"]], params=m["params"])
        h = sg.fit(step, {"X": X}, epochs=2, batch_size=32, seed=fit_seed, shuffle=False, verbose=0)
        return h["loss"], _values(m["params"])

    (loss_a, a), (loss_b, b), (loss_c, c) = run(5), run(5), run(6)
    assert loss_a == loss_b
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # shuffle=False: the batches are the same, only ε differs
    assert loss_a != loss_c and not np.array_equal(a["enc_mu.W"], c["enc_mu.W"])


# ---------------------------------------------------------------- equations
def _lines(text: str, first: str, count: int) -> list[str]:
    """``count`` lines of ``text`` around the one whose text starts with ``first``: that line and
    the ones above and below it that a two-dimensional formula needs (count = 3)."""
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.lstrip().startswith(first))
    return lines[i - 1:i + 2] if count == 3 else [lines[i]]


def test_backprop_equations_print_the_reparameterisation(vae):
    m = vae.build(latent=2, hidden=3, seed=0)
    eq = sg.backprop_equations(m["loss"], m["params"])
    text = str(eq)
    assert text.splitlines()[:2] == ["forward:", "  ε ~ 𝒩(0, 1)"]
    assert "  σ = exp(logvar/2)" in text.splitlines()
    assert "  z = σ ⊙ ε + μ" in text.splitlines()
    # ∂z/∂σ = ε: the δ of σ is δ_z ⊙ ε
    assert _lines(text, "δ_σ =", 1) == ["  δ_σ = δ_z ⊙ ε"]
    # ∂z/∂μ = 1: the δ of μ is δ_z, plus the KL's own ∂KL/∂μ = μ/batch
    assert _lines(text, "δ_μ =", 3) == ["          1          ",
                                         "  δ_μ = ─────⋅μ + δ_z",
                                         "        batch        "]
    # ∂σ/∂logvar = σ/2, and the KL's (exp(logvar) − 1)/(2·batch)
    assert _lines(text, "δ_logvar =", 3) == ["                             1           1                ",
                                              "  δ_logvar = (σ ⊙ δ_σ)/2 - ─────⋅𝟙/2 + ─────⋅exp(logvar)/2",
                                              "                           batch       batch              "]
    order = [str(e.lhs) for e in eq.equations if e.kind == "delta"]
    assert order.index("δ_z") < order.index("δ_sigma") < order.index("δ_logvar") < order.index("δ_mu")
    latex = eq.latex()
    assert r"\epsilon &\sim \mathcal{N}(0, 1)" in latex
    assert r"z &= \sigma \odot \epsilon + \mu" in latex
    assert r"\delta_{\sigma} &= \delta_{z} \odot \epsilon" in latex
    assert r"\delta_{\mu} &= \delta_{z} + \frac{1}{batch} \mu" in latex


def test_backprop_equations_evaluate_like_grad_for_every_param(vae):
    m = vae.build(latent=2, hidden=3, seed=0)
    params = m["params"]
    eq = sg.backprop_equations(m["loss"], params)
    feeds = {"X": _batch(6)}
    for seed in (0, 11):
        got = eq.evaluate(feeds, seed=seed)
        want = sg.evaluate(sg.grad(m["loss"], params), feeds, seed=seed)
        assert len(want) == len(params) == 10
        for p, w in zip(params, want):
            np.testing.assert_allclose(got[f"∂L/∂{p.name}"], w, rtol=1e-10, atol=1e-13, err_msg=p.name)
    assert not np.allclose(got["δ_z"], eq.evaluate(feeds, seed=12)["δ_z"])  # a new seed draws a new ε


def _numpy_vae_backward(p: dict, X: np.ndarray, eps: np.ndarray) -> dict:
    """The VAE's gradients written out by hand (sigmoid + BCE summed over pixels folded into
    (x̂ − X)/B; KL = −½ Σ (1 + lv − μ² − e^lv) / B)."""
    B = len(X)
    a1 = X @ p["enc.0.W"] + p["enc.0.b"]
    h = np.maximum(a1, 0)
    mu = h @ p["enc_mu.W"] + p["enc_mu.b"]
    lv = h @ p["enc_logvar.W"] + p["enc_logvar.b"]
    s = np.exp(lv / 2)
    z = mu + s * eps
    a2 = z @ p["dec.0.W"] + p["dec.0.b"]
    g = np.maximum(a2, 0)
    xhat = 1 / (1 + np.exp(-(g @ p["dec.1.W"] + p["dec.1.b"])))
    d_o = (xhat - X) / B
    d_a2 = (d_o @ p["dec.1.W"].T) * (a2 > 0)
    d_z = d_a2 @ p["dec.0.W"].T
    d_mu = d_z + mu / B
    d_s = d_z * eps
    d_lv = d_s * s / 2 + (np.exp(lv) - 1) / (2 * B)
    d_a1 = (d_mu @ p["enc_mu.W"].T + d_lv @ p["enc_logvar.W"].T) * (a1 > 0)
    return {"δ_z": d_z, "δ_mu": d_mu, "δ_sigma": d_s, "δ_logvar": d_lv,
            "dec.1.W": g.T @ d_o, "dec.1.b": d_o.sum(0), "dec.0.W": z.T @ d_a2, "dec.0.b": d_a2.sum(0),
            "enc_mu.W": h.T @ d_mu, "enc_mu.b": d_mu.sum(0), "enc_logvar.W": h.T @ d_lv,
            "enc_logvar.b": d_lv.sum(0), "enc.0.W": X.T @ d_a1, "enc.0.b": d_a1.sum(0)}


def test_equations_and_grad_match_a_numpy_backward_with_eps_fed_by_name(vae):
    m = vae.build(latent=2, hidden=4, seed=2)
    params = m["params"]
    X, eps = _batch(5), np.random.default_rng(4).normal(size=(5, 2))
    want = _numpy_vae_backward({p.name: p.value for p in params}, X, eps)
    feeds = {"X": X, "ε": eps}  # the random node fed by its name: no draw
    got = sg.backprop_equations(m["loss"], params).evaluate(feeds)
    for key in ("δ_z", "δ_mu", "δ_sigma", "δ_logvar"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-14, err_msg=key)
    np.testing.assert_allclose(got["δ_mu"], got["δ_z"] + sg.evaluate(m["mu"], {"X": X}) / 5, rtol=1e-12)
    np.testing.assert_allclose(got["δ_sigma"], got["δ_z"] * eps, rtol=1e-12)
    grads = sg.evaluate(sg.grad(m["loss"], params), feeds)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(g, want[p.name], rtol=1e-10, atol=1e-14, err_msg=p.name)
        np.testing.assert_allclose(got[f"∂L/∂{p.name}"], want[p.name], rtol=1e-10, atol=1e-14, err_msg=p.name)


def test_compiled_gradient_and_step_use_the_eps_evaluate_draws(vae):
    m = vae.build(latent=2, hidden=4, seed=2)
    params, X = m["params"], _batch(5)
    grads = sg.grad(m["loss"], params)
    want = sg.evaluate([m["eps"]] + grads, {"X": X}, seed=7)
    eps, want = want[0], want[1:]
    by_feed = sg.evaluate(grads, {"X": X, "ε": eps})
    compiled = sg.compile(grads, inputs=[m["X"]], seed=7)(X)
    for p, w, f, c in zip(params, want, by_feed, compiled):
        np.testing.assert_allclose(f, w, rtol=1e-12, atol=1e-15, err_msg=p.name)
        np.testing.assert_allclose(c, w, rtol=1e-10, atol=1e-14, err_msg=p.name)
    # the training step draws the same ε: one SGD update moves every param by −lr·∂L/∂p
    before, loss_before = _values(params), float(sg.evaluate(m["loss"], {"X": X, "ε": eps}))
    step = sg.compile_step(m["loss"], sg.optim.SGD(lr=0.5), inputs=[m["X"]], params=params, seed=7)
    loss = step(X)
    try:
        assert float(loss) == pytest.approx(loss_before, rel=1e-12)
        for p, w in zip(params, want):
            np.testing.assert_allclose(before[p.name] - p.value, 0.5 * w, rtol=1e-9, atol=1e-14, err_msg=p.name)
    finally:
        for p in params:
            p.value[...] = before[p.name]


def test_naming_both_loss_terms_gives_their_deltas_the_value_one(vae):
    m = vae.build(latent=2, hidden=3, seed=0)
    L = (m["rec"].named("rec") + m["kl"].named("KL")).named("L")
    eq = sg.backprop_equations(L, m["params"])
    lines = str(eq).splitlines()
    assert "  δ_KL = δ_KL" not in lines
    got = eq.evaluate({"X": _batch(4)}, seed=0)
    assert float(got["δ_KL"]) == 1.0 and float(got["δ_rec"]) == 1.0
