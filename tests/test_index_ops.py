"""Indexing and joining (sg.getitem, concat, stack, split, pad, flatten, squeeze): values and gradients
against NumPy references written here (and PyTorch when installed), named dims, typed errors for bad
arguments, and index-notation formulas that compute what sg.evaluate computes."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.formulas.index import IndexBuilder, numeric

S = slice
RNG = np.random.default_rng(0)
XV = RNG.normal(size=(3, 4, 5))


def _value_and_grad(node, x, feeds):
    """``node``'s value and d/dx Σ w·node for fixed weights w (returned too)."""
    out = sg.evaluate(node, feeds)
    w = np.random.default_rng(1).normal(size=np.shape(out))
    g = sg.grad(sg.sum(sg.const(w) * node), x)
    graph = sg.Graph(g)
    grad = sg.evaluate(g, {n: v for n, v in feeds.items() if n in graph})  # a slice's gradient needs no x
    return out, w, grad


# ------------------------------------------------------------------ getitem
BASIC_KEYS = [1, -1, (S(1, None, 2),), (S(None, None, -1), 0), (Ellipsis, -2), (None, 1, Ellipsis, None),
              (S(-2, 0, -1), S(4, None, -2), 3), (0, 1, 2), (S(5, 1),), (S(None), S(1, -1), None, S(None, None, 3))]


@pytest.mark.parametrize("key", BASIC_KEYS, ids=[repr(k) for k in BASIC_KEYS])
def test_getitem_values_and_gradients_match_numpy_for_basic_keys(key):
    x = sg.var("x", shape=(3, 4, 5))
    out, w, grad = _value_and_grad(sg.getitem(x, key), x, {x: XV})
    np.testing.assert_array_equal(out, XV[key])
    want = np.zeros_like(XV)
    want[key] += w  # a basic key reaches each entry once
    np.testing.assert_array_equal(grad, want)


def test_getitem_of_a_list_accumulates_repeated_rows_as_np_add_at():
    x = sg.var("x", shape=(3, 4, 5))
    key = (S(None), [2, 0, 2, -2])
    out, w, grad = _value_and_grad(sg.getitem(x, key), x, {x: XV})
    np.testing.assert_array_equal(out, XV[:, [2, 0, 2, -2]])
    want = np.zeros_like(XV)
    np.add.at(want, (S(None), [2, 0, 2, 2]), w)
    np.testing.assert_allclose(grad, want, rtol=1e-15)
    assert want[:, 2].any() and not want[:, 1].any()


def test_int_var_index_picks_embedding_rows_and_its_gradient_adds_repeats():
    E = sg.param("E", np.arange(12.0).reshape(4, 3))
    y = sg.var("y", shape=("batch", "seq"), dtype="int")
    rows = sg.getitem(E, y)
    assert rows.shape == ("batch", "seq", 3)
    ids = np.array([[1, 3, 1], [0, 1, -1]])
    np.testing.assert_array_equal(sg.evaluate(rows, {y: ids}), E.value[ids])
    g = sg.evaluate(sg.grad(sg.sum(rows * rows), E), {y: ids})
    want = np.zeros((4, 3))
    np.add.at(want, ids, 2 * E.value[ids])
    np.testing.assert_allclose(g, want, rtol=1e-15)
    np.testing.assert_array_equal(g[1], 3 * 2 * E.value[1])  # row 1 picked three times
    f = sg.compile([rows, sg.grad(sg.sum(rows * rows), E)], inputs=[y])
    got_rows, got_g = f(ids)
    np.testing.assert_array_equal(got_rows, E.value[ids])
    np.testing.assert_allclose(got_g, want, rtol=1e-15)


@pytest.mark.parametrize("key", [(0, S(None), "i"), (S(None), 0, "i"), (0, "i"), (0, None, "i"), ("i", None),
                                 (S(None), "i", None, 0), (0, Ellipsis, "i"), (Ellipsis, "i", 0)])
def test_ints_with_an_index_array_order_axes_as_numpy(key):
    x = sg.var("x", shape=(3, 4, 5))
    idx = sg.var("idx", shape=(2, 2), dtype="int")
    iv = np.array([[0, 2], [1, 0]])
    node = sg.getitem(x, tuple(idx if k == "i" else k for k in key))
    want = XV[tuple(iv if k == "i" else k for k in key)]
    assert node.shape == want.shape
    out, w, grad = _value_and_grad(node, x, {x: XV, idx: iv})
    np.testing.assert_array_equal(out, want)
    ref = np.zeros_like(XV)
    np.add.at(ref, tuple(iv if k == "i" else k for k in key), w)
    np.testing.assert_allclose(grad, ref, rtol=1e-15)


def test_named_dim_takes_ints_and_whole_slices_whose_sizes_come_at_run_time():
    x = sg.var("x", shape=("batch", 4))
    last, rev = sg.getitem(x, -1), sg.getitem(x, (S(None, None, -1), S(1, None, 2)))
    assert last.shape == (4,) and rev.shape == ("batch", 2)
    y = sg.sum(last * last) + sg.sum(sg.sin(rev))
    g = sg.grad(y, x)
    f = sg.compile([last, rev, g], inputs=[x])
    for n in (2, 5):
        xv = np.arange(4.0 * n).reshape(n, 4) / 7
        want_g = np.zeros_like(xv)
        want_g[-1] += 2 * xv[-1]
        want_g[::-1, 1::2] += np.cos(xv[::-1, 1::2])
        for got in (f(xv), sg.evaluate([last, rev, g], {x: xv})):
            np.testing.assert_array_equal(got[0], xv[-1])
            np.testing.assert_array_equal(got[1], xv[::-1, 1::2])
            np.testing.assert_allclose(got[2], want_g, rtol=1e-15)


@pytest.mark.parametrize("key", [S(1, None), S(None, -1), S(None, None, 2), S(0, 3), S(-2, None, -1)])
def test_slice_of_named_dim_whose_length_needs_its_size_raises_shape_error(key):
    x = sg.var("x", shape=("batch", 3))
    with pytest.raises(sg.ShapeError, match=r"named dim 'batch'.*depends on the size"):
        sg.getitem(x, key)


def test_int_beyond_a_named_dims_fed_size_or_int_var_out_of_range_is_a_feed_error():
    x = sg.var("x", shape=("batch", 2))
    node = sg.getitem(x, 3)
    with pytest.raises(sg.FeedError, match="getitem"):
        sg.evaluate(node, {x: np.ones((2, 2))})
    E = sg.param("E", np.ones((4, 2)))
    y = sg.var("y", shape=("batch",), dtype="int")
    rows = sg.getitem(E, y)
    with pytest.raises(sg.FeedError, match="out of range"):
        sg.evaluate(rows, {y: [0, 4]})
    with pytest.raises(sg.FeedError, match="out of range"):
        sg.compile(rows, inputs=[y])(np.array([-5, 1]))


@pytest.mark.parametrize("key,error,match", [
    (3, sg.ShapeError, "index 3 out of range for axis 0 of size 3"),
    ((0, -5), sg.ShapeError, "index -5 out of range for axis 1 of size 4"),
    ((0, 0, 0, 0), sg.ShapeError, "too many indices: 4"),
    (1.0, sg.GraphError, "float"),
    ("a", sg.GraphError, "str"),
    ((S(None), S(0.5, None)), sg.GraphError, "slice bounds"),
    (S(None, None, 0), sg.ShapeError, "step cannot be zero"),
    ((Ellipsis, 0, Ellipsis), sg.GraphError, "only one '...'"),
    (np.array([True, False, True]), sg.GraphError, "boolean masks"),
    (([0, 1], [1, 2]), sg.GraphError, "at most one index array"),
    ([0, 3], sg.ShapeError, "out of range for axis 0 of size 3"),
    ([0.5], sg.GraphError, "must hold ints"),
    ([[0, 1], [2]], sg.GraphError, "rectangular"),
    ({0: 1}, sg.GraphError, "dict"),
])
def test_bad_keys_raise_typed_errors_naming_the_problem(key, error, match):
    x = sg.var("x", shape=(3, 4))
    with pytest.raises(error, match=match):
        sg.getitem(x, key)


def test_index_nodes_must_be_int_vars_and_int_nodes_cannot_be_indexed():
    x = sg.var("x", shape=(3, 4))
    with pytest.raises(sg.GraphError, match="must be an int var"):
        sg.getitem(x, sg.var("f", shape=(2,)))
    with pytest.raises(sg.GraphError, match="holds integers"):
        sg.getitem(sg.var("y", shape=(3,), dtype="int"), 0)
    y = sg.var("y", shape=(2,), dtype="int")
    with pytest.raises(sg.GraphError, match="at most one index array"):
        sg.getitem(x, (y, y))


def test_whole_key_returns_the_node_itself():
    x = sg.var("x", shape=("batch", 4))
    assert sg.getitem(x, S(None)) is x and sg.getitem(x, Ellipsis) is x and sg.getitem(x, ()) is x


def test_gradient_of_the_gradient_flows_through_scatter_add_and_gather():
    x = sg.var("x", shape=(4, 3))
    y = sg.var("y", shape=(5,), dtype="int")
    f = sg.sum(sg.getitem(x, (y, S(None, None, -1))) ** 3)
    g = sg.grad(f, x)
    xv, yv = RNG.normal(size=(4, 3)), np.array([1, 3, 1, 0, 1])
    sg.check_grad(sg.sum(g * g), x, {x: xv, y: yv})
    v = np.zeros((4, 3))
    np.add.at(v, yv, 3 * xv[yv] ** 2)
    np.testing.assert_allclose(sg.evaluate(g, {x: xv, y: yv}), v, rtol=1e-14)


def test_compiled_getitem_is_numpy_indexing_in_the_source():
    x = sg.var("x", shape=("batch", 4, 5))
    f = sg.compile(sg.getitem(x, (-1, S(None, None, 2), None, 0)), inputs=[x])
    assert "x[-1, ::2, None, 0]" in f.source
    xv = RNG.normal(size=(3, 4, 5))
    np.testing.assert_array_equal(f(xv), xv[-1, ::2, None, 0])
    f0 = sg.compile(sg.getitem(x, (0, 1, 2)), inputs=[x])
    assert np.asarray(f0(xv)).shape == () and float(f0(xv)) == xv[0, 1, 2]


def test_node_subscript_is_sg_getitem():
    xv = XV[0, :3]
    x = sg.var("x", shape=xv.shape)
    assert x[1:, ::-1].op.name == "getitem"
    np.testing.assert_array_equal(sg.evaluate(x[1:, ::-1], {x: xv}), xv[1:, ::-1])


# ------------------------------------------------------------------ joining
def test_concat_and_stack_match_numpy_with_gradients_split_back():
    a, b = sg.var("a", shape=("batch", 2)), sg.var("b", shape=("batch", 3))
    av, bv = RNG.normal(size=(4, 2)), RNG.normal(size=(4, 3))
    c = sg.concat([a, b, a], axis=-1)
    assert c.shape == ("batch", 7)
    out = sg.evaluate(c, {a: av, b: bv})
    np.testing.assert_array_equal(out, np.concatenate([av, bv, av], axis=-1))
    w = RNG.normal(size=(4, 7))
    wv = sg.var("w", shape=("batch", 7))
    ga, gb = sg.evaluate(sg.grad(sg.sum(wv * c), [a, b]), {a: av, b: bv, wv: w})
    np.testing.assert_allclose(ga, w[:, :2] + w[:, 5:], rtol=1e-15)
    np.testing.assert_array_equal(gb, w[:, 2:5])
    s = sg.stack([a, 2 * a], axis=1)
    assert s.shape == ("batch", 2, 2)
    np.testing.assert_array_equal(sg.evaluate(s, {a: av}), np.stack([av, 2 * av], axis=1))
    assert sg.concat([a]) is a


@pytest.mark.parametrize("sections", [3, [1, 4], [2, 2, 5], [-2], []])
def test_split_matches_np_split(sections):
    x = sg.var("x", shape=(2, 6))
    xv = RNG.normal(size=(2, 6))
    parts = sg.split(x, sections, axis=1)
    want = np.split(xv, sections, axis=1)
    assert len(parts) == len(want)
    for p, w in zip(parts, want):
        np.testing.assert_array_equal(sg.evaluate(p, {x: xv}), w)
    g = sg.evaluate(sg.grad(sum(sg.sum(sg.sin(p)) * (k + 1) for k, p in enumerate(parts)), x), {x: xv})
    ref = np.concatenate([np.cos(w) * (k + 1) for k, w in enumerate(want)], axis=1)
    np.testing.assert_allclose(g, ref, rtol=1e-15)


@pytest.mark.parametrize("pad_width,value", [(1, 0.0), ((2,), 1.5), ((1, 2), 0.0), (((0, 1), (2, 0), (1, 1)), -3.0),
                                             (((1, 0),), 0.0)])
def test_pad_matches_np_pad_constant_mode(pad_width, value):
    x = sg.var("x", shape=(2, 3, 2))
    xv = RNG.normal(size=(2, 3, 2))
    node = sg.pad(x, pad_width, value=value)
    out, w, grad = _value_and_grad(node, x, {x: xv})
    want = np.pad(xv, pad_width, mode="constant", constant_values=value)
    np.testing.assert_array_equal(out, want)
    mask = np.pad(np.ones_like(xv), pad_width).astype(bool)
    np.testing.assert_array_equal(grad, w[mask].reshape(xv.shape))


def test_flatten_and_squeeze_shapes_values_and_named_dims():
    x = sg.var("x", shape=("batch", 2, 3, 1))
    xv = RNG.normal(size=(4, 2, 3, 1))
    cases = [(sg.flatten(x), xv.reshape(4, 6)), (sg.flatten(x, 0, 0), xv), (sg.flatten(x, 2), xv.reshape(4, 2, 3)),
             (sg.flatten(x, -3, -2), xv.reshape(4, 6, 1)), (sg.squeeze(x), xv[..., 0]), (sg.squeeze(x, -1), xv[..., 0])]
    assert [n.shape for n, _ in cases] == [("batch", 6), ("batch", 2, 3, 1), ("batch", 2, 3), ("batch", 6, 1),
                                          ("batch", 2, 3), ("batch", 2, 3)]
    for node, want in cases:
        np.testing.assert_array_equal(sg.evaluate(node, {x: xv}), want)
    two = sg.var("t", shape=("batch", "seq", 1))
    tv = RNG.normal(size=(3, 2, 1))
    assert sg.squeeze(two).shape == ("batch", "seq")
    np.testing.assert_array_equal(sg.evaluate(sg.squeeze(two), {two: tv}), tv[..., 0])
    assert sg.flatten(sg.var("s", shape=("batch", 1)), 0).shape == ("batch",)
    assert sg.flatten(sg.const(2.0), 0).shape == (1,)


@pytest.mark.parametrize("build,error,match", [
    (lambda a, b: sg.concat([]), sg.GraphError, "at least one input"),
    (lambda a, b: sg.concat(a), sg.GraphError, "list of nodes"),
    (lambda a, b: sg.concat([a, b], axis=0), sg.ShapeError, "named dim 'batch'"),
    (lambda a, b: sg.concat([a, sg.var("c", shape=("batch", 2, 1))], axis=1), sg.ShapeError, "same number of axes"),
    (lambda a, b: sg.concat([a, sg.var("c", shape=(2, 3))], axis=1), sg.ShapeError, "differ outside axis 1"),
    (lambda a, b: sg.concat([a, b], axis=2), sg.ShapeError, "axis 2 out of range"),
    (lambda a, b: sg.concat([a, b], axis=1.0), sg.ShapeError, "axis must be an int"),
    (lambda a, b: sg.concat([sg.const(1.0), sg.const(2.0)]), sg.ShapeError, "scalars"),
    (lambda a, b: sg.stack([a, b]), sg.ShapeError, "one shape"),
    (lambda a, b: sg.split(b, 2, axis=1), sg.ShapeError, "do not divide axis 1 of size 3"),
    (lambda a, b: sg.split(b, 0, axis=1), sg.ShapeError, "at least 1"),
    (lambda a, b: sg.split(b, 2, axis=0), sg.ShapeError, "named dim 'batch'"),
    (lambda a, b: sg.split(b, [1.5], axis=1), sg.ShapeError, "must be ints"),
    (lambda a, b: sg.split(b, "ab", axis=1), sg.ShapeError, "sections must be"),
    (lambda a, b: sg.pad(b, ((0, 0), (-1, 0))), sg.ShapeError, "negative"),
    (lambda a, b: sg.pad(b, 1), sg.ShapeError, "named dim 'batch', which cannot be padded"),
    (lambda a, b: sg.pad(b, 1.5), sg.ShapeError, "pad_width must be"),
    (lambda a, b: sg.pad(b, ((0, 0), (1, 1), (1, 1))), sg.ShapeError, "does not fit the 2 axes"),
    (lambda a, b: sg.pad(b, ((0, 0), (1, 1)), value=float("nan")), sg.GraphError, "finite number"),
    (lambda a, b: sg.flatten(b, 2), sg.ShapeError, "axis 2 out of range"),
    (lambda a, b: sg.flatten(b, 1, 0), sg.ShapeError, "comes after"),
    (lambda a, b: sg.flatten(b, 0), sg.ShapeError, "named dim times"),
    (lambda a, b: sg.squeeze(b, 1), sg.ShapeError, "has size 3, not 1"),
    (lambda a, b: sg.squeeze(b, 0), sg.ShapeError, "named dim 'batch'"),
    (lambda a, b: sg.squeeze(b, "0"), sg.ShapeError, "axis must be"),
])
def test_join_ops_refuse_bad_arguments_with_typed_errors(build, error, match):
    a, b = sg.var("a", shape=("batch", 2)), sg.var("b", shape=("batch", 3))
    with pytest.raises(error, match=match):
        build(a, b)


# ------------------------------------------------------------------ index notation
def _index_value(node, feeds, dims):
    ix = IndexBuilder()
    idx = ix.indices(node.shape)
    rhs = ix.define(node, idx)
    values = {n.name: v for n, v in feeds.items()}
    values.update(ix.constants)
    values.update(dims)
    shape = tuple(dims.get(d, d) for d in node.shape)
    return numeric(rhs, idx, shape, values)


def _notation_cases():
    x = sg.var("X", shape=("batch", 4, 5))
    y = sg.var("y", shape=("batch", 2), dtype="int")
    g2 = sg.var("G", shape=("batch", 2, 5))
    w = sg.var("W", shape=(4, 5))
    feeds = {x: RNG.normal(size=(3, 4, 5)), y: np.array([[3, 1], [1, 1], [0, 2]]), g2: RNG.normal(size=(3, 2, 5)),
             w: RNG.normal(size=(4, 5))}
    gi = sg.getitem(x, (S(None), y))  # gather by an int var: (batch, batch, 2, 5)
    nodes = {
        "getitem": sg.getitem(x, (-1, S(1, None, 2), S(None, None, -1))),
        "getitem_none_int": sg.getitem(sg.tanh(x), (None, S(None), 2, S(4, 0, -2))),
        "gather_var": gi,
        "gather_const": sg.getitem(w, ([3, 0, 3], S(None, None, -1))),
        "gather_mixed": sg.getitem(x, (0, S(None), [[1, 4], [0, 0]])),
        "scatter": sg.grad(sg.sum(sg.sin(sg.getitem(sg.exp(x), (S(None), S(3, 0, -2), 4)))), x),
        "scatter_add_var": sg.grad(sg.sum(sg.cos(gi)), x),
        "scatter_add_const": sg.grad(sg.sum(sg.getitem(w, [[3, 0], [3, 3]]) ** 2), w),
        "scatter_add_direct": sg.ops.apply("scatter_add", g2, w, y, key=((), (None, None, 1))),
        "concat": sg.concat([x, sg.exp(x), x * x], axis=1),
        "stack": sg.stack([w, sg.sin(w)], axis=-1),
        "pad": sg.pad(x, ((0, 0), (1, 0), (2, 1))),
        "pad_inlined": sg.pad(sg.cos(w), 1),
        "pad_value": sg.pad(w, ((1, 1), (0, 2)), value=2.5),
        "pad_grad": sg.grad(sg.sum(sg.pad(sg.exp(w), (1, 2)) ** 2), w),
    }
    return nodes, feeds


NOTATION_NODES, NOTATION_FEEDS = _notation_cases()


@pytest.mark.parametrize("which", sorted(NOTATION_NODES))
def test_index_notation_of_index_and_join_ops_computes_what_evaluate_computes(which):
    node = NOTATION_NODES[which]
    feeds = {n: v for n, v in NOTATION_FEEDS.items() if n in sg.Graph(node)}
    want = sg.evaluate(node, feeds)
    got = _index_value(node, feeds, {"batch": 3})
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_index_notation_reads_like_the_key():
    from symgrad.formulas.index import index_formula
    x = sg.var("X", shape=("batch", 4, 5))
    y = sg.var("y", shape=("batch",), dtype="int")
    assert str(index_formula(sg.getitem(x, (-1, S(1, None, 2))), name="Z")) == "Z[i,j] = X[batch - 1,2i + 1,j]"
    assert str(index_formula(sg.getitem(x, (S(None), 0, y)), name="Z")) == "Z[i,j] = X[i,0,y[j]]"
    assert str(index_formula(sg.pad(x, ((0, 0), (1, 1), (0, 0))), name="Z")) == "Z[i,j,k] = X[i,j - 1,k]"


# ------------------------------------------------------------------ PyTorch
def test_index_and_join_ops_match_pytorch_values_and_gradients():
    torch = pytest.importorskip("torch")
    xv = RNG.normal(size=(3, 4, 5))
    iv = np.array([2, 0, 2, 3])
    x = sg.var("x", shape=(3, 4, 5))
    y = sg.var("y", shape=(4,), dtype="int")
    built = [
        (lambda v: sg.getitem(v, (-1, S(1, None, 2), None)), lambda t: t[-1, 1::2, None]),
        (lambda v: sg.getitem(v, (S(None), y)), lambda t: t[:, torch.as_tensor(iv)]),
        (lambda v: sg.getitem(v, (1, S(None), y)), lambda t: t[1, :, torch.as_tensor(iv)]),
        (lambda v: sg.concat([v, v * v], axis=1), lambda t: torch.cat([t, t * t], dim=1)),
        (lambda v: sg.stack([v, -v], axis=2), lambda t: torch.stack([t, -t], dim=2)),
        (lambda v: sg.pad(v, ((0, 0), (1, 2), (3, 0)), value=0.5),
         lambda t: torch.nn.functional.pad(t, (3, 0, 1, 2), value=0.5)),
        (lambda v: sg.flatten(v), lambda t: torch.flatten(t, 1)),
        (lambda v: sg.split(v, [1, 3], axis=1)[1], lambda t: torch.split(t, [1, 2, 1], dim=1)[1]),
    ]
    for make, ref in built:
        node = make(x)
        w = RNG.normal(size=tuple(node.shape))
        out, grad = sg.evaluate([node, sg.grad(sg.sum(sg.sin(node) * sg.const(w)), x)], {x: xv, y: iv})
        t = torch.tensor(xv, requires_grad=True)
        r = ref(t)
        (torch.sin(r) * torch.as_tensor(w)).sum().backward()
        np.testing.assert_allclose(out, r.detach().numpy(), rtol=1e-14)
        np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-13, atol=1e-15)
