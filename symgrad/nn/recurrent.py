"""Recurrent layers: :class:`RNN`, :class:`LSTM` and :class:`GRU`, each one :func:`symgrad.scan` over
the sequence.

Inputs are batch-first, ``(batch, seq, input_size)``; calling a layer returns ``(outputs, state)``
with ``outputs`` of shape ``(batch, seq, hidden_size)`` and ``state`` the final hidden state
``(batch, hidden_size)`` (for the LSTM the pair ``(h, c)``).  Parameters are PyTorch's in symgrad's
``x @ W`` layout, gates in PyTorch's order: ``W_ih`` ``(input, G·hidden)`` = ``weight_ih_l0.T``,
``W_hh`` ``(hidden, G·hidden)`` = ``weight_hh_l0.T``, ``b_ih`` and ``b_hh`` ``(G·hidden,)`` =
``bias_ih_l0`` and ``bias_hh_l0``, with G = 1 (RNN), 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n), all
drawn from U(−1/√hidden, 1/√hidden) as PyTorch does.

Inside the loop the gates are named (``z``, ``i``, ``f``, ``g``, ``o``, ``r``, ``n``) and the carries
``h`` and ``c``; the gates of the LSTM and GRU read their blocks of the weights (``W_if = W_ih[:, H:2H]``,
``b_f = b_if + b_hf``, taken once outside the loop), so formulas read as the textbook's:
``h_t = tanh(z_t)``, ``f_t = σ(x_t W_if + b_f + h_{t−1} W_hf)``, ``c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t``.
The input projections ``x_t W_i? + b`` are computed for all steps before the loop by the compiler.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GraphError, ShapeError
from ..graph import Node, format_shape
from ..ops import as_node, const, relu, sigmoid, tanh, transpose
from ..ops.linalg import broadcast_like
from ..ops.scan import scan
from .layers import _check_size
from .module import Module

__all__ = ["RNN", "LSTM", "GRU"]


class _Recurrent(Module):
    """Shared parts: parameters, the batch-first sequence as scanned steps, the zero initial state."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, name: str, seed: int | None):
        super().__init__(name)
        self.input_size = _check_size(input_size, f"{type(self).__name__}: input_size")
        self.hidden_size = _check_size(hidden_size, f"{type(self).__name__}: hidden_size")
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(self.hidden_size)
        G, H, In = self.gates, self.hidden_size, self.input_size
        self.W_ih = self.param("W_ih", rng.uniform(-k, k, size=(In, G * H)))
        self.W_hh = self.param("W_hh", rng.uniform(-k, k, size=(H, G * H)))
        self.b_ih = self.param("b_ih", rng.uniform(-k, k, size=(G * H,)))
        self.b_hh = self.param("b_hh", rng.uniform(-k, k, size=(G * H,)))

    def _steps(self, x: Any) -> Node:
        x = as_node(x, self.name)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ShapeError(f"{self.name}: expects input of shape (batch, seq, {self.input_size}), got "
                             f"{format_shape(x.shape)} ({x.describe()})")
        return transpose(x, (1, 0, 2))  # (seq, batch, input): one step per row of the scan

    def _state(self, state: Any, x: Node, what: str) -> Node:
        """The given initial state (checked), or zeros of shape (batch, hidden)."""
        want = (x.shape[0], self.hidden_size)
        if state is None:
            first = broadcast_like(const(0.0), x[:, 0, :])  # (batch, input) zeros, whatever the batch
            return first @ const(np.zeros((self.input_size, self.hidden_size)))
        state = as_node(state, self.name)
        if state.shape != want:
            raise ShapeError(f"{self.name}: the initial {what} must have shape {format_shape(want)}, got "
                             f"{format_shape(state.shape)} ({state.describe()})")
        return state

    def _blocks(self, gates: str, summed: str) -> tuple[dict, dict, dict]:
        """The gates' column blocks of ``W_ih`` and ``W_hh`` (``W_ii``, ``W_hi``, …) and their biases: one
        ``b_g = b_ig + b_hg`` for the gates in ``summed``, ``b_ig`` and ``b_hg`` apart for the others."""
        H, n = self.hidden_size, self.name
        Wx, Wh, b = {}, {}, {}
        for k, g in enumerate(gates):
            cols = slice(k * H, (k + 1) * H)
            Wx[g] = self.W_ih[:, cols].named(f"{n}.W_i{g}")
            Wh[g] = self.W_hh[:, cols].named(f"{n}.W_h{g}")
            bi, bh = self.b_ih[cols].named(f"{n}.b_i{g}"), self.b_hh[cols].named(f"{n}.b_h{g}")
            if g in summed:
                b[g] = (bi + bh).named(f"{n}.b_{g}")
            else:
                b["i" + g], b["h" + g] = bi, bh
        return Wx, Wh, b

    @staticmethod
    def _outputs(hs: Node) -> Node:
        return transpose(hs, (1, 0, 2))  # back to (batch, seq, hidden)


class RNN(_Recurrent):
    """Elman RNN: ``h_t = act(x_t W_ih + b_ih + b_hh + h_{t−1} W_hh)`` with act tanh or ReLU.

    Parameters
    ----------
    input_size, hidden_size : feature sizes.
    nonlinearity : ``"tanh"`` or ``"relu"``.
    name : prefix of the parameter names (``rnn.W_ih``).
    seed : for the initial parameters.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> rnn = sg.nn.RNN(3, 4, seed=0)
    >>> x = sg.var("x", shape=("batch", "seq", 3))
    >>> out, h = rnn(x)
    >>> out.shape, h.shape
    (('batch', 'seq', 4), ('batch', 4))
    >>> sg.evaluate(out, {"x": np.ones((2, 5, 3))}).shape
    (2, 5, 4)
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", *, name: str = "rnn",
                 seed: int | None = None):
        if nonlinearity not in ("tanh", "relu"):
            raise GraphError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, name, seed)

    def forward(self, x: Any, h0: Any = None) -> tuple[Node, Node]:
        xs = self._steps(x)
        act = tanh if self.nonlinearity == "tanh" else relu
        bias = (self.b_ih + self.b_hh).named(f"{self.name}.b")
        W_ih, W_hh = self.W_ih, self.W_hh

        def step(h, x_t):
            z = (x_t @ W_ih + bias + h @ W_hh).named("z")
            h = act(z)
            return h, h
        h, hs = scan(step, self._state(h0, as_node(x), "state"), xs, carry_names="h", x_names="x")
        return self._outputs(hs), h


class LSTM(_Recurrent):
    """Long short-term memory, PyTorch's gates: ``i_t = σ(x_t W_ii + b_i + h_{t−1} W_hi)``, ``f_t``, ``o_t``
    likewise, ``g_t = tanh(x_t W_ig + b_g + h_{t−1} W_hg)``; ``c_t = f_t ⊙ c_{t−1} + i_t ⊙ g_t``,
    ``h_t = o_t ⊙ tanh(c_t)``.  ``W_ii`` … are the gates' column blocks of ``W_ih`` (order i, f, g, o),
    ``b_i = b_ii + b_hi`` of the biases; they are taken once, outside the loop.

    Calling returns ``(outputs, (h, c))``; the initial state is an optional pair ``(h0, c0)``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> lstm = sg.nn.LSTM(3, 4, seed=0)
    >>> out, (h, c) = lstm(sg.var("x", shape=("batch", 6, 3)))
    >>> [p.shape for p in (lstm.W_ih, lstm.W_hh, lstm.b_ih)], c.shape
    ([(3, 16), (4, 16), (16,)], ('batch', 4))
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, *, name: str = "lstm", seed: int | None = None):
        super().__init__(input_size, hidden_size, name, seed)

    def forward(self, x: Any, state: Any = None) -> tuple[Node, tuple[Node, Node]]:
        xs = self._steps(x)
        x = as_node(x)
        if state is None:
            h0 = c0 = self._state(None, x, "state")
        else:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise GraphError(f"{self.name}: the initial state of an LSTM is a pair (h0, c0), got {state!r}")
            h0, c0 = self._state(state[0], x, "h0"), self._state(state[1], x, "c0")
        Wx, Wh, b = self._blocks("ifgo", summed="ifgo")

        def step(carry, x_t):
            h, c = carry
            i = sigmoid(x_t @ Wx["i"] + b["i"] + h @ Wh["i"], name="i")
            f = sigmoid(x_t @ Wx["f"] + b["f"] + h @ Wh["f"], name="f")
            g = tanh(x_t @ Wx["g"] + b["g"] + h @ Wh["g"], name="g")
            o = sigmoid(x_t @ Wx["o"] + b["o"] + h @ Wh["o"], name="o")
            c = f * c + i * g
            h = o * tanh(c)
            return (h, c), h
        (h, c), hs = scan(step, (h0, c0), xs, carry_names=("h", "c"), x_names="x")
        return self._outputs(hs), (h, c)


class GRU(_Recurrent):
    """Gated recurrent unit, PyTorch's formulation: ``r_t = σ(x_t W_ir + b_r + h_{t−1} W_hr)``,
    ``z_t = σ(x_t W_iz + b_z + h_{t−1} W_hz)``, ``n_t = tanh(x_t W_in + b_in + r_t ⊙ (h_{t−1} W_hn + b_hn))``,
    ``h_t = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}`` (gates r, z, n in that order in the parameters;
    ``b_r = b_ir + b_hr``, ``b_z`` likewise).

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> gru = sg.nn.GRU(2, 3, seed=0)
    >>> out, h = gru(sg.var("x", shape=(4, 5, 2)))
    >>> out.shape, gru.W_hh.shape
    ((4, 5, 3), (3, 9))
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, *, name: str = "gru", seed: int | None = None):
        super().__init__(input_size, hidden_size, name, seed)

    def forward(self, x: Any, h0: Any = None) -> tuple[Node, Node]:
        xs = self._steps(x)
        Wx, Wh, b = self._blocks("rzn", summed="rz")

        def step(h, x_t):
            r = sigmoid(x_t @ Wx["r"] + b["r"] + h @ Wh["r"], name="r")
            z = sigmoid(x_t @ Wx["z"] + b["z"] + h @ Wh["z"], name="z")
            n = tanh(x_t @ Wx["n"] + b["in"] + r * (h @ Wh["n"] + b["hn"]), name="n")
            h = (1.0 - z) * n + z * h
            return h, h
        h, hs = scan(step, self._state(h0, as_node(x), "state"), xs, carry_names="h", x_names="x")
        return self._outputs(hs), h
