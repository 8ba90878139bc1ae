"""Models shared by several test files."""
from __future__ import annotations

import numpy as np

import symgrad as sg


def seed_network():
    """The 3-3-3-2 network of the course notes: x = [1.5, 2.5, 3], all
    weights of a layer equal (0.05, 0.025, 1.0), sigmoid, sigmoid, softmax, BCE."""
    x = sg.var("x", shape=(3,))
    y = sg.var("y", shape=(2,))
    W1 = sg.param("W1", np.full((3, 3), 0.05))
    b1 = sg.param("b1", [0.01, 0.02, 0.03])
    W2 = sg.param("W2", np.full((3, 3), 0.025))
    b2 = sg.param("b2", [0.01, 0.02, 0.03])
    W3 = sg.param("W3", np.full((2, 3), 1.0))
    b3 = sg.param("b3", [0.01, 0.02])
    a1 = (W1 @ x + b1).named("a1")
    h1 = sg.sigmoid(a1, name="h1")
    a2 = (W2 @ h1 + b2).named("a2")
    h2 = sg.sigmoid(a2, name="h2")
    a3 = (W3 @ h2 + b3).named("a3")
    yhat = sg.softmax(a3, name="yhat")
    L = sg.losses.bce(yhat, y, name="L")
    feeds = {x: [1.5, 2.5, 3.0], y: [1.0, 0.0]}
    return L, [W1, b1, W2, b2, W3, b3], [a1, h1, a2, h2, a3, yhat], feeds
