"""Recurrent networks and backpropagation through time (BPTT).

An RNN keeps a state h_t that each step updates from the previous state and
the step's input, with the same weights at every step:
h_t = tanh(x_t W_ih + h_{t−1} W_hh + b).  symgrad writes the loop as one
``sg.scan`` node; its gradient is a loop too, run backwards over the steps.
This page

* prints the forward recurrence and the backward one with ``sg.pretty``
  and ``sg.latex``: δ_z_t = (δ_h_t + ∂L/∂h_t) ⊙ (1 − h_t²) with the carried
  δ_h_t = δ_z_{t+1} W_hhᵀ, and each parameter's gradient as a sum over the
  steps, ∂L/∂W_hh = Σ_t h_{t−1}ᵀ δ_z_t; the equations' numbers are checked
  against ``sg.grad``;
* separates the two parts of the gradient at a state: the direct part from
  that step's own loss (what ∂L/∂outputs holds) and the part carried back
  from the steps after it;
* draws the loop folded (the body once in a box marked × T, the carry edge
  looping back) and unrolled for T = 3, forward and backward;
* measures ‖∂L/∂h_t‖ over t = 1 … T for a loss on the last step only: the
  gradient that reaches step t is multiplied by one Jacobian per step,
  ∂h_t/∂h_{t−1} = diag(1 − h_t²) W_hhᵀ, so for a tanh RNN it shrinks
  geometrically, like the course notes' w^1000 for w < 1; the LSTM's cell
  path c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t multiplies by the forget gate f_t
  instead, and keeps more of the gradient the closer f_t is to 1.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
from _common import formulas, pyplot, savefig, setup, write

IN, HIDDEN = 2, 3          # the small RNN whose equations and drawings are shown
T_DRAW = 3                 # steps of the unrolled drawing
NOTES_W = (1.0, 1.01, 0.99, 0.01)  # the course notes' repeated factor w, raised to the 1000th power
KINDS = ("rnn", "lstm", "lstm_forget1")
LABELS = {"rnn": "tanh RNN", "lstm": "LSTM (PyTorch init)", "lstm_forget1": "LSTM, forget-gate bias 1"}
COLORS = {"rnn": "#d62728", "lstm": "#1f77b4", "lstm_forget1": "#2ca02c"}


# ---------------------------------------------------------------- equations
def small_rnn(T="T", seed: int = 0):
    """RNN(2, 3), inputs x (batch, T, 2), targets y (batch, T, 3), and the summed per-step loss
    L = ½ Σ_t ‖h_t − y_t‖² (each step's loss, combined)."""
    rnn = sg.nn.RNN(IN, HIDDEN, seed=seed)
    x, y = sg.var("x", shape=("batch", T, IN)), sg.var("y", shape=("batch", T, HIDDEN))
    out, h = rnn(x)
    L = (0.5 * sg.sum((out - y) ** 2)).named("L")
    return rnn, x, y, out, h, L


def equations() -> dict:
    """The forward recurrence of h and the BPTT equations of L, as text and LaTeX."""
    rnn, x, y, out, h, L = small_rnn()
    eqs = sg.backprop_equations(L)
    return {"rnn": rnn, "L": L, "out": out, "eqs": eqs, "h": h, "forward": sg.pretty(h),
            "backward": eqs.pretty(), "forward_tex": sg.latex(h), "backward_tex": eqs.latex()}


def check(eq: dict, T: int = 5, batch: int = 2, seed: int = 1) -> dict:
    """The equations' numbers (eqs.evaluate runs the printed recurrences) against sg.grad, and the
    gradient at each state split into its direct part (∂L/∂outputs) and the part carried back."""
    rng = np.random.default_rng(seed)
    feeds = {"x": rng.normal(size=(batch, T, IN)), "y": rng.normal(size=(batch, T, HIDDEN))}
    rnn, L, eqs = eq["rnn"], eq["L"], eq["eqs"]
    params = [p for _, p in rnn.named_parameters()]
    got = eqs.evaluate(feeds)
    want = dict(zip([p.name for p in params], sg.evaluate(sg.grad(L, params), feeds)))
    diffs = {n: float(np.max(np.abs(got[f"∂L/∂{n}"] - want[n]))) for n in want}
    direct, hs = sg.evaluate([sg.grad(L, eq["out"]), eq["out"]], feeds)  # ∂L/∂outputs: (batch, T, H)
    dz = got["δ_z"]                                                       # (T, batch, H)
    carried = np.zeros_like(dz)
    carried[:-1] = dz[1:] @ rnn.W_hh.value.T                              # δ_h_t = δ_z_{t+1} W_hhᵀ, δ_h_T = 0
    total = direct.transpose(1, 0, 2) + carried
    # δ_z_t = (δ_h_t + ∂L/∂h_t) ⊙ (1 − h_t²): the total gradient at h_t through tanh′
    identity = float(np.max(np.abs(dz - total * (1 - hs.transpose(1, 0, 2) ** 2))))
    return {"feeds": feeds, "got": got, "want": want, "diffs": diffs, "identity": identity,
            "norms": [(float(np.linalg.norm(d)), float(np.linalg.norm(c)), float(np.linalg.norm(s)))
                      for d, c, s in zip(direct.transpose(1, 0, 2), carried, total)]}


def drawings(out) -> list:
    """The loop folded (the body once, in a box marked × T) and unrolled for T = 3, forward and backward."""
    folded = small_rnn()[-1]
    unrolled = small_rnn(T=T_DRAW)[-1]
    return [sg.render(sg.draw(folded), out / "rnn_folded.svg"),
            sg.render(sg.draw(folded, backward=True), out / "rnn_folded_backward.svg"),
            sg.render(sg.draw(unrolled, unroll=True), out / "rnn_unrolled.svg"),
            sg.render(sg.draw(unrolled, unroll=True, backward=True), out / "rnn_unrolled_backward.svg")]


# ---------------------------------------------------------------- gradient through time
def layer(kind: str, hidden: int, seed: int = 0):
    """A tanh RNN or an LSTM with PyTorch's initialisation (U(−1/√H, 1/√H)); ``lstm_forget1`` sets the
    forget gate's bias b_f = b_if + b_hf to 1 (b_if = 1, b_hf = 0)."""
    if kind == "rnn":
        return sg.nn.RNN(IN, hidden, seed=seed)
    lstm = sg.nn.LSTM(IN, hidden, seed=seed)
    if kind == "lstm_forget1":
        forget = slice(hidden, 2 * hidden)  # gates in PyTorch's order i, f, g, o
        lstm.b_ih.value[forget], lstm.b_hh.value[forget] = 1.0, 0.0
    return lstm


def grad_through_time(kind: str, X: np.ndarray, Y: np.ndarray, hidden: int, seed: int = 0) -> dict:
    """‖∂L/∂h_t‖ for t = 0 … T of L = ½‖h_T − y‖² (the last step only).

    ∂L/∂h_t is the total derivative through the carried state: the gradient of the same loss with
    respect to the initial state of the rest of the sequence, x_{t+1} … x_T started from h_t.  One
    function, compiled once with a symbolic T, gives it for every t.
    """
    model = layer(kind, hidden, seed)
    x, y = sg.var("x", shape=("batch", "T", IN)), sg.var("y", shape=("batch", hidden))
    h0 = sg.var("h0", shape=("batch", hidden))
    lstm = kind != "rnn"
    starts = [h0] + ([sg.var("c0", shape=("batch", hidden))] if lstm else [])
    _, state = model(x, tuple(starts) if lstm else h0)
    finals = list(state) if lstm else [state]
    L = (0.5 * sg.sum((finals[0] - y) ** 2)).named("L")
    grads = sg.compile(sg.grad(L, starts), inputs=[x, y] + starts)
    run = sg.compile(finals, inputs=[x] + starts)
    B, T = X.shape[:2]
    states = [[np.zeros((B, hidden)) for _ in starts]]
    for t in range(T):  # the forward pass, one step at a time: the states h_t (and c_t)
        states.append([np.asarray(s) for s in run(X[:, t:t + 1], *states[-1])])
    h_T = states[-1][0]
    dh, dc = [], []
    for t in range(T + 1):
        g = [h_T - Y] + ([np.zeros_like(h_T)] if lstm else []) if t == T else grads(X[:, t:], Y, *states[t])
        dh.append(float(np.linalg.norm(g[0])))
        dc.append(float(np.linalg.norm(g[1])) if lstm else None)
    out = {"model": model, "dh": np.array(dh), "dc": np.array(dc) if lstm else None, "states": states}
    if not lstm:
        out["sigma_max"] = float(np.linalg.svd(model.W_hh.value, compute_uv=False)[0])
        out["rho"] = float(np.max(np.abs(np.linalg.eigvals(model.W_hh.value))))
    return out


def bptt_check(model, X: np.ndarray, Y: np.ndarray, dh: np.ndarray) -> float:
    """The RNN's ‖∂L/∂h_{t−1}‖ from the BPTT equations (δ_z_t W_hhᵀ, δ_z from eqs.evaluate) against
    the suffix gradients: the largest relative difference."""
    x, y = sg.var("x", shape=("batch", "T", IN)), sg.var("y", shape=("batch", model.hidden_size))
    _, h = model(x)
    eqs = sg.backprop_equations((0.5 * sg.sum((h - y) ** 2)).named("L"))
    dz = eqs.evaluate({"x": X, "y": Y})["δ_z"]  # (T, batch, H)
    from_eqs = np.array([np.linalg.norm(d @ model.W_hh.value.T) for d in dz])  # ‖∂L/∂h_{t−1}‖, t = 1 … T
    return float(np.max(np.abs(from_eqs - dh[:-1]) / dh[:-1]))


def plot(out, curves: dict, T: int) -> None:
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.6))
    t = np.arange(1, T + 1)
    for kind, c in curves.items():
        ax.semilogy(t, c["dh"][1:] / c["dh"][-1], "-o", ms=3, color=COLORS[kind], label=LABELS[kind])
    ax.set_xlabel("step t")
    ax.set_ylabel("‖∂L/∂h_t‖ / ‖∂L/∂h_T‖")
    ax.set_title(f"Gradient reaching step t of a loss on step T = {T}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    k = np.arange(0, 1001)
    for w, color in zip(NOTES_W[:3], ("#1f77b4", "#ff7f0e", "#2ca02c")):
        ax2.semilogy(k, w ** k, color=color, label=f"w = {w}")
    ax2.set_xlabel("k (steps)")
    ax2.set_ylabel("w^k")
    ax2.set_title("One factor per step: the notes' w^1000")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend()
    print(f"wrote {savefig(fig, out, 'grad_through_time.png')}")


def main(argv=None):
    args = setup("17_rnn_bptt", __doc__, argv)
    eq = equations()
    text = ["The RNN's forward recurrence (sg.nn.RNN(2, 3) is one sg.scan; sg.pretty prints its body once, "
            "at step t):", eq["forward"],
            "\nBackpropagation through time for L = ½ Σ_t ‖h_t − y_t‖² (sg.backprop_equations(L)): the backward "
            "loop runs t = T … 1, δ_h_t carries the gradient back from step t + 1, and each parameter's "
            "gradient sums one term per step:", eq["backward"]]
    print("\n".join(text))

    ck = check(eq)
    lines = ["\nThe printed equations, run step by step (eqs.evaluate) on T = 5, batch 2, against sg.grad:"]
    lines += [f"  max |Σ_t … − sg.grad| for {n:<10} {d:.1e}" for n, d in ck["diffs"].items()]
    W = ck["got"]["∂L/∂rnn.W_hh"]
    lines.append("  ∂L/∂W_hh = Σ_t h_{t−1}ᵀ δ_z_t = " + "; ".join(" ".join(f"{v:.6f}" for v in row) for row in W))
    lines.append("The gradient at h_t has two parts: the direct ∂L_t/∂h_t = h_t − y_t of step t's own loss (what "
                 "sg.grad(L, outputs) returns) and δ_h_t = δ_z_{t+1} W_hhᵀ carried back from later steps:")
    lines.append("     t   ‖direct‖   ‖carried δ_h_t‖   ‖total ∂L/∂h_t‖")
    lines += [f"  {t:4d}   {d:8.4f}   {c:15.4f}   {s:15.4f}" for t, (d, c, s) in enumerate(ck["norms"], 1)]
    lines.append(f"δ_z_t = total ⊙ (1 − h_t²) at every step: max difference {ck['identity']:.1e}")
    print("\n".join(lines))
    write(args.out, "formulas.txt", "\n".join(text + lines))
    write(args.out, "formulas.tex", eq["forward_tex"] + "\n\n" + eq["backward_tex"])
    formulas(args.out, "formulas", ["The forward recurrence, one sg.scan printed at step t", eq["h"], "Backpropagation through time for L = ½ Σ_t ‖h_t − y_t‖²", eq["eqs"]])
    for path in drawings(args.out):
        print(f"wrote {path}")

    T, hidden, batch = (50, 16, 8) if args.smoke else (50, 32, 32)
    notes = ["\nOne factor per step, as in the course notes: w^1000: "
             + ", ".join(f"{w ** 1000:.4e} for w = {w}" for w in NOTES_W)]
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(batch, T, IN)), rng.uniform(-0.5, 0.5, size=(batch, hidden))
    curves = {kind: grad_through_time(kind, X, Y, hidden) for kind in KINDS}
    rnn = curves["rnn"]
    notes.append(f"A loss on the last step only, L = ½‖h_T − y‖², T = {T}, hidden {hidden}, batch {batch}, "
                 "inputs N(0, 1): ‖∂L/∂h_t‖ (norm over the batch) for t = 1 … T.")
    tanh_prime = float(np.mean([1 - s[0] ** 2 for s in rnn["states"][1:]]))
    per_step = {k: (curves[k]["dh"][1] / curves[k]["dh"][-1]) ** (1 / (T - 1)) for k in KINDS}
    W_hh = rnn["model"].W_hh.value
    power = float(np.linalg.norm(np.linalg.matrix_power(W_hh.T, T - 1), 2))
    notes.append(f"tanh RNN: ∂L/∂h_(t−1) = (∂L/∂h_t ⊙ (1 − h_t²)) W_hhᵀ, so ∂L/∂h_1 carries W_hhᵀ^(T−1). W_hh's largest "
                 f"singular value is {rnn['sigma_max']:.4f}, but its largest eigenvalue modulus, the rate at which its "
                 f"powers grow or shrink, is ρ = {rnn['rho']:.4f} {'<' if rnn['rho'] < 1 else '≥'} 1: ‖W_hhᵀ^{T - 1}‖ = {power:.3e} "
                 f"(≈ {power ** (1 / (T - 1)):.4f} per step). With tanh′(z_t) = 1 − h_t² = {tanh_prime:.4f} on "
                 f"average, the gradient shrinks by {per_step['rnn']:.4f} per step (geometric mean over T − 1 steps)")
    notes.append(f"LSTM: the cell's ∂c_t/∂c_(t−1) = f_t; PyTorch's initialisation gives forget-gate biases near 0, "
                 f"f_t ≈ σ(0) = {1 / (1 + np.exp(0.0)):.4f}, so it forgets about half per step as well; with b_f = 1, "
                 f"f_t ≈ σ(1) = {1 / (1 + np.exp(-1.0)):.4f}. Factor per step: "
                 + ", ".join(f"{LABELS[k]} {per_step[k]:.4f}" for k in KINDS[1:]))
    notes.append("     t " + "".join(f"{LABELS[k]:>28}" for k in KINDS))
    for t in sorted({1, 2, 5, 10, T // 2, T - 10, T - 5, T - 1, T}):
        notes.append(f"  {t:4d} " + "".join(f"{curves[k]['dh'][t]:28.4e}" for k in KINDS))
    ratios = {k: curves[k]["dh"][1] / curves[k]["dh"][-1] for k in KINDS}
    notes.append("‖∂L/∂h_1‖/‖∂L/∂h_T‖: " + ", ".join(f"{LABELS[k]} {ratios[k]:.3e}" for k in KINDS))
    notes.append(f"at step 1 the LSTM keeps {ratios['lstm'] / ratios['rnn']:.3g} times as much of the gradient as the "
                 f"tanh RNN, and {ratios['lstm_forget1'] / ratios['rnn']:.3g} times with forget-gate bias 1")
    notes.append("LSTM ‖∂L/∂c_1‖/‖∂L/∂c_(T−1)‖ (the cell path): "
                 + ", ".join(f"{LABELS[k]} {curves[k]['dc'][1] / curves[k]['dc'][T - 1]:.3e}" for k in KINDS[1:]))
    check_rel = bptt_check(rnn["model"], X, Y, rnn["dh"])
    notes.append(f"tanh RNN: ‖δ_z_t W_hhᵀ‖ from the BPTT equations equals ‖∂L/∂h_(t−1)‖ above "
                 f"(largest relative difference {check_rel:.1e})")
    print("\n".join(notes))
    write(args.out, "grad_norms.txt", "\n".join(notes))
    plot(args.out, curves, T)
    return {"equations": eq, "check": ck, "curves": curves, "ratios": ratios, "per_step": per_step, "X": X, "Y": Y,
            "T": T, "hidden": hidden, "tanh_prime": tanh_prime, "power": power, "bptt_check": check_rel}


if __name__ == "__main__":
    main()
