"""sg.mathml: symgrad's formulas as MathML, checked by parsing the XML and reading its structure."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import sympy

import symgrad as sg
from symgrad.errors import GraphError
from symgrad.formulas.mathml import Row, table, to_mathml

NS = "{http://www.w3.org/1998/Math/MathML}"


def parse(text: str) -> ET.Element:
    return ET.fromstring(text)


def tag(el: ET.Element) -> str:
    return el.tag.replace(NS, "")


def find_all(el: ET.Element, name: str) -> list:
    return [e for e in el.iter() if tag(e) == name]


def texts(el: ET.Element, name: str) -> list[str]:
    return [e.text for e in find_all(el, name)]


def mlp():
    X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 2))
    W1, b1 = sg.param("W1", shape=(3, 4), init="xavier", seed=0), sg.param("b1", shape=(4,))
    W2, b2 = sg.param("W2", shape=(4, 2), init="xavier", seed=1), sg.param("b2", shape=(2,))
    Z1 = (X @ W1 + b1).named("Z1")
    A1 = sg.sigmoid(Z1, name="A1")
    Z2 = (A1 @ W2 + b2).named("Z2")
    return sg.losses.mse(sg.sigmoid(Z2, name="Yhat"), Y, name="L")


def test_sigmoid_is_sigma_and_the_lhs_partial_is_a_fraction():
    x, w = sg.var("x"), sg.param("w", 0.5)
    root = parse(sg.mathml(sg.grad(sg.sigmoid(w * x), w), lhs="∂y/∂w"))
    assert tag(root) == "math" and root.get("display") == "block"
    assert "σ" in texts(root, "mi") and "sigmoid" not in ET.tostring(root, encoding="unicode")
    frac = find_all(root, "mfrac")[0]
    assert [texts(part, "mo") + texts(part, "mi") for part in frac] == [["∂", "y"], ["∂", "w"]]


def test_backprop_equations_one_row_per_equation_with_delta_subscripts():
    eqs = sg.backprop_equations(mlp())
    root = parse(sg.mathml(eqs))
    tables = find_all(root, "mtable")
    assert len(tables) == 1
    rows = [r for r in tables[0] if tag(r) == "mtr"]
    assert len(rows) == len(eqs.forward) + len(eqs.equations) == 5 + 8
    assert all(len(r) == 3 and texts(r[1], "mo") == ["="] for r in rows)  # lhs | = | rhs
    lhs = [r[0][0] for r in rows]
    # δ_{Z₂}: an msub of δ whose subscript is Z with subscript 2
    dz2 = lhs[len(eqs.forward) + 1]
    assert tag(dz2) == "msub" and dz2[0].text == "δ"
    assert tag(dz2[1]) == "msub" and dz2[1][0].text == "Z" and texts(dz2[1][1], "mn") == ["2"]
    # ∂L/∂W₁ in the last row, the rhs Xᵀ δ_{Z₁} with a transpose
    assert tag(lhs[-1]) == "mfrac"
    assert [e.text for e in find_all(rows[-1][2], "mi")][:2] == ["X", "T"]
    # δ_Z₂ = δ_Ŷ ⊙ σ′(Z₂): the Hadamard product and σ′ as σ with a prime
    rhs = rows[len(eqs.forward) + 1][2]
    assert "⊙" in texts(rhs, "mo")
    row = next(e for e in rhs.iter() if any(c.text == "σ" for c in e))
    names = [c.text for c in row]
    assert names[names.index("σ") + 1] == "′"  # σ′: the prime right after σ, tight (no operator space)
    # the backward block starts with space above it, the forward block without
    assert "padding-top" in rows[len(eqs.forward)][0].get("style") and "padding-top" not in rows[0][0].get("style")


def test_no_latex_left_in_mathml_of_systems():
    x, y = sg.var("x"), sg.var("y")
    w, b = sg.param("w", 0.5), sg.param("b", 0.1)
    L = sg.losses.bce(sg.sigmoid(w * x + b), y)
    for obj in (sg.backprop_equations(mlp()), sg.chain_rule(L, w, feeds={x: 1.5, y: 1.0}),
                sg.optim.Adam(lr=0.1).formulas()):
        text = sg.mathml(obj)
        parse(text)
        assert "&" not in text and "\\" not in text, text


def test_update_rule_rows_use_left_arrow():
    root = parse(sg.mathml(sg.optim.Adam(lr=0.1).formulas()))
    rows = find_all(root, "mtr")
    assert len(rows) == 3 and [r[1][0].text for r in rows] == ["←"] * 3
    assert [r[0][0].text for r in rows] == ["m", "v", "θ"]
    assert find_all(rows[0][2], "msub")[0][0].text == "β"


def test_chain_rule_lists_its_values_and_definitions():
    x, y = sg.var("x"), sg.var("y")
    w, b = sg.param("w", 0.5), sg.param("b", 0.1)
    L = sg.losses.bce(sg.sigmoid((w * x + b).named("z"), name="yhat"), y, name="L")
    chain = sg.chain_rule(L, w, feeds={x: 1.5, y: 1.0})
    root = parse(sg.mathml(chain))
    main, defs = find_all(root, "mtable")[:2]
    assert [len(r) for r in main] == [3, 3, 3, 3]
    assert chain.value < 0 and texts(main[-1][2], "mo") == ["−"]  # a minus sign, not a hyphen
    assert find_all(main[-1][2], "mn")[0].text == f"{-chain.value:.6g}"
    assert len(list(defs)) == len(chain.definitions)
    # ŷ as y under a hat accent, not a two-character identifier
    hats = find_all(root, "mover")
    assert hats and hats[0][0].text == "y" and hats[0][1].text == "^"


def test_fractions_and_roots_from_sympy():
    x = sympy.Symbol("x")
    frac = find_all(parse(to_mathml(sympy.sqrt(x) / (1 + x))), "mfrac")
    assert len(frac) == 1 and tag(frac[0][0]) == "msqrt" and texts(frac[0][1], "mo") == ["+"]


def test_entry_symbols_and_qualified_names():
    root = parse(to_mathml(sympy.Symbol("W1[0,1]")))
    assert tag(root) == "msub" and texts(root[1], "mn") == ["0", "1"]
    assert parse(to_mathml(sympy.Symbol("bn.running_mean"))).text == "bn.running_mean"


def test_index_notation_sum_has_indices_underneath():
    X = sg.var("X", shape=("batch", 3, 4))
    w = sg.param("w", [1.0, 2.0, 3.0, 4.0])
    root = parse(sg.mathml(sg.sum(X * w, axis=2), lhs="Z", notation="index"))
    under = find_all(root, "munder")
    assert len(under) == 1 and under[0][0].text == "∑" and texts(under[0][1], "mi") == ["k"]
    lhs = root[0][0]
    assert tag(lhs) == "msub" and lhs[0].text == "Z" and texts(lhs[1], "mi") == ["i", "j"]


def test_loop_backprop_has_sum_over_t_and_for_headings():
    T, D, H = 4, 2, 3
    X = sg.var("X", shape=(T, D))
    W_xh = sg.param("W_xh", shape=(D, H), init="xavier", seed=0)
    W_hh = sg.param("W_hh", shape=(H, H), init="xavier", seed=1)

    def body(h, x):
        h = sg.tanh(x @ W_xh + h @ W_hh)
        return h, h
    _, hs = sg.scan(body, sg.const(np.zeros(H)), X)
    L = sg.sum(hs ** 2)
    root = parse(sg.mathml(sg.backprop_equations(L)))
    text = ET.tostring(root, encoding="unicode")
    assert "for t = " in text
    sums = [u for u in find_all(root, "munder") if u[0].text == "∑"]
    assert sums and texts(sums[0][1], "mi") == ["t"]


def test_table_rows_and_errors():
    y, x = sympy.symbols("y x")
    root = parse(table([Row(y, x ** 2), ("", 2 * x)]))
    assert len(find_all(root, "mtr")) == 2 and tag(find_all(root, "msup")[0]) == "msup"
    with pytest.raises(GraphError, match="display"):
        sg.mathml(x, display="wide")
    with pytest.raises(GraphError, match="mathml"):
        sg.mathml(object())


def test_clipping_rule_prints_min_and_max_with_their_arguments():
    rule = sg.optim.SGD(lr=0.01, clip_norm=1.0).formulas()
    root = parse(sg.mathml(rule))
    names = texts(root, "mi")
    assert "min" in names or "max" in names
    assert "‖" in texts(root, "mo")  # ‖g‖, the global norm, from its own printing


def test_negative_matrix_product_has_a_minus_sign_not_minus_one_and_hyphenated_labels_stay_whole():
    X = sg.var("X", shape=("batch", 4))
    W1 = sg.param("W1", np.zeros((4, 3)))
    L = sg.losses.cross_entropy(X @ W1, sg.var("Y", shape=("batch",), dtype="int"), name="L")
    first = sg.backprop_equations(L, [W1]).equations[0]
    root = parse(to_mathml(first.rhs))
    assert tag(root[0]) == "mo" and root[0].text == "−"  # −(1/batch)·one-hot(Y)
    assert "-1" not in ET.tostring(root, encoding="unicode") and "one-hot" in texts(root, "mi")


def test_products_of_qualified_names_get_a_thin_space():
    a, w = sympy.MatrixSymbol("dec.0.a", 3, 3), sympy.MatrixSymbol("dec.1.W", 3, 3)
    root = parse(to_mathml(a * w))
    assert [tag(e) for e in root] == ["mi", "mspace", "mi"]
