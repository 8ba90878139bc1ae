"""The nn layers against PyTorch with the same weights: values, every parameter gradient and the input
gradient (Linear via the transposed weight, Conv2d with stride/padding/dilation/groups, both pools,
LayerNorm, Embedding with repeated indices, the activation modules, and a small CNN as a Sequential).
Skipped where torch is not installed."""
import numpy as np
import pytest

import symgrad as sg

torch = pytest.importorskip("torch")
nn = sg.nn
RNG = np.random.default_rng(7)
T = torch.float64


def _sg(layer, X, R, params, float_input=True):
    """out and the gradients of Σ out ⊙ R in symgrad: [input grad (when float), then params]."""
    Xn = sg.param("Xin", X) if float_input else sg.const(X)
    out = layer(Xn) if float_input else layer(X)
    wrt = ([Xn] if float_input else []) + list(params)
    values = sg.evaluate([out] + sg.grad(sg.sum(out * sg.const(R)), wrt))
    return values[0], values[1:]


def _torch(module, X, R, params, float_input=True):
    x = torch.tensor(X, dtype=T, requires_grad=True) if float_input else torch.tensor(X)
    out = module(x)
    (out * torch.tensor(R, dtype=T)).sum().backward()
    grads = ([x.grad.numpy()] if float_input else []) + [p.grad.numpy() for p in params]
    return out.detach().numpy(), grads


def _close(ours, theirs, rtol=1e-10, atol=1e-12):
    (y, grads), (ty, tgrads) = ours, theirs
    np.testing.assert_allclose(y, ty, rtol=rtol, atol=atol)
    assert len(grads) == len(tgrads)
    for g, tg in zip(grads, tgrads):
        np.testing.assert_allclose(g, tg, rtol=rtol, atol=atol)


def test_linear_matches_torch_with_the_transposed_weight():
    fc = nn.Linear(5, 3, init="normal", seed=0)
    fc.b.value = RNG.normal(size=3)
    tfc = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        tfc.weight.copy_(torch.tensor(fc.W.value.T))  # PyTorch keeps (out, in); symgrad x @ W with (in, out)
        tfc.bias.copy_(torch.tensor(fc.b.value))
    X, R = RNG.normal(size=(4, 5)), RNG.normal(size=(4, 3))
    ours = _sg(fc, X, R, [fc.W, fc.b])
    y, (dX, dW_t, db) = _torch(tfc, X, R, [tfc.weight, tfc.bias])
    _close(ours, (y, [dX, dW_t.T, db]))


@pytest.mark.parametrize("cin, cout, k, s, p, d, groups", [
    (3, 4, 3, 1, 0, 1, 1),
    (3, 4, 3, 2, 1, 1, 1),
    (2, 5, (3, 2), (2, 1), (1, 2), 1, 1),
    (2, 2, 3, 1, 2, 2, 1),
    (4, 6, 3, 2, 1, 1, 2),
])
def test_conv2d_matches_torch(cin, cout, k, s, p, d, groups):
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=groups, seed=1)
    conv.b.value = RNG.normal(size=cout)
    tconv = torch.nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=groups).double()
    with torch.no_grad():  # the same weight layout (out, in/groups, kh, kw)
        tconv.weight.copy_(torch.tensor(conv.W.value))
        tconv.bias.copy_(torch.tensor(conv.b.value))
    X = RNG.normal(size=(2, cin, 9, 8))
    R = RNG.normal(size=tconv(torch.tensor(X)).shape)
    _close(_sg(conv, X, R, [conv.W, conv.b]), _torch(tconv, X, R, [tconv.weight, tconv.bias]))


@pytest.mark.parametrize("ours, theirs", [(nn.MaxPool2d, torch.nn.MaxPool2d), (nn.AvgPool2d, torch.nn.AvgPool2d)],
                         ids=["max", "avg"])
@pytest.mark.parametrize("k, s, p", [(2, None, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (2, 1), (1, 0))])
def test_pools_match_torch(ours, theirs, k, s, p):
    X = RNG.normal(size=(2, 3, 7, 8))
    tpool = theirs(k, stride=s, padding=p)
    R = RNG.normal(size=tpool(torch.tensor(X)).shape)
    _close(_sg(ours(k, stride=s, padding=p), X, R, []), _torch(tpool, X, R, []))


def test_max_pool_with_ties_sends_the_gradient_where_torch_does():
    X = np.round(RNG.normal(size=(2, 2, 6, 6)))  # many equal entries in each window
    R = RNG.normal(size=(2, 2, 3, 3))
    _close(_sg(nn.MaxPool2d(2), X, R, []), _torch(torch.nn.MaxPool2d(2), X, R, []))


@pytest.mark.parametrize("shape, normalized", [((4, 6), 6), ((2, 3, 5), 5), ((2, 3, 4), (3, 4))])
def test_layer_norm_matches_torch(shape, normalized):
    ln = nn.LayerNorm(normalized)
    ln.gamma.value = RNG.normal(size=ln.gamma.shape)
    ln.beta.value = RNG.normal(size=ln.beta.shape)
    tln = torch.nn.LayerNorm(normalized).double()
    with torch.no_grad():
        tln.weight.copy_(torch.tensor(ln.gamma.value))
        tln.bias.copy_(torch.tensor(ln.beta.value))
    X, R = RNG.normal(size=shape) * 2 + 0.5, RNG.normal(size=shape)
    _close(_sg(ln, X, R, [ln.gamma, ln.beta]), _torch(tln, X, R, [tln.weight, tln.bias]), rtol=1e-9, atol=1e-11)


def test_embedding_with_repeated_indices_matches_torch():
    emb = nn.Embedding(7, 4, seed=2)
    temb = torch.nn.Embedding(7, 4).double()
    with torch.no_grad():
        temb.weight.copy_(torch.tensor(emb.E.value))
    ids = np.array([[1, 3, 3, 1], [6, 1, 0, 3]])
    R = RNG.normal(size=(2, 4, 4))
    idx = sg.var("ids", shape=(2, 4), dtype="int")
    y, dE = sg.evaluate([emb(idx), sg.grad(sg.sum(emb(idx) * sg.const(R)), emb.E)], {"ids": ids})
    ty, (tdE,) = _torch(temb, ids, R, [temb.weight], float_input=False)
    _close((y, [dE]), (ty, [tdE]))
    assert not dE[[2, 4, 5]].any()


@pytest.mark.parametrize("ours, theirs", [
    (nn.ReLU(), torch.nn.ReLU()), (nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Tanh(), torch.nn.Tanh()),
    (nn.GELU(), torch.nn.GELU()), (nn.Softmax(axis=1), torch.nn.Softmax(dim=1)),
    (nn.Softmax(axis=-1), torch.nn.Softmax(dim=-1)), (nn.Flatten(), torch.nn.Flatten()),
    (nn.Flatten(0, 1), torch.nn.Flatten(0, 1)),
], ids=lambda m: repr(m).split("(")[0])
def test_activation_modules_and_flatten_match_torch(ours, theirs):
    X = RNG.normal(size=(3, 4, 2))
    R = RNG.normal(size=theirs(torch.tensor(X)).shape)
    _close(_sg(ours, X, R, []), _torch(theirs, X, R, []))


def test_a_sequential_cnn_matches_the_same_torch_sequential():
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, seed=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(3, 4, 2, stride=2, seed=1), nn.Tanh(), nn.Flatten(), nn.LayerNorm(16),
                          nn.Linear(16, 5, seed=2), name="cnn")
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                 torch.nn.Conv2d(3, 4, 2, stride=2), torch.nn.Tanh(), torch.nn.Flatten(),
                                 torch.nn.LayerNorm(16), torch.nn.Linear(16, 5)).double()
    model[6].gamma.value = RNG.normal(size=16)
    with torch.no_grad():
        for i in (0, 3):
            tmodel[i].weight.copy_(torch.tensor(model[i].W.value))
            tmodel[i].bias.copy_(torch.tensor(model[i].b.value))
        tmodel[6].weight.copy_(torch.tensor(model[6].gamma.value))
        tmodel[7].weight.copy_(torch.tensor(model[7].W.value.T))
        tmodel[7].bias.copy_(torch.tensor(model[7].b.value))
    # torch's parameter order matches symgrad's: W, b per layer; Linear's weight is transposed
    X, R = RNG.normal(size=(3, 1, 8, 8)), RNG.normal(size=(3, 5))
    y, grads = _sg(model, X, R, model.parameters())
    ty, tgrads = _torch(tmodel, X, R, list(tmodel.parameters()))
    tgrads[-2] = tgrads[-2].T
    # the same indices as PyTorch's names
    assert [n for n, _ in tmodel.named_parameters()] == [
        "0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias", "7.weight", "7.bias"]
    assert [n for n, _ in model.named_parameters()] == [
        "cnn.0.W", "cnn.0.b", "cnn.3.W", "cnn.3.b", "cnn.6.gamma", "cnn.6.beta", "cnn.7.W", "cnn.7.b"]
    _close((y, grads), (ty, tgrads), rtol=1e-9, atol=1e-11)
