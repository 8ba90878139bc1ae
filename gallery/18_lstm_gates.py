"""LSTM gates: their equations and gradients, the cell drawn, and what the gates do over a sequence.

An LSTM carries two states: the cell c_t and the output h_t.  Four gates,
each computed from x_t and h_{t−1}, decide what happens to the cell:
i (input gate: whether to write to the cell), f (forget gate: whether to
erase it), g (the candidate: what to write) and o (output gate: how much of
the cell to reveal).  c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t, h_t = o_t ⊙ tanh(c_t).
This page

* prints the gate equations (``sg.nn.LSTM`` is one ``sg.scan``; ``sg.pretty``
  prints its body once, at step t) and their gradients through time
  (``sg.backprop_equations``: δ of each gate, the carried δ_h_t and δ_c_t,
  each weight block's Σ_t), checked against ``sg.grad``;
* draws the cell: the body once in the × T box, both carries looping back,
  forward and backward;
* trains an LSTM on the adding problem (each step: a number and a marker;
  the target is the sum of the two marked numbers) and shows the trained
  gates i, f, o over one sequence as heatmaps, computed by the same cell
  written with ``sg.scan`` so that it returns its gates at every step.
"""
from __future__ import annotations

import numpy as np

import symgrad as sg
from _common import formulas, pyplot, savefig, setup, write

IN = 2                       # (number, marker)
GATES = "ifgo"               # PyTorch's order of the gate blocks in W_ih, W_hh, b_ih, b_hh
SHOWN = ("i", "f", "o")      # the gates drawn as heatmaps
NAMES = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o"}


def model(hidden: int, seed: int = 0):
    """LSTM(2, hidden) → its last h → Linear(hidden, 1); L = mean squared error."""
    lstm = sg.nn.LSTM(IN, hidden, seed=seed)
    head = sg.nn.Linear(hidden, 1, seed=seed + 1, name="head")
    x, y = sg.var("x", shape=("batch", "T", IN)), sg.var("y", shape=("batch", 1))
    _, (h, c) = lstm(x)
    return lstm, head, x, y, h, sg.losses.mse(head(h), y, name="L")


def adding(rng: np.random.Generator, n: int, T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n sequences (n, T, 2) of (number in U(0, 1), marker), one marked step in each half; the targets
    (n, 1) are the sums of the two marked numbers; also the marked steps (n, 2)."""
    numbers = rng.uniform(0.0, 1.0, size=(n, T))
    marked = np.stack([rng.integers(0, T // 2, size=n), rng.integers(T // 2, T, size=n)], axis=1)
    markers = np.zeros((n, T))
    np.put_along_axis(markers, marked, 1.0, axis=1)
    return (np.stack([numbers, markers], axis=2), np.take_along_axis(numbers, marked, axis=1).sum(1, keepdims=True),
            marked)


# ---------------------------------------------------------------- equations and drawings
def equations(hidden: int = 3) -> dict:
    """The gates of LSTM(2, 3) and the gradients through time of L = ½ Σ (h_T − y)², a loss on the last h."""
    lstm = sg.nn.LSTM(IN, hidden, seed=0)
    x, y = sg.var("x", shape=("batch", "T", IN)), sg.var("y", shape=("batch", hidden))
    _, (h, c) = lstm(x)
    L = (0.5 * sg.sum((h - y) ** 2)).named("L")
    eqs = sg.backprop_equations(L)
    return {"lstm": lstm, "L": L, "eqs": eqs, "h": h, "forward": sg.pretty(h), "backward": eqs.pretty(),
            "forward_tex": sg.latex(h), "backward_tex": eqs.latex()}


def check(eq: dict, T: int = 6, batch: int = 3, seed: int = 1) -> dict:
    """eqs.evaluate (the printed recurrences run step by step) against sg.grad, per parameter."""
    rng = np.random.default_rng(seed)
    feeds = {"x": adding(rng, batch, T)[0], "y": rng.uniform(-0.5, 0.5, size=(batch, eq["lstm"].hidden_size))}
    params = [p for _, p in eq["lstm"].named_parameters()]
    got = eq["eqs"].evaluate(feeds)
    want = sg.evaluate(sg.grad(eq["L"], params), feeds)
    return {"feeds": feeds, "got": got,
            "diffs": {p.name: float(np.max(np.abs(got[f"∂L/∂{p.name}"] - w))) for p, w in zip(params, want)}}


def drawings(out, L) -> list:
    return [sg.render(sg.draw(L), out / "lstm_cell.svg"),
            sg.render(sg.draw(L, backward=True), out / "lstm_cell_backward.svg")]


# ---------------------------------------------------------------- training and gates
def train(hidden: int, T: int, steps: int, batch: int = 64, lr: float = 1e-2, seed: int = 0) -> dict:
    """Adam on fresh batches of the adding problem; test MSE on 500 held-out sequences before and after."""
    lstm, head, x, y, h, L = model(hidden, seed)
    step = sg.compile_step(L, sg.optim.Adam(lr=lr), inputs=[x, y])
    rng = np.random.default_rng(seed)
    X_test, Y_test, marked = adding(np.random.default_rng(seed + 1), 500, T)
    start = float(step.evaluate(X_test, Y_test))
    curve = []
    for k in range(1, steps + 1):
        step(*adding(rng, batch, T)[:2])
        if k % max(1, steps // 20) == 0:
            curve.append((k, float(step.evaluate(X_test, Y_test))))
    predict = sg.compile(head(h), inputs=[x])
    pred = np.asarray(predict(X_test))
    return {"lstm": lstm, "head": head, "X": X_test, "Y": Y_test, "marked": marked, "start": start,
            "final": float(np.mean((pred - Y_test) ** 2)), "baseline": float(np.mean((Y_test - Y_test.mean()) ** 2)),
            "curve": curve, "pred": pred, "steps": steps}


def gate_cell(lstm, x):  # x: a var of fixed shape (n, T, 2)
    """The LSTM's cell written with sg.scan, the four gates from one product x_t W_ih + h_{t−1} W_hh + b
    (PyTorch's blocks i, f, g, o side by side); the loop returns (h_t, c_t, i_t, f_t, g_t, o_t) at every step."""
    H = lstm.hidden_size
    W_ih, W_hh, b = lstm.W_ih, lstm.W_hh, (lstm.b_ih + lstm.b_hh).named("b")

    def step(carry, x_t):
        h, c = carry
        a = (x_t @ W_ih + h @ W_hh + b).named("a")
        i, f, o = (sg.sigmoid(a[:, k * H:(k + 1) * H], name=n) for k, n in ((0, "i"), (1, "f"), (3, "o")))
        g = sg.tanh(a[:, 2 * H:3 * H], name="g")
        c = f * c + i * g
        h = o * sg.tanh(c)
        return (h, c), (h, c, i, f, g, o)
    start = sg.const(np.zeros((x.shape[0], H)))  # h_0 = c_0 = 0
    _, ys = sg.scan(step, (start, start), sg.transpose(x, (1, 0, 2)), carry_names=("h", "c"), x_names="x")
    return ys


def gates(trained: dict, n: int = 1) -> dict:
    """Every gate of the trained LSTM at every step of the first n test sequences, from gate_cell; and
    the module's own h_t for the same sequences, to check the two cells agree."""
    lstm = trained["lstm"]
    X = trained["X"][:n]
    x = sg.var("x", shape=(n, X.shape[1], IN))
    ys = gate_cell(lstm, x)
    values = sg.evaluate(list(ys) + [lstm(x)[0]], {x: X})
    (h, c, i, f, g, o), module_h = [v.transpose(1, 0, 2) for v in values[:6]], values[6]  # (n, T, H)
    return {"h": h, "c": c, "i": i, "f": f, "g": g, "o": o, "agree": float(np.max(np.abs(h - module_h)))}


def gate_stats(trained: dict, all_gates: dict) -> dict:
    """Mean gate activations over units and sequences: at the marked steps, at the others, and the
    forget gate between the first marked step and the end (where the cell must keep what it wrote)."""
    marked = trained["marked"][: all_gates["i"].shape[0]]
    n, T, _ = all_gates["i"].shape
    is_marked = np.zeros((n, T), dtype=bool)
    np.put_along_axis(is_marked, marked, True, axis=1)
    after = np.arange(T)[None, :] > marked[:, :1]
    stats = {g: (float(all_gates[g][is_marked].mean()), float(all_gates[g][~is_marked].mean())) for g in GATES}
    stats["f_after_first"] = float(all_gates["f"][after].mean())
    gap = all_gates["i"][is_marked].mean(0) - all_gates["i"][~is_marked].mean(0)  # per unit
    unit = int(np.argmax(gap))
    stats["unit"] = unit
    stats["unit_gates"] = {g: (float(all_gates[g][..., unit][is_marked].mean()),
                               float(all_gates[g][..., unit][~is_marked].mean())) for g in GATES}
    stats["unit_f_after_first"] = float(all_gates["f"][..., unit][after].mean())
    return stats


def heatmaps(out, trained: dict, g: dict) -> None:
    plt = pyplot()
    X, marked = trained["X"][0], trained["marked"][0]
    T = X.shape[0]
    fig, axes = plt.subplots(1 + len(SHOWN), 1, figsize=(11, 2.0 + 2.2 * len(SHOWN)), sharex=True,
                             gridspec_kw={"height_ratios": [1] + [2] * len(SHOWN)})
    axes[0].bar(range(T), X[:, 0], color=["#d62728" if t in marked else "#999999" for t in range(T)])
    axes[0].set_ylabel("number")
    axes[0].set_title(f"Adding problem: target {trained['Y'][0, 0]:.3f} (the red numbers), "
                      f"prediction {trained['pred'][0, 0]:.3f}", fontsize=10)
    for ax, name in zip(axes[1:], SHOWN):
        im = ax.imshow(g[name][0].T, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_ylabel(f"{NAMES[name]}\nunit")
        for t in marked:
            ax.axvline(t, color="#d62728", lw=1, ls="--")
    axes[-1].set_xlabel("step t")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="gate activation")
    print(f"wrote {savefig(fig, out, 'lstm_gates.png')}")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    k, mse = zip(*trained["curve"])
    ax.semilogy(k, mse, "-o", ms=3, label="LSTM, test MSE")
    ax.axhline(trained["baseline"], color="#d62728", ls="--", label="predicting the mean")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("mean squared error")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    print(f"wrote {savefig(fig, out, 'adding_training.png')}")


def main(argv=None):
    args = setup("18_lstm_gates", __doc__, argv)
    eq = equations()
    text = ["The LSTM's gates (sg.nn.LSTM(2, 3): one sg.scan, its body printed once at step t; the weight blocks "
            "W_ii … are column blocks of W_ih, taken once outside the loop):", eq["forward"],
            "\nTheir gradients through time for a loss on the last step, L = ½ Σ (h_T − y)² (sg.backprop_equations(L)): δ of each gate at "
            "step t, the carried δ_h_t and δ_c_t (δ_c_t = … ⊙ f_(t+1): the cell's gradient is multiplied by the "
            "forget gate, not by a weight matrix), and each block's gradient summed over the steps:", eq["backward"]]
    print("\n".join(text))
    ck = check(eq)
    lines = ["\nThe printed equations, run step by step (eqs.evaluate) on T = 6, batch 3, against sg.grad: "
             f"largest difference {max(ck['diffs'].values()):.1e} over the {len(ck['diffs'])} parameters"]
    dWhf = ck["got"]["∂L/∂lstm.W_hf"]
    lines.append("  ∂L/∂lstm.W_hf = Σ_t h_{t−1}ᵀ((1 − f_t) ⊙ f_t ⊙ δ_f_t) = "
                 + "; ".join(" ".join(f"{v:.6f}" for v in row) for row in dWhf))
    print("\n".join(lines))
    write(args.out, "formulas.txt", "\n".join(text + lines))
    write(args.out, "formulas.tex", eq["forward_tex"] + "\n\n" + eq["backward_tex"])
    formulas(args.out, "formulas", ["The LSTM's gates, one sg.scan printed at step t", eq["h"], "Their gradients through time for L = ½ Σ (h_T − y)²", eq["eqs"]])
    for path in drawings(args.out, eq["L"]):
        print(f"wrote {path}")

    hidden, T, steps = (4, 8, 30) if args.smoke else (16, 20, 600)
    trained = train(hidden, T, steps)
    report = [f"\nThe adding problem, T = {T}: LSTM({IN}, {hidden}) + Linear({hidden}, 1), {steps} Adam steps "
              f"(lr 0.01, batch 64, fresh sequences each step)",
              f"test MSE (500 sequences): {trained['start']:.5f} before, {trained['final']:.5f} after; predicting "
              f"the mean: {trained['baseline']:.5f} (Var(u₁ + u₂) = 1/6 = {1 / 6:.5f} in theory)"]
    g = gates(trained, n=50)
    stats = gate_stats(trained, g)
    report.append(f"the cell written with sg.scan (four gates from one product) gives the module's h_t: "
                  f"largest difference {g['agree']:.1e}")
    report.append("mean gate activation over 50 test sequences and all units, at the marked steps / at the others:")
    report += [f"  {NAMES[k]:<14} {stats[k][0]:.4f} / {stats[k][1]:.4f}" for k in GATES]
    report.append(f"forget gate after the first marked step (the cell keeps what it wrote): {stats['f_after_first']:.4f}")
    report.append(f"unit {stats['unit']}, whose input gate opens most at the marked steps (marked / others):")
    report += [f"  {NAMES[k]:<14} {stats['unit_gates'][k][0]:.4f} / {stats['unit_gates'][k][1]:.4f}" for k in GATES]
    report.append(f"  its forget gate after the first marked step: {stats['unit_f_after_first']:.4f}")
    print("\n".join(report))
    write(args.out, "training.txt", "\n".join(report))
    heatmaps(args.out, trained, g)
    return {"equations": eq, "check": ck, "trained": trained, "gates": g, "stats": stats, "T": T, "hidden": hidden}


if __name__ == "__main__":
    main()
