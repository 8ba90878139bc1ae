"""Initializers: statistics against the fan formulas for W of shape (in, out),
orthogonality, reproducibility, and typed errors."""
import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import GraphError
from symgrad.init import INITIALIZERS, fans, initialize

FAN_IN, FAN_OUT = 400, 100  # asymmetric, so swapping the fans would show


def test_fans_of_weight_vector_and_kernel():
    assert fans((FAN_IN, FAN_OUT)) == (400, 100)
    assert fans((7,)) == (7, 7)
    assert fans(()) == (1, 1)
    assert fans((3, 3, 16, 8)) == (3 * 3 * 16, 3 * 3 * 8)


@pytest.mark.parametrize("name", ["xavier", "glorot", "xavier_uniform", "glorot_uniform"])
def test_xavier_uniform_limits_and_std(name):
    W = initialize(name, (FAN_IN, FAN_OUT), seed=0)
    a = np.sqrt(6.0 / (FAN_IN + FAN_OUT))
    assert np.abs(W).max() <= a
    assert np.abs(W).max() > 0.99 * a  # 40,000 draws reach the edge
    assert W.std() == pytest.approx(a / np.sqrt(3.0), rel=0.02)
    assert abs(W.mean()) < 0.01 * a


@pytest.mark.parametrize("name", ["xavier_normal", "glorot_normal"])
def test_xavier_normal_std(name):
    W = initialize(name, (FAN_IN, FAN_OUT), seed=1)
    assert W.std() == pytest.approx(np.sqrt(2.0 / (FAN_IN + FAN_OUT)), rel=0.02)


@pytest.mark.parametrize("name", ["he", "kaiming", "he_normal", "kaiming_normal"])
def test_he_normal_std_uses_fan_in(name):
    W = initialize(name, (FAN_IN, FAN_OUT), seed=2)
    assert W.std() == pytest.approx(np.sqrt(2.0 / FAN_IN), rel=0.02)
    assert abs(W.std() - np.sqrt(2.0 / FAN_OUT)) > 0.05  # not the fan_out formula


@pytest.mark.parametrize("name", ["he_uniform", "kaiming_uniform"])
def test_he_uniform_limit(name):
    W = initialize(name, (FAN_IN, FAN_OUT), seed=3)
    a = np.sqrt(6.0 / FAN_IN)
    assert np.abs(W).max() <= a and np.abs(W).max() > 0.99 * a


def test_kernel_shape_uses_receptive_field():
    W = initialize("he", (3, 3, 64, 64), seed=4)
    assert W.std() == pytest.approx(np.sqrt(2.0 / (9 * 64)), rel=0.03)


def test_gain_scales_the_limit():
    base = initialize("xavier", (50, 60), seed=5)
    doubled = initialize("xavier", (50, 60), seed=5, gain=2.0)
    np.testing.assert_allclose(doubled, 2.0 * base)


def test_simple_initializers():
    assert np.array_equal(initialize("zeros", (2, 3)), np.zeros((2, 3)))
    assert np.array_equal(initialize("ones", (4,)), np.ones(4))
    assert np.array_equal(initialize("constant", (2,), value=0.25), [0.25, 0.25])
    U = initialize("uniform", (200, 200), seed=6, low=1.0, high=3.0)
    assert U.min() >= 1.0 and U.max() < 3.0 and U.mean() == pytest.approx(2.0, abs=0.02)
    N = initialize("normal", (200, 200), seed=7, mean=-1.0, std=0.5)
    assert N.mean() == pytest.approx(-1.0, abs=0.01) and N.std() == pytest.approx(0.5, rel=0.02)


@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (16, 16), (2, 3, 4)])
def test_orthogonal(shape):
    W = initialize("orthogonal", shape, seed=8)
    assert W.shape == shape
    M = W.reshape(-1, shape[-1])
    rows, cols = M.shape
    gram = M.T @ M if rows >= cols else M @ M.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_gain_and_vector_error():
    W = initialize("orthogonal", (8, 8), seed=9, gain=3.0)
    np.testing.assert_allclose(W.T @ W, 9.0 * np.eye(8), atol=1e-11)
    with pytest.raises(GraphError, match="orthogonal"):
        initialize("orthogonal", (8,), seed=0)


@pytest.mark.parametrize("name", sorted(set(INITIALIZERS) - {"zeros", "ones", "constant", "identity", "eye"}))
def test_seed_reproducible_and_distinct(name):
    a = initialize(name, (6, 5), seed=11)
    b = initialize(name, (6, 5), seed=11)
    c = initialize(name, (6, 5), seed=12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_param_uses_init_by_name_and_seed():
    p = sg.param("W", shape=(5, 3), init="he_uniform", seed=4)
    assert np.array_equal(p.value, initialize("he_uniform", (5, 3), seed=4))
    assert np.array_equal(sg.param("b", shape=(3,)).value, np.zeros(3))  # default zeros


def test_callable_init():
    W = initialize(lambda shape, rng: np.full(shape, 2.0) + rng.normal(size=shape) * 0, (2, 2), seed=0)
    assert np.array_equal(W, np.full((2, 2), 2.0))
    with pytest.raises(GraphError, match=r"returned shape \(3,\), expected \(2, 2\)"):
        initialize(lambda shape, rng: np.zeros(3), (2, 2))


def test_bad_name_and_options_are_typed_errors():
    with pytest.raises(GraphError, match="unknown init 'xavierr'.*he_uniform"):
        initialize("xavierr", (2, 2))
    with pytest.raises(GraphError, match="unknown init"):
        sg.param("W", shape=(2, 2), init="glorious")
    with pytest.raises(GraphError, match="init 'zeros'"):
        initialize("zeros", (2,), value=3.0)  # zeros takes no options
    with pytest.raises(GraphError, match="seed"):
        initialize("normal", (2,), seed="abc")
    with pytest.raises(GraphError, match="seed"):
        initialize("normal", (2,), seed=-1)
