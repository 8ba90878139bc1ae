"""A variational autoencoder on scikit-learn's 8×8 digits, built from the public API and trained with
``sg.compile_step`` + ``sg.fit``; prints its test reconstruction error and KL next to baselines.

The model (pixels scaled to [0, 1], 64 per image)::

    encoder  X → Linear 64→H → ReLU → h ─┬─ Linear H→d → μ
                                         └─ Linear H→d → log σ²
    sample   σ = exp(½ log σ²),  z = μ + σ ⊙ ε,  ε ~ 𝒩(0, I) a random node drawn afresh every step
    decoder  z → Linear d→H → ReLU → Linear H→64 → sigmoid → x̂

    loss = rec + KL
    rec  = binary cross-entropy of x̂ against X, summed over the 64 pixels, mean over the batch
    KL   = sg.losses.kl_normal(μ, log σ²) = KL(𝒩(μ, σ²) ‖ 𝒩(0, I)), summed over the d latent dims,
           mean over the batch

so ``loss`` is the negative evidence lower bound (−ELBO) per image, in nats.  The 1797 images are
split 80/20 (stratified, ``random_state=seed``).

What "it learned" means here: a model whose code carries no information about the image (KL = 0)
can do no better than predicting the mean training image for every test image; the table compares
the VAE's test −ELBO against that baseline's cross-entropy, and its reconstruction (decoding z = μ)
against the mean image and against PCA with as many components as the VAE has latent dims.  The
cross-entropy of a perfect reconstruction is not 0 (the pixels are grey levels, not 0/1): the table
prints that floor too.

Run:  python bench/vae_digits.py            (latent 4, 100 epochs: fit ~5 s, ~15 s with imports;
                                             seed 0: test −ELBO 24.33 against 27.20 for the mean image)
      python bench/vae_digits.py --smoke    (latent 2, 20 epochs on 400 images: fit < 1 s)
      python bench/vae_digits.py --latent 8 --epochs 200
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import symgrad as sg  # noqa: E402

PIXELS = 64


def load(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and test images, ``(n, 64)`` with pixels in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    X = digits.data / 16.0
    X_train, X_test = train_test_split(X, test_size=0.2, stratify=digits.target, random_state=seed)
    return X_train, X_test


def build(latent: int = 4, hidden: int = 64, seed: int = 0) -> dict:
    """The VAE's graph: a dict of its nodes (``X``, ``mu``, ``logvar``, ``sigma``, ``eps``, ``z``,
    ``xhat``, ``rec``, ``kl``, ``loss``) and ``params``, the trained params.

    ``mu``, ``logvar``, ``sigma`` and ``z`` are named so that :func:`symgrad.backprop_equations`
    gives each its δ; ``rec`` and ``kl`` are left unnamed (naming both terms of the loss makes
    their δ print as ``δ_KL = δ_KL``, see tests/test_vae.py).
    """
    X = sg.var("X", shape=("batch", PIXELS))
    encoder = sg.nn.MLP([PIXELS, hidden], activation=None, output_activation="relu", init="he",
                        name="enc", seed=seed)
    mu_head = sg.nn.Linear(hidden, latent, name="enc_mu", seed=seed + 1)
    logvar_head = sg.nn.Linear(hidden, latent, name="enc_logvar", seed=seed + 2)
    decoder = sg.nn.MLP([latent, hidden, PIXELS], activation="relu", output_activation="sigmoid",
                        name="dec", seed=seed + 3)
    h = encoder(X)
    mu = mu_head(h).named("mu")
    logvar = logvar_head(h).named("logvar")
    sigma = sg.exp(0.5 * logvar).named("sigma")
    eps = sg.random.normal(like=mu)  # ε, drawn afresh at every call of the step
    z = (mu + sigma * eps).named("z")
    xhat = decoder(z).named("xhat")
    rec = PIXELS * sg.losses.bce(xhat, X)  # bce is the mean over batch × pixels: ×64 sums the pixels
    kl = sg.losses.kl_normal(mu, logvar)
    loss = (rec + kl).named("L")
    params = encoder.parameters() + mu_head.parameters() + logvar_head.parameters() + decoder.parameters()
    return {"X": X, "mu": mu, "logvar": logvar, "sigma": sigma, "eps": eps, "z": z, "xhat": xhat,
            "rec": rec, "kl": kl, "loss": loss, "params": params}


def bce_per_image(xhat: np.ndarray, X: np.ndarray) -> float:
    """Binary cross-entropy summed over pixels, mean over images (logs clamped at −100 as in bce)."""
    with np.errstate(divide="ignore"):
        log_p, log_q = np.maximum(np.log(xhat), -100.0), np.maximum(np.log1p(-xhat), -100.0)
    return float(np.mean(-np.sum(X * log_p + (1.0 - X) * log_q, axis=1)))


def sse_per_image(xhat: np.ndarray, X: np.ndarray) -> float:
    """Squared error summed over pixels, mean over images."""
    return float(np.mean(np.sum((xhat - X) ** 2, axis=1)))


def baselines(X_train: np.ndarray, X_test: np.ndarray, latent: int) -> dict:
    """Test errors of the mean training image, of PCA with ``latent`` components, and the
    cross-entropy floor (a perfect reconstruction)."""
    mean = X_train.mean(axis=0)
    # the constant that minimises each pixel's cross-entropy on the training images, kept off 0 and 1
    # so that a pixel never lit in training costs log(1e-6) where a test image lights it, not −100
    guess = np.clip(np.broadcast_to(mean, X_test.shape), 1e-6, 1 - 1e-6)
    _, _, vt = np.linalg.svd(X_train - mean, full_matrices=False)
    basis = vt[:latent]
    pca = (X_test - mean) @ basis.T @ basis + mean
    return {"mean_bce": bce_per_image(guess, X_test), "mean_sse": sse_per_image(guess, X_test),
            "pca_sse": sse_per_image(pca, X_test), "floor_bce": bce_per_image(X_test, X_test)}


def metrics(model: dict, X_test: np.ndarray, seed: int = 0) -> dict:
    """On the test images: rec and KL with ε drawn (seeded), the −ELBO, the KL of each latent dim
    (near 0: a dim the model does not use), and the reconstruction from z = μ (ε fed as zeros) as
    cross-entropy and squared error."""
    rec, kl = sg.compile([model["rec"], model["kl"]], inputs=[model["X"]], seed=seed)(X_test)
    xhat_mu = sg.evaluate(model["xhat"], {"X": X_test, model["eps"].name: np.zeros((len(X_test),
                                                                                    model["mu"].shape[1]))})
    mu, logvar = sg.evaluate([model["mu"], model["logvar"]], {"X": X_test})
    kl_dims = np.mean(-0.5 * (1.0 + logvar - mu ** 2 - np.exp(logvar)), axis=0)
    return {"rec": float(rec), "kl": float(kl), "elbo_loss": float(rec + kl), "kl_per_dim": kl_dims,
            "rec_mu_bce": bce_per_image(xhat_mu, X_test), "rec_mu_sse": sse_per_image(xhat_mu, X_test)}


def train(epochs: int = 100, latent: int = 4, hidden: int = 64, lr: float = 3e-3, batch_size: int = 64,
          seed: int = 0, n_train: int | None = None, verbose: bool = True) -> dict:
    """Train the VAE with ``sg.fit`` (deterministic for a given ``seed``); returns the model, the
    History, the per-epoch train and test losses, the test metrics and the baselines."""
    X_train, X_test = load(seed)
    if n_train is not None:
        X_train = X_train[:n_train]
    model = build(latent, hidden, seed)
    step = sg.compile_step(model["loss"], sg.optim.Adam(lr=lr), inputs=[model["X"]], params=model["params"],
                           seed=seed)
    t0 = time.perf_counter()
    history = sg.fit(step, {"X": X_train}, validation={"X": X_test}, epochs=epochs, batch_size=batch_size,
                     seed=seed, verbose=0)
    seconds = time.perf_counter() - t0
    if verbose:
        for epoch, loss, val in zip(history.epochs, history["loss"], history["val_loss"]):
            print(f"epoch {epoch:3d}  train loss {loss:8.3f}  test loss {val:8.3f}")
    return {"model": model, "step": step, "history": history, "train_loss": history["loss"],
            "test_loss": history["val_loss"], "test": metrics(model, X_test, seed),
            "baseline": baselines(X_train, X_test, latent), "seconds": seconds,
            "n_train": len(X_train), "n_test": len(X_test)}


def report(result: dict, latent: int) -> str:
    """The comparison table."""
    t, b = result["test"], result["baseline"]
    rows = [
        ("VAE  −ELBO = rec + KL  (ε drawn)", f"{t['elbo_loss']:8.2f}", ""),
        ("     rec (ε drawn)", f"{t['rec']:8.2f}", ""),
        ("     KL", f"{t['kl']:8.2f}", ""),
        ("       per latent dim: " + " ".join(f"{k:.2f}" for k in t["kl_per_dim"]), "", ""),
        ("     reconstruction from z = μ", f"{t['rec_mu_bce']:8.2f}", f"{t['rec_mu_sse']:8.3f}"),
        ("mean training image (KL = 0)", f"{b['mean_bce']:8.2f}", f"{b['mean_sse']:8.3f}"),
        (f"PCA, {latent} components", "", f"{b['pca_sse']:8.3f}"),
        ("perfect reconstruction (floor)", f"{b['floor_bce']:8.2f}", f"{0.0:8.3f}"),
    ]
    head = f"{'on the ' + str(result['n_test']) + ' test images, per image':36s}{'BCE nats':>10s}{'sq. error':>11s}"
    lines = [head, "-" * len(head)] + [f"{name:36s}{bce:>10s}{sse:>11s}" for name, bce, sse in rows]
    return "\n".join(lines)


SMOKE = {"epochs": 20, "latent": 2, "hidden": 16, "lr": 1e-2, "batch_size": 32, "n_train": 400}
FULL = {"epochs": 100, "latent": 4, "hidden": 64, "lr": 3e-3, "batch_size": 64, "n_train": None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true",
                    help=f"a few seconds: {', '.join(f'{k}={v}' for k, v in SMOKE.items())}")
    for key, kind in (("epochs", int), ("latent", int), ("hidden", int), ("lr", float), ("batch_size", int)):
        ap.add_argument("--" + key.replace("_", "-"), type=kind, default=None,
                        help=f"default {FULL[key]} ({SMOKE[key]} with --smoke)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    settings = dict(SMOKE if args.smoke else FULL)
    settings.update({k: v for k, v in vars(args).items() if k in settings and v is not None})
    result = train(seed=args.seed, **settings)
    print()
    print(report(result, settings["latent"]))
    print(f"\nlatent {settings['latent']}, hidden {settings['hidden']}, {settings['epochs']} epochs of "
          f"{result['n_train']} images, batch {settings['batch_size']}, Adam lr {settings['lr']}, seed {args.seed}: "
          f"fit took {result['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
