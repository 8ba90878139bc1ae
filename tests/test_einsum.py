"""einsum: NumPy's values for every kind of spec, gradients in every operand against NumPy references,
grad of grad, index notation equal to evaluate, the errors for specs it refuses, PyTorch when installed;
and ``@`` on stacks of matrices with batch broadcasting."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.formulas.index import IndexBuilder, numeric

SPECS = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("bqd,bkd->bqk", [(2, 3, 4), (2, 5, 4)]),
    ("ij,k->ki", [(2, 3), (4,)]),
    ("i,i->", [(3,), (3,)]),
    ("i,j->ij", [(3,), (2,)]),
    ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    ("ij,ij->ij", [(1, 3), (2, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("abc,cd,be->dea", [(2, 3, 4), (4, 2), (3, 5)]),
    ("ij->ji", [(2, 3)]),
    ("ijk->j", [(2, 3, 4)]),
    (",ij->ji", [(), (2, 3)]),
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
    ("n i , i j -> n j", [(3, 2), (2, 4)]),
]


def _vars_and_values(shapes, seed=0):
    rng = np.random.default_rng(seed)
    vs = [sg.var(f"x{i}", shape=s) for i, s in enumerate(shapes)]
    return vs, [rng.normal(size=s) for s in shapes]


@pytest.mark.parametrize("spec,shapes", SPECS, ids=[s for s, _ in SPECS])
def test_einsum_values_equal_numpy_and_compile(spec, shapes):
    vs, xs = _vars_and_values(shapes)
    z = sg.einsum(spec, *vs)
    want = np.einsum(spec.replace(" ", ""), *xs)
    got = sg.evaluate(z, dict(zip(vs, xs)))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(sg.compile(z, inputs=vs)(*xs), want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("spec,shapes", SPECS, ids=[s for s, _ in SPECS])
def test_einsum_is_differentiable_in_every_operand(spec, shapes):
    vs, xs = _vars_and_values(shapes, seed=1)
    z = sg.einsum(spec, *vs)
    y = sg.sum(sg.sin(z)) if z.shape else sg.sin(z)
    assert sg.check_grad(y, vs, dict(zip(vs, xs))) < 1e-6


def test_einsum_gradients_equal_the_numpy_einsums_of_the_cotangent():
    rng = np.random.default_rng(2)
    a, b, g = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 3, 5))
    A, B, G = sg.var("A", shape=("batch", 3, 4)), sg.var("B", shape=("batch", 5, 4)), sg.var("G", shape=("batch", 3, 5))
    z = sg.einsum("bqd,bkd->bqk", A, B)
    da, db = sg.evaluate(sg.grad(sg.sum(z * G), [A, B]), {"A": a, "B": b, "G": g})
    np.testing.assert_allclose(da, np.einsum("bqk,bkd->bqd", g, b), rtol=1e-13)
    np.testing.assert_allclose(db, np.einsum("bqk,bqd->bkd", g, a), rtol=1e-13)
    # an index summed in one operand alone: its gradient is broadcast along that index
    X, v = sg.var("X", shape=(2, 3)), sg.var("v", shape=(4,))
    dx, dv = sg.evaluate(sg.grad(sg.sum(sg.einsum("ij,k->ki", X, v) * sg.const(np.arange(8.0).reshape(4, 2))), [X, v]),
                         {"X": np.ones((2, 3)), "v": np.array([1.0, 2.0, 3.0, 4.0])})
    gk = np.arange(8.0).reshape(4, 2)
    np.testing.assert_allclose(dx, np.broadcast_to((gk * [[1.0], [2.0], [3.0], [4.0]]).sum(0)[:, None], (2, 3)))
    np.testing.assert_allclose(dv, gk.sum(1) * 3.0)


def test_einsum_grad_of_grad_matches_finite_differences():
    vs, xs = _vars_and_values([(2, 3), (3, 4), (4,)], seed=3)
    z = sg.einsum("ij,jk,k->ik", *vs)
    grads = sg.grad(sg.sum(sg.tanh(z)), vs)
    second = sg.sum(grads[0] * grads[0]) + sg.sum(sg.sin(grads[1])) + sg.sum(grads[2] ** 2)
    assert sg.check_grad(second, vs, dict(zip(vs, xs))) < 1e-6


def test_einsum_with_symbolic_batch_takes_any_batch_size():
    Q, K = sg.var("Q", shape=("batch", 2, 3)), sg.var("K", shape=("batch", 4, 3))
    S = sg.einsum("bqd,bkd->bqk", Q, K)
    assert S.shape == ("batch", 2, 4)
    f = sg.compile(S, inputs=[Q, K], dtype="float32")
    rng = np.random.default_rng(4)
    for n in (1, 5):
        q, k = rng.normal(size=(n, 2, 3)), rng.normal(size=(n, 4, 3))
        got = f(q, k)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, np.einsum("bqd,bkd->bqk", q, k), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec,shapes", [s for s in SPECS if len(s[1]) >= 2],
                         ids=[s for s, sh in SPECS if len(sh) >= 2])
def test_einsum_index_notation_computes_evaluate(spec, shapes):
    vs, xs = _vars_and_values(shapes, seed=5)
    z = sg.einsum(spec, *vs)
    ix = IndexBuilder()
    idx = ix.indices(z.shape)
    rhs = ix.define(z, idx)
    want = sg.evaluate(z, dict(zip(vs, xs)))
    np.testing.assert_allclose(numeric(rhs, idx, want.shape, {v.name: x for v, x in zip(vs, xs)}), want,
                               rtol=1e-12, atol=1e-12)


def test_einsum_index_notation_reads_as_its_spec():
    A, B = sg.var("A", shape=(2, 3)), sg.var("B", shape=(3, 4))
    z = sg.einsum("ik,kj->ij", A, B)
    ix = IndexBuilder()
    i, j = ix.dummy(2, "i"), ix.dummy(4, "j")
    assert str(ix.define(z, (i, j))) == "Sum(A[i, k]*B[k, j], (k, 0, 2))"


@pytest.mark.parametrize("spec,shapes,error,match", [
    ("ij,jk", [(2, 3), (3, 4)], sg.GraphError, "einsum: implicit mode is not supported"),
    ("ii->i", [(3, 3)], sg.GraphError, "einsum: index 'i' repeats in operand 0.*diagonals are not supported"),
    ("ij,jk->ik", [(2, 3)], sg.ShapeError, "einsum: spec 'ij,jk->ik' names 2 operands, got 1"),
    ("ij,jk->ik", [(2, 3), (4, 5)], sg.ShapeError,
     r"einsum: index 'j' is 3 in one operand and 4.*\(2, 3\), \(4, 5\)"),
    ("ijk,jk->i", [(2, 3), (3, 4)], sg.ShapeError,
     r"einsum: subscripts 'ijk' do not fit an operand of 2 axes \(2, 3\)"),
    ("i1,j->ij", [(2, 3), (4,)], sg.GraphError, "einsum: spec 'i1,j->ij' has character '1'"),
    ("ij,jk->iz", [(2, 3), (3, 4)], sg.GraphError, "einsum: output index 'z' of 'ij,jk->iz' is in no operand"),
    ("ij,jk->ii", [(2, 3), (3, 4)], sg.GraphError, "einsum: index 'i' repeats in the output"),
    ("...ij,...jk->ik", [(2, 2, 3), (2, 3, 4)], sg.GraphError, "dims under '...' but the output has no '...'"),
    ("i->i->i", [(2,)], sg.GraphError, "more than one '->'"),
])
def test_bad_einsum_specs_raise_clear_errors(spec, shapes, error, match):
    vs = [sg.var(f"x{i}", shape=s) for i, s in enumerate(shapes)]
    with pytest.raises(error, match=match):
        sg.einsum(spec, *vs)


def test_einsum_spec_must_be_a_string():
    with pytest.raises(sg.GraphError, match="einsum: spec must be a string"):
        sg.einsum(["ij->ji"], sg.var("A", shape=(2, 2)))


def test_einsum_names_its_result():
    z = sg.einsum("ij,jk->ik", sg.var("A", shape=(2, 3)), sg.var("B", shape=(3, 4)), name="Z")
    assert z.name == "Z" and z.op.name == "einsum"


def test_einsum_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    a, b, c = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5)), rng.normal(size=(3, 6))
    vs = [sg.var("a", shape=a.shape), sg.var("b", shape=b.shape), sg.var("c", shape=c.shape)]
    z = sg.einsum("abc,cd,be->dea", *vs)
    got = sg.evaluate([z] + sg.grad(sg.sum(sg.sin(z)), vs), dict(zip(vs, (a, b, c))))
    ts = [torch.tensor(x, requires_grad=True) for x in (a, b, c)]
    tz = torch.einsum("abc,cd,be->dea", *ts)
    torch.sin(tz).sum().backward()
    for g, w in zip(got, [tz.detach().numpy()] + [t.grad.numpy() for t in ts]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


# ====================================================================== @ on stacks of matrices
def test_matmul_broadcasts_batch_dims_of_stacks_with_gradients():
    rng = np.random.default_rng(7)
    a, b, g = rng.normal(size=(2, 1, 3, 4)), rng.normal(size=(5, 4, 2)), rng.normal(size=(2, 5, 3, 2))
    A, B, G = sg.var("A", shape=a.shape), sg.var("B", shape=b.shape), sg.var("G", shape=(2, 5, 3, 2))
    z = A @ B
    assert z.shape == (2, 5, 3, 2)
    feeds = {"A": a, "B": b, "G": g}
    got, da, db = sg.evaluate([z] + sg.grad(sg.sum(z * G), [A, B]), feeds)
    np.testing.assert_allclose(got, a @ b, rtol=1e-13)
    # by hand: the cotangent of each product, summed over the batch dims the operand was broadcast along
    np.testing.assert_allclose(da, (g @ np.swapaxes(b, -1, -2)).sum(axis=1, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(db, (np.swapaxes(a, -1, -2) @ g).sum(axis=0), rtol=1e-13)
    f = sg.compile([z] + sg.grad(sg.sum(z * G), [A, B]), inputs=[A, B, G])
    for c, e in zip(f(a, b, g), (got, da, db)):
        np.testing.assert_allclose(c, e, rtol=1e-13)


def test_matmul_of_stacks_with_a_symbolic_batch():
    A, B = sg.var("A", shape=("batch", 1, 3, 4)), sg.var("B", shape=(5, 4, 2))
    z = A @ B
    assert z.shape == ("batch", 5, 3, 2)
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=(3, 1, 3, 4)), rng.normal(size=(5, 4, 2))
    assert sg.check_grad(sg.sum(sg.sin(z)), [A, B], {"A": a, "B": b}) < 1e-6
