"""sg.nn.TransformerEncoderLayer and TransformerEncoder: values against a NumPy reference written here
(post-norm and pre-norm, relu and gelu), finite differences on every parameter, compiled == evaluated
with a symbolic sequence length, train/eval modes, backprop equations that evaluate to sg.grad,
PyTorch's TransformerEncoderLayer / TransformerEncoder (batch_first=True, dropout 0, eval) on values
and every parameter gradient, and the reversal benchmark in its smoke size."""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import pytest

import symgrad as sg
from test_attention import _causal_add, _torch_mha, _torch_mha_grads, np_mha

RNG = np.random.default_rng(5)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_erf = np.vectorize(math.erf)


# ------------------------------------------------------------------ NumPy reference
def np_layer_norm(x, g, b, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + eps) * g + b


def np_encoder_layer(layer, x, add=0.0):
    """PyTorch's TransformerEncoderLayer forward, in NumPy, from the symgrad layer's parameter values."""
    v = {n[len(layer.name) + 1:]: p.value for n, p in layer.named_parameters()}
    attn = {r: v[f"self_attn.{r}"] for r in ("W_q", "W_k", "W_v", "W_o", "b_q", "b_k", "b_v", "b_o")}
    if layer.activation == "relu":
        act = lambda z: np.maximum(z, 0)  # noqa: E731
    else:  # the exact gelu, z·Φ(z)
        act = lambda z: z * 0.5 * (1 + _erf(z / np.sqrt(2)))  # noqa: E731

    def sa(h):
        return np_mha(attn, h, h, h, layer.nhead, add)[0]

    def ff(h):
        return act(h @ v["linear1.W"] + v["linear1.b"]) @ v["linear2.W"] + v["linear2.b"]

    def n1(h):
        return np_layer_norm(h, v["norm1.gamma"], v["norm1.beta"])

    def n2(h):
        return np_layer_norm(h, v["norm2.gamma"], v["norm2.beta"])

    if layer.norm_first:
        x = x + sa(n1(x))
        return x + ff(n2(x))
    x = n1(x + sa(x))
    return n2(x + ff(x))


def layer_with_values(d=8, nhead=2, ff=12, activation="relu", norm_first=False, seed=0, name="enc"):
    layer = sg.nn.TransformerEncoderLayer(d, nhead, ff, dropout=0.0, activation=activation, norm_first=norm_first,
                                          seed=seed, name=name)
    for n, p in layer.named_parameters():  # zero biases and unit gains would leave paths untested
        if p.value.ndim == 1:
            p.value = p.value + RNG.normal(size=p.shape) * 0.2
    return layer


# ------------------------------------------------------------------ values, gradients, compile
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_values_match_numpy(norm_first, activation):
    layer = layer_with_values(activation=activation, norm_first=norm_first)
    X = sg.var("X", shape=("batch", "seq", 8))
    x = RNG.normal(size=(3, 5, 8))
    np.testing.assert_allclose(sg.evaluate(layer(X), {"X": x}), np_encoder_layer(layer, x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sg.evaluate(layer(X, causal=True), {"X": x}),
                               np_encoder_layer(layer, x, _causal_add(5, 5)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_finite_differences_on_every_parameter(norm_first):
    layer = layer_with_values(4, 2, 6, activation="gelu", norm_first=norm_first, seed=1)
    X = sg.var("X", shape=("batch", 3, 4))
    L = sg.sum(sg.tanh(layer(X, causal=True)))
    assert sg.check_grad(L, layer.parameters(), {"X": RNG.normal(size=(2, 3, 4))}, rtol=1e-5, atol=1e-7) < 1e-6


def test_encoder_layer_compiled_equals_evaluated_for_any_length():
    layer = layer_with_values(8, 4, 16, norm_first=True, seed=2)
    X = sg.var("X", shape=("batch", "seq", 8))
    L = sg.mean(layer(X, causal=True) ** 2)
    outputs = [L] + sg.grad(L, layer.parameters())
    f64, f32 = sg.compile(outputs, inputs=[X]), sg.compile(outputs, inputs=[X], dtype="float32")
    for T in (2, 6):
        x = RNG.normal(size=(3, T, 8))
        want = sg.evaluate(outputs, {"X": x})
        for a, b, c in zip(f64(x), f32(x), want):
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(b, c, rtol=1e-3, atol=1e-4)


def test_encoder_layer_modules_names_and_modes():
    layer = sg.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, seed=0, name="enc")
    assert [m.name for m in layer._modules] == ["enc.self_attn", "enc.linear1", "enc.linear2", "enc.norm1",
                                                 "enc.norm2", "enc.dropout", "enc.dropout1", "enc.dropout2"]
    assert (layer.linear1.W.shape, layer.linear2.W.shape) == ((8, 16), (16, 8))
    X = sg.var("X", shape=("batch", 4, 8))
    train_graph = sg.Graph(layer(X))
    assert sorted(r.name for r in train_graph.randoms) == ["enc.dropout.mask", "enc.dropout1.mask",
                                                           "enc.dropout2.mask", "enc.self_attn.dropout.mask"]
    out = layer.eval()(X)
    assert sg.Graph(out).randoms == [] and out.name == "enc.out"
    # PyTorch's initial distributions: linear weights and biases in ±1/√fan_in
    assert np.abs(layer.linear2.W.value).max() <= 0.25 and np.abs(layer.linear2.b.value).max() <= 0.25
    assert [n for n, _ in sg.nn.TransformerEncoderLayer(4, 2, 8, bias=False, name="e").named_parameters()] == \
        ["e.self_attn.W_q", "e.self_attn.W_k", "e.self_attn.W_v", "e.self_attn.W_o", "e.linear1.W", "e.linear2.W",
         "e.norm1.gamma", "e.norm2.gamma"]
    with pytest.raises(sg.GraphError, match="activation"):
        sg.nn.TransformerEncoderLayer(8, 2, activation="swish")
    with pytest.raises(sg.ShapeError, match=r"\(batch, seq, 8\)"):
        layer(sg.var("Y", shape=("batch", 4, 6)))
    custom = sg.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, activation=sg.tanh, seed=0, name="c")
    x = RNG.normal(size=(1, 3, 4))
    relu_twin = sg.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, seed=0, name="c")
    assert not np.allclose(sg.evaluate(custom(sg.const(x))), sg.evaluate(relu_twin(sg.const(x))))
    assert custom.config() is None and relu_twin.config()["activation"] == "relu"


def test_encoder_stacks_layers_from_a_factory_a_list_or_copies_of_one_layer():
    enc = sg.nn.TransformerEncoder(lambda i: layer_with_values(8, 2, 12, seed=i), num_layers=2,
                                   norm=sg.nn.LayerNorm(8), name="enc")
    names = [n for n, _ in enc.named_parameters()]
    assert names[0] == "enc.layers.0.self_attn.W_q" and names[-1] == "enc.norm.beta"
    assert len(enc) == 2 and enc[1].name == "enc.layers.1"
    X = sg.var("X", shape=("batch", "seq", 8))
    x = RNG.normal(size=(2, 4, 8))
    want = np_layer_norm(np_encoder_layer(enc[1], np_encoder_layer(enc[0], x)), 1.0, 0.0)
    np.testing.assert_allclose(sg.evaluate(enc(X), {"X": x}), want, rtol=1e-10, atol=1e-12)
    # a list is used as given; one layer is copied with its weights, as PyTorch clones it
    layers = [layer_with_values(8, 2, 12, seed=3), layer_with_values(8, 2, 12, seed=4)]
    assert sg.nn.TransformerEncoder(layers, name="e2")[1] is layers[1]
    proto = layer_with_values(8, 2, 12, seed=5, name="proto")
    copies = sg.nn.TransformerEncoder(proto, 3, name="e3")
    assert proto.name == "proto" and all(c is not proto for c in copies.layers)
    for c in copies.layers:
        np.testing.assert_array_equal(c.linear1.W.value, proto.linear1.W.value)
        assert c.linear1.W is not proto.linear1.W
    with pytest.raises(sg.GraphError, match="num_layers"):
        sg.nn.TransformerEncoder(lambda i: layer_with_values(seed=i))
    with pytest.raises(sg.GraphError, match="not a Module"):
        sg.nn.TransformerEncoder(lambda i: "layer", num_layers=1)
    with pytest.raises(sg.GraphError, match="2 layers and num_layers=3"):
        sg.nn.TransformerEncoder(layers, num_layers=3)


def test_encoder_layer_backprop_equations_evaluate_to_the_gradient():
    layer = layer_with_values(4, 2, 4, seed=6, name="enc")
    X = sg.var("X", shape=("batch", 3, 4))
    L = sg.sum(layer(X) * sg.const(RNG.normal(size=(1, 3, 4)))).named("L")
    start = time.perf_counter()
    eqs = sg.backprop_equations(L)
    text = eqs.pretty()
    feeds = {"X": RNG.normal(size=(2, 3, 4))}
    got = eqs.evaluate(feeds)
    print(f"backprop equations of an encoder layer: {time.perf_counter() - start:.1f} s")  # not asserted
    assert "enc.self_attn.weights" in text and "δ_enc.self_attn.scores" in text
    params = layer.parameters()
    for p, want in zip(params, sg.evaluate(sg.grad(L, params), feeds)):
        np.testing.assert_allclose(got[f"∂L/∂{p.name}"], want, rtol=1e-9, atol=1e-12, err_msg=p.name)


# ------------------------------------------------------------------ PyTorch
def _torch_layer(layer, torch):
    t = torch.nn.TransformerEncoderLayer(layer.d_model, layer.nhead, layer.dim_feedforward, dropout=0.0,
                                         activation=layer.activation, norm_first=layer.norm_first,
                                         batch_first=True).double().eval()
    with torch.no_grad():
        src = _torch_mha(layer.self_attn, torch)
        t.self_attn.load_state_dict(src.state_dict())
        for lin in ("linear1", "linear2"):
            getattr(t, lin).weight.copy_(torch.tensor(getattr(layer, lin).W.value.T))
            getattr(t, lin).bias.copy_(torch.tensor(getattr(layer, lin).b.value))
        for norm in ("norm1", "norm2"):
            getattr(t, norm).weight.copy_(torch.tensor(getattr(layer, norm).gamma.value))
            getattr(t, norm).bias.copy_(torch.tensor(getattr(layer, norm).beta.value))
    return t


def _torch_layer_grads(layer, t):
    """The torch layer's gradients under the symgrad layer's parameter names."""
    grads = {f"{layer.name}.self_attn.{k}": v for k, v in _torch_mha_grads(t.self_attn, layer.d_model).items()}
    for lin in ("linear1", "linear2"):
        grads[f"{layer.name}.{lin}.W"] = getattr(t, lin).weight.grad.numpy().T
        grads[f"{layer.name}.{lin}.b"] = getattr(t, lin).bias.grad.numpy()
    for norm in ("norm1", "norm2"):
        grads[f"{layer.name}.{norm}.gamma"] = getattr(t, norm).weight.grad.numpy()
        grads[f"{layer.name}.{norm}.beta"] = getattr(t, norm).bias.grad.numpy()
    return grads


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("causal", [False, True])
def test_encoder_layer_matches_torch_values_and_every_gradient(norm_first, activation, causal):
    torch = pytest.importorskip("torch")
    layer = layer_with_values(8, 2, 12, activation=activation, norm_first=norm_first, seed=7)
    t = _torch_layer(layer, torch)
    x, G = RNG.normal(size=(3, 5, 8)), RNG.normal(size=(3, 5, 8))
    Xp = sg.param("X", x)
    out = layer(Xp, causal=causal)
    params = layer.parameters()
    got = sg.evaluate([out] + sg.grad(sg.sum(out * sg.const(G)), [Xp] + params))
    tx = torch.tensor(x, requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64) if causal else None
    ty = t(tx, src_mask=mask, is_causal=causal)
    (ty * torch.tensor(G)).sum().backward()
    np.testing.assert_allclose(got[0], ty.detach().numpy(), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(got[1], tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    want = _torch_layer_grads(layer, t)
    assert len(want) == len(params)
    for p, g in zip(params, got[2:]):
        np.testing.assert_allclose(g, want[p.name], rtol=1e-9, atol=1e-11, err_msg=p.name)


def test_encoder_matches_torch_transformer_encoder_with_mapped_weights():
    torch = pytest.importorskip("torch")
    proto = layer_with_values(8, 2, 12, activation="gelu", seed=8, name="proto")
    enc = sg.nn.TransformerEncoder(proto, 2, norm=sg.nn.LayerNorm(8), name="enc")
    enc[1].linear1.W.value = RNG.normal(size=(8, 12)) * 0.3  # the two layers differ from here on
    enc.norm.gamma.value = 1 + RNG.normal(size=8) * 0.2
    tproto = torch.nn.TransformerEncoderLayer(8, 2, 12, dropout=0.0, activation="gelu", batch_first=True).double()
    t = torch.nn.TransformerEncoder(tproto, 2, norm=torch.nn.LayerNorm(8).double(), enable_nested_tensor=False).eval()
    with torch.no_grad():
        for i in range(2):
            t.layers[i].load_state_dict(_torch_layer(enc[i], torch).state_dict())
        t.norm.weight.copy_(torch.tensor(enc.norm.gamma.value))
    x, G = RNG.normal(size=(2, 4, 8)), RNG.normal(size=(2, 4, 8))
    X = sg.var("X", shape=("batch", "seq", 8))
    out = enc(X, causal=True)
    params = enc.parameters()
    got = sg.evaluate([out] + sg.grad(sg.sum(out * sg.var("G", shape=("batch", "seq", 8))), params),
                      {"X": x, "G": G})
    mask = torch.nn.Transformer.generate_square_subsequent_mask(4, dtype=torch.float64)
    ty = t(torch.tensor(x), mask=mask, is_causal=True)
    (ty * torch.tensor(G)).sum().backward()
    np.testing.assert_allclose(got[0], ty.detach().numpy(), rtol=1e-10, atol=1e-11)
    want = {}
    for i in range(2):
        want.update(_torch_layer_grads(enc[i], t.layers[i]))
    want.update({"enc.norm.gamma": t.norm.weight.grad.numpy(), "enc.norm.beta": t.norm.bias.grad.numpy()})
    assert len(want) == len(params)
    for p, g in zip(params, got[1:]):
        np.testing.assert_allclose(g, want[p.name], rtol=1e-9, atol=1e-11, err_msg=p.name)


# ------------------------------------------------------------------ training
def test_reversal_benchmark_smoke_run_learns():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import transformer_reverse
    finally:
        sys.path.remove(os.path.join(ROOT, "bench"))
    result = transformer_reverse.main(["--smoke"])
    losses = result["loss"]
    assert losses[-1] < 0.75 * losses[0]
    assert result["token_accuracy"] > 0.3  # chance is 0.1
