"""nn: parameter names and shapes, named intermediates, forward values,
derived seeds, state dicts and their typed errors."""
import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import GraphError, ShapeError, StateError
from symgrad.init import initialize
from symgrad.nn.layers import derive_seeds


def test_mlp_param_names_and_shapes():
    model = sg.nn.MLP([64, 32, 10], activation="relu", init="he", seed=0)
    assert [(n, p.shape) for n, p in model.named_parameters()] == [
        ("mlp.0.W", (64, 32)), ("mlp.0.b", (32,)), ("mlp.1.W", (32, 10)), ("mlp.1.b", (10,))]
    assert all(p.kind == "param" for p in model.parameters())
    assert model.num_parameters() == 64 * 32 + 32 + 32 * 10 + 10
    assert [layer.name for layer in model.layers] == ["mlp.0", "mlp.1"]


def test_mlp_named_intermediates_and_graph_leaves():
    model = sg.nn.MLP([3, 4, 5, 2], activation="tanh", name="net", seed=0)
    X = sg.var("X", shape=("batch", 3))
    out = model(X)
    assert out.name == "net.2.z" and out.shape == ("batch", 2)
    named = {n.name: n.op.name for n in sg.Graph(out).order if n.name and not n.is_leaf}
    assert named == {"net.0.z": "add", "net.0.a": "tanh", "net.1.z": "add", "net.1.a": "tanh", "net.2.z": "add"}
    assert [p.name for p in sg.Graph(out).params] == [n for n, _ in model.named_parameters()]


def test_mlp_forward_matches_numpy():
    model = sg.nn.MLP([3, 4, 2], activation="sigmoid", output_activation="softmax", seed=3)
    X = np.random.default_rng(0).normal(size=(5, 3))
    (W0, b0), (W1, b1) = [(layer.W.value, layer.b.value) for layer in model.layers]
    h = 1.0 / (1.0 + np.exp(-(X @ W0 + b0)))
    z = h @ W1 + b1
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    out = model(sg.var("X", shape=("batch", 3)))
    assert out.name == "mlp.1.a" and out.op.name == "softmax"
    np.testing.assert_allclose(sg.evaluate(out, {"X": X}), expected, rtol=1e-12)


def test_linear_forward_bias_and_names():
    fc = sg.nn.Linear(3, 2, init="normal", name="fc", seed=1)
    X = np.arange(6.0).reshape(2, 3)
    fc.b.value = np.array([0.5, -1.0])
    z = fc(sg.var("X", shape=("batch", 3)))
    assert z.name == "fc.z"
    np.testing.assert_allclose(sg.evaluate(z, {"X": X}), X @ fc.W.value + [0.5, -1.0])
    nobias = sg.nn.Linear(3, 2, bias=False, name="nb")
    assert [n for n, _ in nobias.named_parameters()] == ["nb.W"] and nobias.b is None


def test_linear_seed_and_init_reproducible():
    a = sg.nn.Linear(5, 4, init="he_uniform", seed=7)
    assert np.array_equal(a.W.value, initialize("he_uniform", (5, 4), seed=7))
    assert np.array_equal(a.W.value, sg.nn.Linear(5, 4, init="he_uniform", seed=7).W.value)
    assert np.array_equal(a.b.value, np.zeros(4))
    assert sg.nn.Linear(5, 4).init == "xavier"


def test_layers_get_distinct_derived_seeds():
    model = sg.nn.MLP([6, 6, 6, 6], init="normal", seed=5)
    seeds = derive_seeds(5, 3)
    assert len(set(seeds)) == 3
    for layer, s in zip(model.layers, seeds):
        assert np.array_equal(layer.W.value, initialize("normal", (6, 6), seed=s))
    Ws = [layer.W.value for layer in model.layers]
    assert not np.array_equal(Ws[0], Ws[1]) and not np.array_equal(Ws[1], Ws[2])
    again = sg.nn.MLP([6, 6, 6, 6], init="normal", seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))
    other = sg.nn.MLP([6, 6, 6, 6], init="normal", seed=6)
    assert not np.array_equal(other.layers[0].W.value, Ws[0])


def test_default_init_follows_activation():
    assert sg.nn.MLP([2, 2], activation="relu").init == "he"
    assert sg.nn.MLP([2, 2], activation="tanh").init == "xavier"


def test_callable_activation_is_named():
    model = sg.nn.MLP([2, 3, 1], activation=lambda z: z * sg.sigmoid(z), seed=0)  # swish
    out = model(sg.var("x", shape=("batch", 2)))
    hidden = out.inputs[0].inputs[0]
    assert hidden.name == "mlp.0.a" and hidden.op.name == "mul"
    assert model.config() is None  # a lambda cannot be stored


def test_state_dict_round_trip_is_exact_and_a_copy():
    a = sg.nn.MLP([4, 3, 2], seed=0)
    b = sg.nn.MLP([4, 3, 2], seed=1)
    state = a.state_dict()
    assert list(state) == ["mlp.0.W", "mlp.0.b", "mlp.1.W", "mlp.1.b"]
    state["mlp.0.W"][0, 0] += 1.0  # a copy: the model is untouched
    assert a.layers[0].W.value[0, 0] != state["mlp.0.W"][0, 0]
    b.load_state_dict(a.state_dict())
    for (n1, v1), (n2, v2) in zip(a.state_dict().items(), b.state_dict().items()):
        assert n1 == n2 and v1.tobytes() == v2.tobytes()


def test_load_state_dict_errors_leave_model_unchanged():
    m = sg.nn.MLP([4, 3, 2], seed=0)
    before = m.state_dict()
    good = sg.nn.MLP([4, 3, 2], seed=1).state_dict()
    missing = {k: v for k, v in good.items() if k != "mlp.1.b"}
    with pytest.raises(StateError, match=r"missing \['mlp.1.b'\]"):
        m.load_state_dict(missing)
    with pytest.raises(StateError, match=r"unexpected \['extra'\]"):
        m.load_state_dict({**good, "extra": np.zeros(1)})
    with pytest.raises(ShapeError, match=r"'mlp.1.W' has shape \(2, 3\).*\(3, 2\)"):
        m.load_state_dict({**good, "mlp.1.W": np.zeros((2, 3))})
    with pytest.raises(StateError, match="non-finite"):
        m.load_state_dict({**good, "mlp.0.b": np.array([0.0, np.nan, 0.0])})
    with pytest.raises(StateError, match="mapping"):
        m.load_state_dict([("mlp.0.W", 1)])
    after = m.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing half-loaded
    m.load_state_dict(missing, strict=False)
    assert np.array_equal(m.layers[0].W.value, good["mlp.0.W"])
    assert np.array_equal(m.layers[1].b.value, before["mlp.1.b"])


def test_custom_module_collects_children():
    class Block(sg.nn.Module):
        def __init__(self, name="block"):
            super().__init__(name)
            self.scale = self.param("scale", 2.0)
            self.fc = self.add_module(sg.nn.Linear(2, 2, init="ones", name=f"{name}.fc"))

        def forward(self, x):
            return self.fc(x) * self.scale

    blk = Block()
    assert [n for n, _ in blk.named_parameters()] == ["block.scale", "block.fc.W", "block.fc.b"]
    y = sg.evaluate(blk(sg.var("x", shape=("batch", 2))), {"x": [[1.0, 2.0]]})
    np.testing.assert_allclose(y, [[6.0, 6.0]])
    assert blk.config() is None

    class Twins(sg.nn.Module):
        def __init__(self):
            super().__init__("twins")
            self.add_module(sg.nn.Linear(2, 2, name="same"))
            self.add_module(sg.nn.Linear(2, 2, name="same"))

        def forward(self, x):
            return x

    with pytest.raises(GraphError, match="both named 'same.W'"):
        Twins().named_parameters()


def test_bad_constructor_arguments():
    with pytest.raises(ShapeError, match="at least"):
        sg.nn.MLP([3])
    with pytest.raises(ShapeError, match=r"sizes\[1\] must be a positive int"):
        sg.nn.MLP([3, 0, 2])
    with pytest.raises(GraphError, match="unknown activation 'relux'"):
        sg.nn.MLP([3, 2], activation="relux")
    with pytest.raises(GraphError, match="unknown init"):
        sg.nn.MLP([3, 2], init="nope")
    with pytest.raises(GraphError, match="invalid name"):
        sg.nn.Linear(2, 2, name="bad name")
    with pytest.raises(ShapeError, match="in_features"):
        sg.nn.Linear(2.5, 2)
    with pytest.raises(GraphError, match="seed"):
        sg.nn.MLP([2, 2], seed=-3)
    with pytest.raises(ShapeError, match="Linear 'mlp.0'.*must have 4 features"):
        sg.nn.MLP([4, 2])(sg.var("X", shape=("batch", 5)))
    with pytest.raises(TypeError):
        sg.nn.Module("m")  # forward is abstract
