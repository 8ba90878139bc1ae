"""Bad arguments to the graph-building API give typed symgrad errors that name
the function and the argument, never a bare TypeError/ValueError/AttributeError
from inside; values that would break training later (non-finite, read-only)
are refused or copied when they are set."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.errors import (FeedError, GradError, GraphError, OpDefinitionError, RenderError, ShapeError, StateError,
                            SymgradError)

def _id(value) -> str:
    """A test id that is the same in every process (an object()'s repr holds its address)."""
    return "object()" if type(value) is object else repr(value)


NOT_NUMBERS = ["abc", "", b"x", 1j, [1, [2]], object(), sympy.Symbol("q"), [sg.var("x")], {"a": 1}]


# ------------------------------------------------------------- param values
@pytest.mark.parametrize("value", NOT_NUMBERS, ids=_id)
def test_param_refuses_a_value_that_is_not_real_numbers(value):
    with pytest.raises(GraphError, match="param 'p': value must be real numbers"):
        sg.param("p", value)


@pytest.mark.parametrize("value", NOT_NUMBERS + [None], ids=_id)
def test_param_value_setter_refuses_non_numbers_and_keeps_the_old_value(value):
    p = sg.param("p", [1.0, 2.0])
    with pytest.raises(GraphError, match="param 'p': value must be real numbers"):
        p.value = value
    np.testing.assert_array_equal(p.value, [1.0, 2.0])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, [1.0, np.nan]], ids=_id)
def test_param_value_setter_refuses_non_finite_values_like_param(value):
    p = sg.param("p", [1.0, 2.0])
    with pytest.raises(GraphError, match="param 'p': value has non-finite entries"):
        p.value = np.broadcast_to(value, (2,))
    with pytest.raises(GraphError, match="non-finite"):
        sg.param("q", np.broadcast_to(value, (2,)))
    np.testing.assert_array_equal(p.value, [1.0, 2.0])


def test_read_only_array_set_as_param_value_is_copied_so_a_compiled_step_updates_it():
    w = sg.param("w", [0.0, 0.0])
    frozen = np.array([1.0, 2.0])
    frozen.setflags(write=False)
    w.value = frozen
    assert w.value.flags.writeable and w.value is not frozen
    step = sg.compile_step(sg.sum(w * w), sg.optim.SGD(lr=0.1))  # w <- w - 0.1 * 2w = 0.8 w
    step()
    np.testing.assert_allclose(w.value, [0.8, 1.6])
    np.testing.assert_array_equal(frozen, [1.0, 2.0])
    broadcast = np.broadcast_to(3.0, (2,))  # a read-only view
    w.value = broadcast
    step()
    np.testing.assert_allclose(w.value, [2.4, 2.4])


def test_writeable_float64_array_set_as_param_value_is_still_shared_not_copied():
    w = sg.param("w", [0.0, 0.0])
    mine = np.array([1.0, 2.0])
    w.value = mine
    assert w.value is mine


def test_value_of_a_var_or_const_cannot_be_set():
    with pytest.raises(GraphError, match="only params and buffers have a settable value"):
        sg.var("x").value = 1.0
    with pytest.raises(GraphError, match="only params and buffers have a settable value"):
        sg.const(1.0).value = 2.0


def test_param_refuses_init_options_next_to_a_given_value():
    with pytest.raises(GraphError, match="param 'p': seed, std only apply to an init"):
        sg.param("p", 1.0, seed=0, std=2.0)


# ------------------------------------------------------------ constants, vars
@pytest.mark.parametrize("value", [1j, "abc", [1, [2]], object()], ids=_id)
def test_const_and_operands_refuse_values_that_are_not_real_numbers(value):
    with pytest.raises(GraphError, match="const: value must be real numbers"):
        sg.const(value)
    if not isinstance(value, str):
        with pytest.raises(GraphError, match="must be real numbers"):
            sg.var("x") + value


def test_var_refuses_a_dtype_that_is_not_a_name():
    with pytest.raises(GraphError, match="var 'v': dtype must be 'float' or 'int'"):
        sg.var("v", dtype=np.array([1.0, 2.0]))


def test_dims_too_large_for_numpy_are_refused_and_sizes_never_wrap_around():
    with pytest.raises(ShapeError, match="var 'v': dim 10+ is larger than NumPy allows"):
        sg.var("v", shape=(10 ** 30,))
    huge = sg.var("h", shape=(2 ** 32, 2 ** 32))  # 2**64 entries: an int64 product wraps to 0
    with pytest.raises(ShapeError, match="reshape: cannot reshape"):
        sg.reshape(huge, (0,))


# ---------------------------------------------------------------- initializers
def test_initializer_options_shapes_and_sizes_give_graph_errors():
    with pytest.raises(GraphError, match="init 'normal'.*scale < 0"):
        sg.param("p", shape=(2,), init="normal", std=-1.0)
    with pytest.raises(GraphError, match="init 'normal': option std='abc' must be a finite number"):
        sg.param("p", shape=(2,), init="normal", std="abc")
    with pytest.raises(GraphError, match="init 'uniform': option high=nan must be a finite number"):
        sg.param("p", shape=(2,), init="uniform", high=float("nan"))
    with pytest.raises(GraphError, match="init 'zeros': cannot allocate|init 'zeros'.*too big"):
        sg.param("p", shape=(10 ** 9, 10 ** 9))
    with pytest.raises(ShapeError, match="init 'normal': shape"):
        sg.init.initialize("normal", 1.5)
    with pytest.raises(ShapeError, match="fans: needs a fixed shape"):
        sg.init.fans("abc")
    with pytest.raises(ShapeError, match="fans: shape"):
        sg.init.fans(1.5)
    assert sg.init.fans(3) == (3, 3)


# ---------------------------------------------------------------- op arguments
@pytest.mark.parametrize("fn", [sg.sum, sg.mean, sg.max])
@pytest.mark.parametrize("axis", [1.5, "0", True, object(), (0, "a"), {0}], ids=_id)
def test_reduction_axis_that_is_not_ints_is_a_shape_error_naming_the_op(fn, axis):
    with pytest.raises(ShapeError, match=f"{fn.__name__}: axis must be an int or a tuple of ints"):
        fn(sg.var("X", shape=(2, 3)), axis=axis)


def test_transpose_axes_are_checked_not_wrapped_around():
    X = sg.var("X", shape=(2, 3))
    with pytest.raises(ShapeError, match=r"transpose: axes \(0, 3\) out of range"):
        sg.transpose(X, (0, 3))  # used to be read as (0, 1)
    for axes in ("ab", 1.5, 0, (0, "a"), (0, 0)):
        with pytest.raises(ShapeError, match="transpose: axes"):
            sg.transpose(X, axes)
    assert sg.transpose(X, (-1, 0)).shape == (3, 2)
    assert sg.transpose(X, np.array([1, 0])).shape == (3, 2)


@pytest.mark.parametrize("shape", [1.5, None, object(), (2.0, 3), (True, 6), ("a b",), (-2, 3)], ids=_id)
def test_reshape_shape_that_is_not_ints_or_dim_names_is_a_shape_error(shape):
    with pytest.raises(ShapeError, match="reshape"):
        sg.reshape(sg.var("X", shape=(2, 3)), shape)


def test_expand_dims_axis_is_checked():
    X = sg.var("X", shape=(2, 3))
    for axis in (1.5, "a", None, 7, -4):
        with pytest.raises(ShapeError, match="expand_dims: axis"):
            sg.expand_dims(X, axis)
    assert sg.expand_dims(X, -1).shape == (2, 3, 1)


# ------------------------------------------------------------ check_grad, draw
def test_check_grad_settings_feeds_and_targets_are_checked():
    x, w = sg.var("x"), sg.param("w", 0.3)
    y = sg.sigmoid(w * x)
    for kwargs in ({"eps": 0}, {"eps": "a"}, {"eps": float("nan")}, {"rtol": -1.0}, {"atol": None},
                   {"atol": sympy.Symbol("q")}, {"rtol": np.array([1.0, 2.0])}):
        name = next(iter(kwargs))
        with pytest.raises(GradError, match=f"check_grad: {name} must be a"):
            sg.check_grad(y, w, {"x": 1.0}, **kwargs)
    with pytest.raises(FeedError, match="check_grad: feeds must be a mapping"):
        sg.check_grad(y, w, [1.0])
    with pytest.raises(GradError, match="check_grad: wrt must be params or float vars"):
        sg.check_grad(y, w * x, {"x": 1.0})
    with pytest.raises(GraphError, match="check_grad: y must be a Node"):
        sg.check_grad(1.0, w, {"x": 1.0})
    assert sg.check_grad(y, w, {"x": 2.0}, eps=1e-5, rtol=1e-4, atol=0) < 1e-6


def test_draw_options_are_checked_with_render_errors():
    x, w = sg.var("x"), sg.param("w", 0.5)
    L = sg.sigmoid(w * x)
    for key in ("backward", "formulas", "collapse", "legend", "shape_ops"):
        with pytest.raises(RenderError, match=f"draw: {key} must be True or False"):
            sg.draw(L, **{key: np.array([1.0, 2.0])})
    with pytest.raises(RenderError, match="draw: rankdir must be one of"):
        sg.draw(L, rankdir=np.array(["LR"]))
    with pytest.raises(RenderError, match="draw: unknown show field"):
        sg.draw(L, show=[np.array([1, 2])])
    with pytest.raises(FeedError, match="draw: values must be a mapping"):
        sg.draw(L, values=[1.0, 2.0])
    assert "σ" in sg.draw(L, formulas=1, values={"x": 1.0}).source


# --------------------------------------------------------------- elementwise
def test_elementwise_label_domain_and_function_result_are_checked():
    with pytest.raises(OpDefinitionError, match="elementwise 'rel_a': label must be a non-empty string"):
        sg.elementwise(lambda t: t ** 3, "rel_a", label=1.5)
    for domain in ("ab", (2.0, 1.0), (0.0, float("inf")), (0.0,)):
        with pytest.raises(OpDefinitionError, match="elementwise 'rel_b': domain must be a pair"):
            sg.elementwise(lambda t: t ** 3, "rel_b", domain=domain)
    with pytest.raises(OpDefinitionError, match="elementwise 'rel_c': fn must return a SymPy expression"):
        sg.elementwise(lambda t: "exp(t)", "rel_c")  # a string is not parsed
    with pytest.raises(OpDefinitionError, match="elementwise 'rel_d'.*ZeroDivisionError"):
        sg.elementwise(lambda t: 1 / 0, "rel_d")


# -------------------------------------------------------------- formulas.numeric
def test_numeric_checks_its_arguments_and_computes_maximum_and_symgrad_functions():
    x = sg.var("x")
    f = sg.formula(sg.maximum(x, sg.softplus(x)))
    assert sg.formulas.numeric(f, {"x": 0.0}) == pytest.approx(np.log(2.0))
    assert sg.formulas.numeric(sympy.Max(sympy.Symbol("a"), 2), {"a": 3.0}) == 3.0
    assert sg.formulas.numeric(sympy.Integer(3) * sg.sympy_softplus(1), {}) == pytest.approx(3 * np.log1p(np.e))
    assert np.isnan(sg.formulas.numeric(sympy.I, {}))  # not a real number: NaN, as NumPy's real arithmetic
    with pytest.raises(FeedError, match="numeric: values must be a mapping"):
        sg.formulas.numeric(f, [1.0])
    with pytest.raises(GraphError, match="numeric: expected a SymPy formula"):
        sg.formulas.numeric("x + 1", {})
    with pytest.raises(GraphError, match="numeric: the value of 'x' must be real numbers"):
        sg.formulas.numeric(f, {"x": "abc"})


# ---------------------------------------------------------------------- nn
def test_module_flags_and_state_dict_values_are_checked():
    with pytest.raises(GraphError, match="Linear 'linear': bias must be True or False"):
        sg.nn.Linear(2, 2, bias=np.array([1.0, 2.0]))
    with pytest.raises(GraphError, match="MLP 'mlp': bias must be True or False"):
        sg.nn.MLP([2, 2], bias="no")
    m = sg.nn.Linear(2, 1, name="fc", seed=0)
    with pytest.raises(StateError, match="value for 'fc.W' is not an array of numbers"):
        m.load_state_dict({"fc.W": [[1.0], [1.0, 2.0]], "fc.b": [0.0]})
    with pytest.raises(StateError, match="strict must be True or False"):
        m.load_state_dict({}, strict=np.array([1, 2]))


# ------------------------------------------------------------- the whole sweep
_X, _W = sg.var("X", shape=(2, 3)), sg.param("W", np.ones((2, 3)))
_L = sg.sum(sg.sigmoid(_W * _X))
WRONG = [None, "abc", "", 1.5, -1, True, (1, "a"), [1, [2]], {"a": 1}, {1, 2}, object(), sympy.Symbol("q"),
         np.array([1.0, 2.0]), float("nan"), float("inf"), 10 ** 30, b"x", (lambda t: t), (-5,), (0, 0), [_X], 1j]
ENTRY_POINTS = {
    "var name": lambda a: sg.var(a), "var shape": lambda a: sg.var("v", shape=a),
    "var dtype": lambda a: sg.var("v", dtype=a),
    "param name": lambda a: sg.param(a, 1.0), "param value": lambda a: sg.param("p", a),
    "param shape": lambda a: sg.param("p", shape=a), "param init": lambda a: sg.param("p", shape=(2,), init=a),
    "param seed": lambda a: sg.param("p", shape=(2,), init="normal", seed=a),
    "param option": lambda a: sg.param("p", shape=(2,), init="normal", std=a),
    "const value": lambda a: sg.const(a), "const name": lambda a: sg.const(1.0, name=a),
    "named": lambda a: (_X + 1).named(a), "value setter": lambda a: setattr(sg.param("p", 1.0), "value", a),
    "grad y": lambda a: sg.grad(a, _W), "grad wrt": lambda a: sg.grad(_L, a),
    "evaluate nodes": lambda a: sg.evaluate(a, {"X": np.ones((2, 3))}),
    "formula node": lambda a: sg.formula(a), "formula keep": lambda a: sg.formula(_L, keep=a),
    "latex": lambda a: sg.latex(a), "latex lhs": lambda a: sg.latex(_L, lhs=a), "pretty": lambda a: sg.pretty(a),
    "draw outputs": lambda a: sg.draw(a), "draw wrt": lambda a: sg.draw(_L, backward=True, wrt=a),
    "draw show": lambda a: sg.draw(_L, show=a), "draw rankdir": lambda a: sg.draw(_L, rankdir=a),
    "draw values": lambda a: sg.draw(_L, values=a), "draw backward": lambda a: sg.draw(_L, backward=a),
    "check_grad feeds": lambda a: sg.check_grad(_L, _W, a), "check_grad eps": lambda a: sg.check_grad(
        _L, _W, {"X": np.ones((2, 3))}, eps=a),
    "elementwise fn": lambda a: sg.elementwise(a, "sweep_fn"), "elementwise name": lambda a: sg.elementwise(
        lambda t: t ** 2, a), "elementwise domain": lambda a: sg.elementwise(lambda t: t ** 4, "sweep_d", domain=a),
    "add": lambda a: _X + a, "matmul": lambda a: _X @ a, "pow": lambda a: _X ** a, "exp": lambda a: sg.exp(a),
    "maximum": lambda a: sg.maximum(_X, a), "where": lambda a: sg.where(a, _X, _X),
    "sum axis": lambda a: sg.sum(_X, axis=a), "mean axis": lambda a: sg.mean(_X, axis=a),
    "max axis": lambda a: sg.max(_X, axis=a), "reshape shape": lambda a: sg.reshape(_X, a),
    "transpose axes": lambda a: sg.transpose(_X, a), "expand_dims axis": lambda a: sg.expand_dims(_X, a),
    "broadcast_to shape": lambda a: sg.broadcast_to(_X, a),
    "one_hot classes": lambda a: sg.one_hot(sg.var("k", dtype="int"), a),
    "Graph": lambda a: sg.Graph(a), "numeric values": lambda a: sg.formulas.numeric(sg.formula(_L), a),
    "Linear in_features": lambda a: sg.nn.Linear(a, 2), "MLP sizes": lambda a: sg.nn.MLP(a),
    "MLP activation": lambda a: sg.nn.MLP([2, 2], activation=a), "load_state_dict": lambda a: sg.nn.Linear(
        2, 2).load_state_dict(a),
}


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_graph_building_api_raises_only_symgrad_errors_for_wrong_arguments(entry):
    call, bare = ENTRY_POINTS[entry], []
    for arg in WRONG:
        try:
            call(arg)
        except SymgradError:
            pass
        except Exception as e:  # noqa: BLE001  the point of the test
            bare.append(f"{arg!r:.40}: {type(e).__name__}: {e}")
    assert not bare, f"{entry} raised bare exceptions:\n" + "\n".join(bare)


def test_evaluate_and_op_arguments_of_the_wrong_kind_are_typed_errors():
    X = sg.var("X", shape=(2, 3))
    L = sg.sum(X)
    with pytest.raises(sg.FeedError, match="mapping"):
        sg.evaluate(L, [1, 2])
    with pytest.raises(sg.GraphError, match="graph="):
        sg.evaluate(L, {"X": np.ones((2, 3))}, graph=sg.Graph(sg.var("other")))
    with pytest.raises(sg.GraphError, match="alpha"):
        sg.leaky_relu(X, alpha="a")
    with pytest.raises(sg.GraphError, match="alpha"):
        sg.leaky_relu(X, alpha=float("nan"))
    with pytest.raises(sg.ShapeError, match="axis must be one int"):
        sg.softmax(X, axis=None)
    with pytest.raises(sg.ShapeError, match="axis must be one int"):
        sg.softmax(X, axis=(0, 1))
    with pytest.raises(sg.ShapeError, match="keepdims"):
        sg.sum(X, keepdims="no")


def test_parse_and_formula_options_of_the_wrong_kind_are_typed_errors():
    x = sg.var("x")
    with pytest.raises(sg.ParseError, match="params"):
        sg.parse("x", params=5)
    with pytest.raises(sg.ParseError, match="values"):
        sg.parse("x", values=5)
    with pytest.raises(sg.GraphError, match="expand"):
        sg.formula(x * 2.0, expand="abc")
    with pytest.raises(sg.GraphError, match="expand"):
        sg.formula(x * 2.0, expand={"batch": 0})
    with pytest.raises(sg.GraphError, match="unknown formula option"):
        sg.pretty(x * 2.0, bogus=1)
