"""A variational autoencoder on the 8×8 digits: the reparameterisation, the KL term, samples.

The course notes: a VAE learns a probability distribution Pr(x) over
images so that new ones can be drawn from it (it is good at generating,
not at telling how likely an image is).  The encoder maps an image to
the mean μ and log-variance log σ² of a Gaussian over a code z; the
decoder maps a code back to pixel probabilities x̂.

Sampling z ~ 𝒩(μ, σ²) inside the graph would leave nothing to
differentiate, so z is written as z = μ + σ ⊙ ε with ε ~ 𝒩(0, I) a
random node (``sg.random.normal``) drawn afresh at every step: the
gradient reaches μ (∂z/∂μ = 1) and σ (∂z/∂σ = ε), and ε has none.  The
loss per image is the negative evidence lower bound, the pixels'
binary cross-entropy plus KL(𝒩(μ, σ²) ‖ 𝒩(0, I)) (``sg.losses.kl_normal``).

With a two-dimensional code every test image becomes a point in a
plane; decoding a grid of that plane, or points drawn from 𝒩(0, I),
gives new digits.
"""
from __future__ import annotations

import time

import numpy as np

import symgrad as sg
import _common
from _common import pyplot, savefig, setup, write

PIXELS = 64
LATENT = 2
FULL = {"hidden": 64, "epochs": 100, "lr": 3e-3, "batch_size": 64, "n_train": None}
SMOKE = {"hidden": 16, "epochs": 5, "lr": 1e-2, "batch_size": 32, "n_train": 400}


def load(seed: int = 0):
    """Train and test images ``(n, 64)`` in [0, 1] and the test labels (80/20, stratified)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    X_tr, X_te, _, y_te = train_test_split(digits.data / 16.0, digits.target, test_size=0.2,
                                           stratify=digits.target, random_state=seed)
    return X_tr, X_te, y_te


def build(hidden: int, seed: int = 0) -> dict:
    """Encoder 64 → hidden (ReLU) → μ, log σ²; z = μ + σ ⊙ ε; decoder LATENT → hidden (ReLU) → 64
    (sigmoid); the loss rec + KL per image."""
    X = sg.var("X", shape=("batch", PIXELS))
    enc = sg.nn.Linear(PIXELS, hidden, init="he", seed=seed, name="enc")
    enc_mu = sg.nn.Linear(hidden, LATENT, seed=seed + 1, name="enc_mu")
    enc_logvar = sg.nn.Linear(hidden, LATENT, seed=seed + 2, name="enc_logvar")
    dec = sg.nn.MLP([LATENT, hidden, PIXELS], activation="relu", output_activation="sigmoid", seed=seed + 3,
                    name="dec")
    h = sg.relu(enc(X)).named("h")
    mu, logvar = enc_mu(h).named("mu"), enc_logvar(h).named("logvar")
    sigma = sg.exp(0.5 * logvar).named("sigma")
    eps = sg.random.normal(like=mu)
    z = (mu + sigma * eps).named("z")
    xhat = dec(z).named("xhat")
    rec = PIXELS * sg.losses.bce(xhat, X)  # bce averages over batch × pixels: × 64 sums the pixels
    kl = sg.losses.kl_normal(mu, logvar)
    params = enc.parameters() + enc_mu.parameters() + enc_logvar.parameters() + dec.parameters()
    return {"X": X, "mu": mu, "logvar": logvar, "sigma": sigma, "eps": eps, "z": z, "xhat": xhat, "rec": rec,
            "kl": kl, "loss": (rec + kl).named("L"), "params": params, "dec": dec}


def bce_per_image(xhat: np.ndarray, X: np.ndarray) -> float:
    """Binary cross-entropy summed over the pixels, mean over the images (logs clamped at −100)."""
    with np.errstate(divide="ignore"):
        log_p, log_q = np.maximum(np.log(xhat), -100.0), np.maximum(np.log1p(-xhat), -100.0)
    return float(np.mean(-np.sum(X * log_p + (1.0 - X) * log_q, axis=1)))


def kl_formulas() -> list[str]:
    """The KL term for one latent dim and for a batch, and its gradients."""
    m, s = sg.var("μ"), sg.var("s")
    one = sg.losses.kl_normal(m, s)
    mu, logvar = sg.var("μ", shape=("batch", LATENT)), sg.var("logvar", shape=("batch", LATENT))
    batch = sg.losses.kl_normal(mu, logvar)
    g_mu, g_logvar = sg.grad(batch, [mu, logvar])
    return ["KL(𝒩(μ, σ²) ‖ 𝒩(0, 1)) for one latent dim, with s = log σ²:",
            sg.pretty(one, lhs="KL"), sg.pretty(sg.grad(one, m), lhs="∂KL/∂μ"),
            sg.pretty(sg.grad(one, s), lhs="∂KL/∂s"),
            "both are 0 at μ = 0, s = 0 (σ = 1): the KL pulls every code towards the prior 𝒩(0, 1).",
            "", f"For a batch of {LATENT}-dim codes (summed over the dims, mean over the batch):",
            sg.pretty(batch, lhs="KL"), sg.pretty(g_mu, lhs="∂KL/∂μ"), sg.pretty(g_logvar, lhs="∂KL/∂logvar")]


def reparameterisation() -> tuple[list[str], sg.Node, list]:
    """z = μ + σ ⊙ ε for one latent dim, its two partial derivatives, and a loss to draw it with."""
    m, s = sg.var("μ"), sg.var("s")
    sigma = sg.exp(0.5 * s).named("σ")
    eps = sg.random.normal(like=m)
    z = (m + sigma * eps).named("z")
    lines = ["The reparameterisation, one latent dim (s = log σ², ε ~ 𝒩(0, 1) a random node):",
             sg.pretty(z, lhs="z", keep="named"), sg.pretty(sg.grad(z, m), lhs="∂z/∂μ"),
             sg.pretty(sg.grad(z, sigma), lhs="∂z/∂σ"), sg.pretty(sg.grad(z, s), lhs="∂z/∂s"),
             "and ε, a random node, has no gradient: it is drawn, not learned."]
    return lines, (z * z).named("L"), [m, s]


def main(argv=None):
    args = setup("22_vae", __doc__, argv)
    settings = SMOKE if args.smoke else FULL
    lines, toy, leaves = reparameterisation()
    print("\n".join(lines))
    path = sg.render(sg.draw(toy, backward=True, values={"μ": 0.5, "s": -1.0, "ε": 0.8}, wrt=leaves,
                             formulas=True), args.out / "reparameterisation.svg")
    print(f"wrote {path} (L = z², at μ = 0.5, s = −1 and a drawn ε = 0.8)")
    kl = kl_formulas()
    print("\n" + "\n".join(kl))

    m = build(settings["hidden"])
    eqs = sg.backprop_equations(m["loss"], m["params"])
    print(f"\nThe VAE's forward and backward pass (latent {LATENT}, hidden {settings['hidden']}); the δ of σ is "
          f"δ_z ⊙ ε, μ gets δ_z plus the KL's μ/batch:")
    print(eqs.pretty())
    write(args.out, "formulas.txt", "\n".join(lines + [""] + kl + ["", eqs.pretty()]))
    write(args.out, "formulas.tex", eqs.latex())
    mu, s = sg.var("μ"), sg.var("s")
    kl_one = sg.losses.kl_normal(mu, s)
    _common.formulas(args.out, "formulas", [
        "KL(𝒩(μ, σ²) ‖ 𝒩(0, 1)) for one latent dim, s = log σ²", ("KL", kl_one), ("∂KL/∂μ", sg.grad(kl_one, mu)),
        ("∂KL/∂s", sg.grad(kl_one, s)), "The VAE's forward and backward pass", eqs])
    path = sg.render(sg.draw(m["loss"], backward=True, collapse=True), args.out / "vae_collapsed.svg")
    print(f"wrote {path}")

    X_tr, X_te, y_te = load()
    if settings["n_train"]:
        X_tr = X_tr[:settings["n_train"]]
    step = sg.compile_step(m["loss"], sg.optim.Adam(lr=settings["lr"]), inputs=[m["X"]], params=m["params"], seed=0)
    t0 = time.perf_counter()
    history = sg.fit(step, {"X": X_tr}, validation={"X": X_te}, epochs=settings["epochs"],
                     batch_size=settings["batch_size"], seed=0, verbose=0)
    seconds = time.perf_counter() - t0
    print(f"\nTraining: Adam (lr {settings['lr']}), batches of {settings['batch_size']}, {settings['epochs']} epochs "
          f"of {len(X_tr)} images in {seconds:.1f} s; −ELBO per image (nats): train {history['loss'][0]:.2f} → "
          f"{history['loss'][-1]:.2f}, test {history['val_loss'][0]:.2f} → {history['val_loss'][-1]:.2f}")

    zeros = np.zeros((len(X_te), LATENT))
    mu, logvar, xhat = sg.evaluate([m["mu"], m["logvar"], m["xhat"]], {m["X"]: X_te, m["eps"]: zeros})
    kl_dims = np.mean(-0.5 * (1 + logvar - mu ** 2 - np.exp(logvar)), axis=0)
    # the best constant guess per pixel, kept off 0 and 1 (a pixel never lit in training costs log 1e-6)
    mean_image = np.broadcast_to(np.clip(X_tr.mean(axis=0), 1e-6, 1 - 1e-6), X_te.shape)
    table = [f"On the {len(X_te)} test images, per image (nats):",
             f"  −ELBO = reconstruction + KL, ε drawn (last epoch) {history['val_loss'][-1]:8.2f}",
             f"  reconstruction from z = μ (ε = 0), cross-entropy  {bce_per_image(xhat, X_te):8.2f}",
             "  KL to the prior, per latent dim (ε = 0)          " + "".join(f"{v:8.2f}" for v in kl_dims),
             f"  mean training image for every image (no code)    {bce_per_image(mean_image, X_te):8.2f}",
             f"  a perfect reconstruction (the pixels are grey)   {bce_per_image(X_te, X_te):8.2f}"]
    print("\n".join(table))
    write(args.out, "results.txt", "\n".join(table))

    code = sg.var("code", shape=("batch", LATENT))
    decode = sg.compile(m["dec"](code), inputs=[code])
    rng = np.random.default_rng(1)
    plot_latent(args.out, mu, y_te)
    plot_samples(args.out, decode, rng, X_te, xhat)
    return {"model": m, "X_test": X_te, "X_train": X_tr, "mu": mu, "kl_dims": kl_dims, "history": history}


def plot_latent(out, mu, labels):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=14, vmin=-0.5, vmax=9.5)
    for d in range(10):
        centre = np.median(mu[labels == d], axis=0)
        ax.annotate(str(d), centre, fontsize=15, weight="bold", ha="center", va="center",
                    bbox={"boxstyle": "circle,pad=0.2", "fc": "white", "alpha": 0.7, "ec": "none"})
    fig.colorbar(points, ticks=range(10), label="digit")
    ax.set_xlabel("μ₁")
    ax.set_ylabel("μ₂")
    ax.set_title("The 2-D latent space: μ of every test image (digits never shown to the VAE)")
    ax.grid(True, alpha=0.3)
    print(f"wrote {savefig(fig, out, 'latent_2d.png')}")


def tile(images: np.ndarray, rows: int, cols: int, gap: int = 2) -> np.ndarray:
    """8×8 images (row by row) on one canvas, ``gap`` blank pixels between them."""
    side = 8 + gap
    canvas = np.zeros((rows * side - gap, cols * side - gap))
    for k, image in enumerate(images.reshape(-1, 8, 8)):
        r, c = divmod(k, cols)
        canvas[r * side:r * side + 8, c * side:c * side + 8] = image
    return canvas


def plot_samples(out, decode, rng, X_te, xhat):
    from scipy.stats import norm
    plt = pyplot()
    n = 12
    grid = norm.ppf(np.linspace(0.05, 0.95, n))  # equal-probability steps of the prior
    codes = np.array([[a, b] for b in grid[::-1] for a in grid])  # top row: the largest z₂
    fig = plt.figure(figsize=(14, 7.2))
    ax = fig.add_axes([0.0, 0.0, 0.56, 0.92])
    ax.imshow(tile(decode(codes), n, n), cmap="gray_r", vmin=0, vmax=1, extent=(0, n, 0, n))
    ax.set_xticks(np.arange(n) + 0.5, [f"{v:.1f}" for v in grid], fontsize=7)
    ax.set_yticks(np.arange(n) + 0.5, [f"{v:.1f}" for v in grid], fontsize=7)
    ax.set_xlabel("z₁")
    ax.set_ylabel("z₂")
    ax.set_title("Decoded codes z on a grid (5 % to 95 % quantiles of N(0, 1) in each dim)")
    panels = ((tile(decode(rng.normal(size=(16, LATENT))), 2, 8), "16 samples: z ~ N(0, I), decoded"),
              (tile(np.concatenate([X_te[:8], xhat[:8]]), 2, 8),
               "8 test images (top) and their reconstructions from z = μ"))
    for k, (image, title) in enumerate(panels):
        ax = fig.add_axes([0.6, 0.52 - 0.45 * k, 0.4, 0.36])
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=10)
    print(f"wrote {savefig(fig, out, 'samples.png')}")


if __name__ == "__main__":
    main()
