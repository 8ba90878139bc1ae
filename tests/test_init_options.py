"""sg.init's new initializers ("random", "lecun", "identity", "truncated_normal"), initializers with
options (a (name, {options}) pair or sg.init.spec) in sg.param and every layer, bias_init, and the typed
errors that name what is wrong."""
import json
import math

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import GraphError, ShapeError
from symgrad.init import INITIALIZERS, InitSpec, initialize, resolve, spec, to_config


def test_random_is_a_small_normal_with_std_option():
    W = initialize("random", (400, 300), seed=0)
    assert abs(W.mean()) < 2e-4 and W.std() == pytest.approx(0.01, rel=0.01)
    assert initialize(("random", {"std": 0.5}), (400, 300), seed=0).std() == pytest.approx(0.5, rel=0.01)
    # the same draws as N(0, std²) from the seed's generator
    np.testing.assert_array_equal(W, np.random.default_rng(0).normal(0.0, 0.01, size=(400, 300)))


@pytest.mark.parametrize("name", ["lecun", "lecun_normal"])
def test_lecun_has_variance_one_over_fan_in(name):
    W = initialize(name, (200, 500), seed=1)
    assert W.var() == pytest.approx(1 / 200, rel=0.02)
    K = initialize(name, (3, 3, 16, 64), seed=1)  # a kernel: fan_in = 3·3·16
    assert K.var() == pytest.approx(1 / 144, rel=0.03)
    assert initialize((name, {"gain": 2.0}), (200, 500), seed=1).var() == pytest.approx(4 / 200, rel=0.02)


def test_identity_is_the_eye_of_a_matrix_and_refuses_other_ranks():
    np.testing.assert_array_equal(initialize("identity", (3, 3)), np.eye(3))
    np.testing.assert_array_equal(initialize("eye", (2, 4)), np.eye(2, 4))
    np.testing.assert_array_equal(initialize(("identity", {"gain": 0.5}), (3, 2)), 0.5 * np.eye(3, 2))
    for shape in [(3,), (2, 2, 2), ()]:
        with pytest.raises(ShapeError, match=r"init 'identity' needs a 2-D shape, got \("):
            initialize("identity", shape)
    # an identity recurrent weight: h @ W == h
    W = sg.param("W", shape=(4, 4), init="identity")
    h = np.arange(8.0).reshape(2, 4)
    np.testing.assert_array_equal(sg.evaluate(sg.const(h) @ W), h)


def test_truncated_normal_is_cut_at_two_standard_deviations():
    W = initialize("truncated_normal", (300, 300), seed=2)
    assert np.abs(W).max() <= 0.02 and np.abs(W).max() > 0.019
    # the std of N(0, 1) cut at ±2 is ≈ 0.8796
    assert W.std() == pytest.approx(0.01 * 0.8796, rel=0.01)
    V = initialize(("truncated_normal", {"mean": 1.0, "std": 0.2}), (300, 300), seed=2)
    assert V.min() >= 0.6 and V.max() <= 1.4 and V.mean() == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_array_equal(initialize(("truncated_normal", {"std": 0.0, "mean": 3.0}), (2,)), [3.0, 3.0])
    with pytest.raises(GraphError, match=r"init 'truncated_normal' with \{'std': -1\}: std must be >= 0"):
        initialize(("truncated_normal", {"std": -1}), (2,))


def test_new_names_are_registered():
    assert {"random", "lecun", "lecun_normal", "identity", "eye", "truncated_normal"} <= set(INITIALIZERS)


def test_a_pair_a_spec_and_keywords_mean_the_same():
    a = initialize(("normal", {"std": 0.3, "mean": 1.0}), (5, 4), seed=3)
    b = initialize(spec("normal", std=0.3, mean=1.0), (5, 4), seed=3)
    c = initialize("normal", (5, 4), seed=3, std=0.3, mean=1.0)
    d = initialize(("normal", {"std": 0.3}), (5, 4), seed=3, mean=1.0)
    for other in (b, c, d):
        np.testing.assert_array_equal(a, other)
    assert spec("constant", value=0.3) == InitSpec("constant", {"value": 0.3}) == ("constant", {"value": 0.3})
    np.testing.assert_array_equal(sg.param("p", shape=(2,), init=("constant", {"value": 0.3})).value, [0.3, 0.3])
    with_fn = initialize((lambda shape, rng, v: np.full(shape, v), {"v": 2.0}), (2,))
    np.testing.assert_array_equal(with_fn, [2.0, 2.0])


@pytest.mark.parametrize("init, match", [
    ("glorious", r"unknown init 'glorious'; choose from \[.*'lecun'"),
    (("normal",), r"an init with options is a pair \(name, \{option: value\}\)"),
    (("normal", 0.1), r"a pair .*got \('normal', 0.1\)"),
    (("normal", {"value": 0.3}), r"init 'normal' has no option 'value'; its options are mean, std"),
    (("zeros", {"value": 1.0}), r"init 'zeros' has no option 'value'; it takes no options"),
    (("constant", {"value": "big"}), r"init 'constant': option value='big' must be a finite number"),
    (("constant", {"value": float("nan")}), r"option value=nan must be a finite number"),
    (("constant", {1: 2.0}), r"option names are strings, got 1"),
    (("nope", {}), r"unknown init 'nope'"),
])
def test_bad_names_and_options_are_typed_errors_naming_what_is_wrong(init, match):
    with pytest.raises(GraphError, match=match):
        initialize(init, (2, 2))
    with pytest.raises(GraphError, match=match):
        sg.nn.Linear(2, 2, init=init)


def test_an_option_given_twice_is_refused():
    with pytest.raises(GraphError, match="option std given twice"):
        initialize(("normal", {"std": 0.1}), (2,), std=0.2)
    with pytest.raises(GraphError, match="has no option 'value'"):
        spec("he", value=1.0)


def test_layer_errors_name_the_layer_and_the_parameter():
    with pytest.raises(GraphError, match=r"Linear 'fc': init 'normal' has no option 'value'"):
        sg.nn.Linear(2, 2, init=("normal", {"value": 1.0}), name="fc")
    with pytest.raises(GraphError, match=r"Linear 'fc': bias_init: unknown init 'zero'"):
        sg.nn.Linear(2, 2, bias_init="zero", name="fc")
    with pytest.raises(GraphError, match=r"MLP 'mlp': unknown init 'hee'"):
        sg.nn.MLP([2, 3], init="hee")
    with pytest.raises(ShapeError, match=r"Conv2d 'conv': W, drawn as \(kh, kw, in/groups, out\) = \(3, 3, 2, 4\): "
                                         r"init 'identity' needs a 2-D shape"):
        sg.nn.Conv2d(2, 4, 3, init="identity")
    with pytest.raises(GraphError, match=r"Linear 'fc': W: init 'truncated_normal' with \{'std': -2.0\}"):
        sg.nn.Linear(2, 2, init=("truncated_normal", {"std": -2.0}), name="fc")
    with pytest.raises(GraphError, match=r"Embedding 'emb': init 'normal': option names are strings, got 0"):
        sg.nn.Embedding(3, 2, init=("normal", {0: 1.0}), name="emb")


def test_linear_and_mlp_accept_init_options_and_bias_init():
    fc = sg.nn.Linear(3, 2, init=("constant", {"value": 0.3}))
    np.testing.assert_array_equal(fc.W.value, np.full((3, 2), 0.3))
    np.testing.assert_array_equal(fc.b.value, np.zeros(2))  # biases stay zeros unless asked
    fc = sg.nn.Linear(3, 2, init=sg.init.spec("normal", std=0.1), bias_init=("constant", {"value": -1.0}), seed=4)
    np.testing.assert_array_equal(fc.W.value, initialize("normal", (3, 2), seed=4, std=0.1))
    np.testing.assert_array_equal(fc.b.value, [-1.0, -1.0])
    mlp = sg.nn.MLP([4, 3, 2], init=("identity", {"gain": 2.0}))
    np.testing.assert_array_equal(mlp.layers[0].W.value, 2 * np.eye(4, 3))
    np.testing.assert_array_equal(mlp.layers[1].W.value, 2 * np.eye(3, 2))
    lecun = sg.nn.MLP([400, 300, 300], activation="tanh", init="lecun", seed=0)
    assert lecun.layers[0].W.value.var() == pytest.approx(1 / 400, rel=0.02)
    assert lecun.layers[1].W.value.var() == pytest.approx(1 / 300, rel=0.02)


def test_conv_and_embedding_accept_init_options():
    conv = sg.nn.Conv2d(2, 3, 2, init=("constant", {"value": 0.5}), bias_init="ones")
    np.testing.assert_array_equal(conv.W.value, np.full((3, 2, 2, 2), 0.5))
    np.testing.assert_array_equal(conv.b.value, np.ones(3))
    lecun = sg.nn.Conv2d(16, 64, 3, init="lecun", seed=0)  # fan_in = 16·3·3, as PyTorch counts it
    assert lecun.W.value.var() == pytest.approx(1 / 144, rel=0.03)
    emb = sg.nn.Embedding(50, 40, init=("truncated_normal", {"std": 0.02}), seed=0)
    assert np.abs(emb.E.value).max() <= 0.04


def test_resolve_and_to_config():
    assert resolve("he") == ("he", {}) and resolve(["normal", {"std": 1}]) == ("normal", {"std": 1})
    fn = lambda shape, rng: np.zeros(shape)  # noqa: E731
    assert resolve(fn).name is fn
    assert to_config("he") == "he" and to_config(("normal", {"std": 1})) == ["normal", {"std": 1.0}]
    assert to_config(("lecun", {})) == "lecun" and to_config(fn) is None and to_config((fn, {})) is None
    json.dumps(to_config(spec("truncated_normal", std=0.02)))


def test_layers_with_init_options_save_and_load(tmp_path):
    fc = sg.nn.Linear(3, 2, init=("normal", {"std": 0.1}), bias_init=sg.init.spec("constant", value=0.5),
                      seed=1, name="fc")
    again = sg.load(sg.save(tmp_path / "fc.npz", fc))
    assert again.config()["init"] == ["normal", {"std": 0.1}]
    assert again.config()["bias_init"] == ["constant", {"value": 0.5}]
    np.testing.assert_array_equal(again.W.value, fc.W.value)
    mlp = sg.nn.MLP([2, 2], init=("identity", {"gain": 3.0}))
    assert sg.load(sg.save(tmp_path / "mlp.npz", mlp)).config() == mlp.config()
    assert math.isclose(sg.load(tmp_path / "mlp.npz").layers[0].W.value[0, 0], 3.0)
