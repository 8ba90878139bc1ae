"""A convolutional network on the 8×8 digits: sizes, index notation, filters, feature maps.

The course notes' pipeline: image → convolution (each filter slides over
the image and makes one feature map) → ReLU → max pooling (downsampling
each map) → a fully connected layer.  This page

* works out the output sizes of the notes' 6×6 image under a 3×3 filter
  for several strides and paddings, ⌊(n + 2p − k)/s⌋ + 1, next to the
  shapes symgrad's graph gives, and shows the receptive field that
  pooling widens (which pixels one pooled value depends on, read off
  ``sg.grad``);
* prints the convolution and the whole network's backward pass in index
  notation (``sg.backprop_equations``) and checks that the printed
  equations compute the same gradient as ``sg.grad``;
* trains ``Sequential(Conv2d(1, 16, 3, padding=1), ReLU(), MaxPool2d(2),
  Flatten(), Linear(256, 10))`` with Adam on scikit-learn's 1,797 digits
  (80/20 split) and shows its 16 learned filters and the feature maps
  they make of a test digit.
"""
from __future__ import annotations

import time

import numpy as np

import symgrad as sg
import _common
from _common import pyplot, savefig, setup, write

FILTERS = 16
#: (stride, padding) for the notes' 6×6 image and 3×3 filter
SIZE_CASES = ((1, 0), (2, 0), (3, 0), (1, 1), (2, 1))


def out_size(n: int, k: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution or pooling window: ⌊(n + 2p − k)/s⌋ + 1."""
    return (n + 2 * padding - k) // stride + 1


def load(smoke: bool, seed: int = 0):
    """Train, validation and test images ``(n, 1, 8, 8)`` in [0, 1] and their labels: 20 % of the
    digits for the test, 15 % of the rest for validation (stratified, as gallery/06)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    X = (digits.images / 16.0).reshape(-1, 1, 8, 8)
    X_rest, X_te, y_rest, y_te = train_test_split(X, digits.target, test_size=0.2, stratify=digits.target,
                                                  random_state=seed)
    X_tr, X_va, y_tr, y_va = train_test_split(X_rest, y_rest, test_size=0.15, stratify=y_rest, random_state=seed)
    if smoke:
        X_tr, y_tr, X_va, y_va, X_te, y_te = X_tr[:300], y_tr[:300], X_va[:100], y_va[:100], X_te[:100], y_te[:100]
    return {"X": X_tr, "Y": y_tr}, {"X": X_va, "Y": y_va}, X_te, y_te


def build(seed: int = 0) -> sg.nn.Sequential:
    nn = sg.nn
    return nn.Sequential(nn.Conv2d(1, FILTERS, 3, padding=1, seed=seed), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(FILTERS * 4 * 4, 10, seed=seed + 1), name="cnn")


def sizes() -> list[str]:
    """The output-size table: the formula next to the shape of symgrad's node."""
    image = sg.var("image", shape=("batch", 1, 6, 6))
    kernel = sg.param("W", np.ones((1, 1, 3, 3)))
    lines = ["Output sizes, out = ⌊(n + 2p − k)/s⌋ + 1:",
             "  input          window         stride  padding   formula  symgrad's node"]
    for stride, padding in SIZE_CASES:
        node = sg.conv2d(image, kernel, stride=stride, padding=padding)
        n = out_size(6, 3, stride, padding)
        lines.append(f"  6×6 image      3×3 filter     {stride:6d}  {padding:7d}   {n}×{n}      {_hw(node)}")
    fmap = sg.conv2d(image, kernel)
    pooled = sg.max_pool2d(fmap, 2)
    n = out_size(4, 2, 2)
    lines.append(f"  4×4 map        2×2 max pool   {2:6d}  {0:7d}   {n}×{n}      {_hw(pooled)}")
    digit = sg.var("digit", shape=("batch", 1, 8, 8))
    conv = sg.conv2d(digit, sg.param("W16", np.ones((FILTERS, 1, 3, 3))), padding=1)
    n = out_size(8, 3, 1, 1)
    lines.append(f"  8×8 digit      3×3 filter     {1:6d}  {1:7d}   {n}×{n}      {_hw(conv)}")
    n = out_size(8, 2, 2)
    pooled = sg.max_pool2d(conv, 2)
    lines.append(f"  8×8 map        2×2 max pool   {2:6d}  {0:7d}   {n}×{n}      {_hw(pooled)}")
    lines.append(f"  {FILTERS} maps of 4×4 flattened: {FILTERS}·4·4 = {FILTERS * 16} inputs to the linear layer "
                 f"(symgrad: {sg.flatten(pooled).shape[1]})")
    return lines


def _hw(node) -> str:
    return "×".join(str(d) for d in node.shape[2:])


def receptive_field() -> tuple[list[str], np.ndarray]:
    """Which pixels of an 8×8 image one value of a 3×3 conv (padding 1) + 2×2 average pool depends on:
    the nonzero entries of its gradient with respect to the image (an all-ones filter)."""
    image = sg.var("image", shape=(1, 1, 8, 8))
    pooled = sg.avg_pool2d(sg.conv2d(image, sg.param("W", np.ones((1, 1, 3, 3))), padding=1), 2)
    g = sg.evaluate(sg.grad(pooled[0, 0, 1, 1], image), {image: np.zeros((1, 1, 8, 8))})[0, 0]
    rows = ["  " + " ".join("■" if v else "·" for v in row) for row in g]
    return rows, g


def main(argv=None):
    args = setup("16_cnn", __doc__, argv)
    text = sizes()
    print("\n".join(text))
    rows, g = receptive_field()
    field = [f"\nReceptive field: one value after a 3×3 conv (padding 1) and 2×2 pooling (row 1, column 1 of "
             f"the 4×4 output) depends on {int(np.count_nonzero(g))} pixels, the ■ (nonzero ∂/∂pixel):"] + rows
    print("\n".join(field))

    stride2, grad_line, diff = stride_two_example()
    print("\nThe convolution in index notation; with stride 2 and padding 1 the pixel index is 2k + p − 1:")
    print(stride2)
    print("and the gradient of its filter, for Z → ReLU → flatten → linear → cross-entropy L:")
    print(grad_line)
    print(f"(the printed backprop equations, evaluated on 3 random 6×6 images, against sg.grad: largest "
          f"difference {diff:.1e})")

    model = build()
    images = sg.var("X", shape=("batch", 1, 8, 8))
    labels = sg.var("Y", shape=("batch",), dtype="int")
    logits = model(images)
    loss = sg.losses.cross_entropy(logits, labels, name="L")
    print(f"\nThe network: {model}, {model.num_parameters()} parameters")
    eqs = sg.backprop_equations(loss)
    print("Its forward and backward pass in index notation (sg.backprop_equations); max pooling has no "
          "index form: its backward pass sends each δ to the largest value of its window:")
    print(eqs.pretty())
    write(args.out, "formulas.txt", "\n".join(text + field + ["", stride2, grad_line, "", eqs.pretty()]))
    write(args.out, "formulas.tex", eqs.latex())
    _common.formulas(args.out, "formulas", ["Conv2d → ReLU → MaxPool2d → Linear, in index notation", eqs])
    path = sg.render(sg.draw(loss, backward=True, collapse=True), args.out / "cnn_collapsed.svg")
    print(f"wrote {path}")

    train, val, X_te, y_te = load(args.smoke)
    epochs = 2 if args.smoke else 20
    step = sg.compile_step(loss, sg.optim.Adam(lr=1e-2, weight_decay=1e-3), inputs=[images, labels],
                           outputs=[logits])
    t0 = time.perf_counter()
    history = sg.fit(step, train, epochs=epochs, batch_size=32, seed=0, validation=val, verbose=0)
    seconds = time.perf_counter() - t0
    predicted = sg.compile(logits, inputs=[images])(X_te).argmax(axis=1)
    accuracy = float(np.mean(predicted == y_te))
    print(f"\nTraining: Adam (lr 0.01, weight decay 0.001), batches of 32, {epochs} epochs of {len(train['Y'])} "
          f"images in {seconds:.1f} s (no early stopping: the weights of the last epoch are kept)")
    print("validation accuracy per epoch: " + " ".join(f"{v:.3f}" for v in history["val_accuracy"]))
    print(f"test accuracy: {100 * accuracy:.1f} % ({int(np.sum(predicted == y_te))}/{len(y_te)} test images)")
    history.plot(args.out / "training_curves.png",
                 title=f"CNN on 8×8 digits: test accuracy {100 * accuracy:.1f} % after {epochs} epochs")

    conv_out, pool_out = model[1].name + ".a", model[2].name + ".out"
    nodes = {n.name: n for n in sg.Graph(loss).order if n.name in (conv_out, pool_out)}
    digit = int(np.flatnonzero(y_te == 4)[0]) if np.any(y_te == 4) else 0
    maps, pooled = sg.evaluate([nodes[conv_out], nodes[pool_out]], {images: X_te[digit:digit + 1]})
    plot_maps(args.out, X_te[digit, 0], model[0].W.value, maps[0], pooled[0], int(y_te[digit]),
              int(predicted[digit]))
    return {"model": model, "accuracy": accuracy, "X_test": X_te, "y_test": y_te, "receptive": g,
            "max_difference": diff}


def stride_two_example(seed: int = 0) -> tuple[str, str, float]:
    """The notes' 6×6 image through 2 filters of 3×3 with stride 2 and padding 1 (3×3 maps), ReLU,
    flatten and a linear layer to 3 classes: the conv's index formula, the printed ∂L/∂W and the
    largest difference between the printed equations' numbers and sg.grad."""
    rng = np.random.default_rng(seed)
    X, Y = sg.var("X", shape=("batch", 1, 6, 6)), sg.var("Y", shape=("batch",), dtype="int")
    W, b = sg.param("W", rng.normal(size=(2, 1, 3, 3)) * 0.5), sg.param("b", rng.normal(size=2) * 0.1)
    V = sg.param("V", rng.normal(size=(18, 3)) * 0.3)
    Z = sg.conv2d(X, W, b, stride=2, padding=1).named("Z")
    L = sg.losses.cross_entropy(sg.flatten(sg.relu(Z).named("A")).named("F") @ V, Y, name="L")
    eqs = sg.backprop_equations(L)
    line = next(e.rhs.pretty() for e in eqs.equations if e.kind == "grad" and e.node is W)
    feeds = {X: rng.normal(size=(3, 1, 6, 6)), Y: np.array([0, 2, 1])}
    printed, direct = eqs.evaluate(feeds), sg.evaluate(sg.grad(L, [W, b, V]), feeds)
    diff = max(float(np.max(np.abs(printed[f"∂L/∂{p.name}"] - d))) for p, d in zip((W, b, V), direct))
    return sg.pretty(Z, notation="index"), line, diff


def plot_maps(out, image, W, maps, pooled, label, predicted):
    """Per filter, one column: the learned 3×3 filter, the 8×8 feature map it makes of the digit, and
    that map after 2×2 max pooling; the 16 filters in two blocks of eight.  One axes, each picture
    placed by its extent (cheaper to draw than 50 small axes)."""
    plt = pyplot()
    half, size, gap = FILTERS // 2, 8.0, 2.5
    fig, ax = plt.subplots(figsize=(13, 10.5))
    bound, top = float(np.max(np.abs(W))), float(np.max(maps)) or 1.0
    ax.imshow(image, cmap="gray_r", extent=(0, size, 3.5 * (size + gap), 2.5 * (size + gap) + gap))
    ax.add_patch(plt.Rectangle((0, 2.5 * (size + gap) + gap), size, size, fill=False, lw=0.6, color="0.4"))
    ax.text(size / 2, 3.5 * (size + gap) + 0.5, f"test digit {label}\n(predicted {predicted})", ha="center",
            va="bottom", fontsize=10)
    for k in range(FILTERS):
        block, col = divmod(k, half)
        x0 = (col + 1) * (size + gap) + gap
        pictures = ((W[k, 0], "RdBu_r", -bound, bound, f"filter {k}"), (maps[k], "magma", 0, top, "8×8 map"),
                    (pooled[k], "magma", 0, top, "pooled 4×4"))
        for r, (picture, cmap, low, high, title) in enumerate(pictures):
            y1 = (6 - 3 * block - r) * (size + gap) + 2 * gap * (1 - block)
            ax.imshow(picture, cmap=cmap, vmin=low, vmax=high, extent=(x0, x0 + size, y1 - size, y1))
            ax.add_patch(plt.Rectangle((x0, y1 - size), size, size, fill=False, lw=0.6, color="0.4"))
            ax.text(x0 + size / 2, y1 + 0.3, title, ha="center", va="bottom", fontsize=8 if r else 9)
    ax.set_xlim(-0.5, (half + 1) * (size + gap) + gap)
    ax.set_ylim(-0.5, 6 * (size + gap) + 2 * gap + 3)
    ax.set_axis_off()
    ax.set_title("One filter, one feature map: each learned 3×3 filter (red positive, blue negative weights),\n"
                 "the map ReLU(filter ⊛ image + b) it makes of the digit, and that map after 2×2 max pooling "
                 "(bright = large)")
    print(f"wrote {savefig(fig, out, 'filters_and_feature_maps.png')}")


if __name__ == "__main__":
    main()
