"""An MLP on handwritten digits: 8×8 images, 64 → 32 → 10, ReLU, Adam.

The 1,797 digits of scikit-learn (shipped with it, no download) are split
into training, validation and test sets.  ``sg.fit`` trains on shuffled
mini-batches, watches the validation loss, stops when it no longer
improves and puts back the best weights; the model is then saved with
``sg.save``, loaded back with ``sg.load`` and scored on the test set.
"""
from __future__ import annotations

import time

import numpy as np

import symgrad as sg
from _common import setup, write


def digits(smoke: bool, seed: int = 0):
    """(train, validation, test) dicts of X (pixels scaled to [0, 1]) and Y (labels 0-9)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    X, y = data.data / 16.0, data.target.astype(np.int64)
    X_rest, X_te, y_rest, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    X_tr, X_va, y_tr, y_va = train_test_split(X_rest, y_rest, test_size=0.15, stratify=y_rest, random_state=seed)
    if smoke:
        X_tr, y_tr, X_va, y_va, X_te, y_te = X_tr[:300], y_tr[:300], X_va[:100], y_va[:100], X_te[:100], y_te[:100]
    return ({"X": X_tr, "Y": y_tr}, {"X": X_va, "Y": y_va}, {"X": X_te, "Y": y_te})


def main(argv=None):
    args = setup("06_digits_mlp", __doc__, argv)
    train, val, test = digits(args.smoke)
    print(f"digits: {len(train['Y'])} training, {len(val['Y'])} validation, {len(test['Y'])} test images "
          f"of 8×8 = 64 pixels")

    model = sg.nn.MLP([64, 32, 10], activation="relu", init="he", seed=0)
    X, Y = sg.var("X", shape=("batch", 64)), sg.var("Y", shape=("batch",), dtype="int")
    logits = model(X)
    loss = sg.losses.cross_entropy(logits, Y)
    print(f"model: {model}, {model.num_parameters()} parameters "
          f"({', '.join(f'{n} {p.shape}' for n, p in model.named_parameters())})")

    step = sg.compile_step(loss, sg.optim.Adam(lr=3e-3), inputs=[X, Y], outputs=[logits])
    t0 = time.perf_counter()
    history = sg.fit(step, train, epochs=2 if args.smoke else 60, batch_size=32, validation=val,
                     early_stopping=5, seed=0, verbose=0)
    seconds = time.perf_counter() - t0
    stop = (f"stopped early after epoch {history.epochs[-1]}, restored the weights of epoch {history.best_epoch}"
            if history.stopped_early else f"ran all {history.epochs[-1]} epochs, best epoch {history.best_epoch}")
    print(f"training: {stop}; {step.t} Adam steps in {seconds:.1f} s")
    print(f"best epoch: train loss {history.best('loss'):.4f}, validation loss {history.best('val_loss'):.4f}, "
          f"validation accuracy {100 * history.best('val_accuracy'):.1f} %")

    path = sg.save(args.out / "digits_mlp.npz", model)
    again = sg.load(path)
    x_te = sg.var("X", shape=("batch", 64))
    predicted = np.argmax(sg.evaluate(again(x_te), {x_te: test["X"]}), axis=1)
    accuracy = float(np.mean(predicted == test["Y"]))
    same = all(np.array_equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    print(f"saved and reloaded {path} (parameters identical: {same})")
    print(f"test accuracy: {100 * accuracy:.1f} % ({int(np.sum(predicted == test['Y']))}/{len(test['Y'])} images)")
    wrong = np.flatnonzero(predicted != test["Y"])
    if wrong.size:
        pairs = ", ".join(f"{t}→{p}" for t, p in zip(test["Y"][wrong[:8]], predicted[wrong[:8]]))
        print(f"some mistakes (true→predicted): {pairs}")

    plot = args.out / "training_curves.png"
    history.plot(plot, title=f"MLP 64-32-10 on 8×8 digits: test accuracy {100 * accuracy:.1f} %")
    print(f"wrote {plot}")
    write(args.out, "history.csv", "\n".join(
        ["epoch," + ",".join(history.history)]
        + [f"{e}," + ",".join(f"{history[k][i]:.6f}" for k in history.history) for i, e in enumerate(history.epochs)]))
    return accuracy


if __name__ == "__main__":
    main()
