"""Op labels (``"σ′"``, ``"Σ"``, ``"softmax"``) as LaTeX and as unicode art.

Labels come from the op declarations, so a user-made op prints with its
own label; anything that is not a letter, digit or known symbol is
escaped, so a label cannot inject LaTeX.
"""
from __future__ import annotations

import unicodedata

_KNOWN = {"Σ": r"\sum", "√": r"\sqrt", "|·|": r"\left|\cdot\right|", "exp": r"\exp", "log": r"\log",
          "sin": r"\sin", "cos": r"\cos", "tanh": r"\tanh", "max": r"\max", "min": r"\min", "×": r"\times",
          "÷": r"\div", "−": "-", "@": r"\cdot", "ᵀ": r"^{\top}", "≥": r"\geq", "∂": r"\partial "}
_GREEK_FIX = {"lamda": "lambda"}
_PLAIN = set("+-=<>()/,.:;!?[]|'")
_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
            "^": r"\^{}", "_": r"\_", "%": r"\%", "~": r"\~{}"}


def _greek(ch: str) -> str | None:
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return None
    for prefix, upper in (("GREEK SMALL LETTER ", False), ("GREEK CAPITAL LETTER ", True)):
        if name.startswith(prefix):
            word = name[len(prefix):].lower()
            if " " in word:
                return None
            word = _GREEK_FIX.get(word, word)
            return "\\" + (word.capitalize() if upper else word)
    return None


def _word(word: str) -> str:
    if ("\\" + word) in _KNOWN.values():
        return "\\" + word
    return r"\operatorname{%s}" % word.replace("-", r"\text{-}")  # one-hot: a hyphen, not a minus


def latex_label(label: str) -> str:
    """An op label as LaTeX: ``"σ′"`` -> ``\\sigma'``, ``"softmax"`` -> ``\\operatorname{softmax}``."""
    if label in _KNOWN:
        return _KNOWN[label]
    out: list[str] = []
    word = ""
    for i, ch in enumerate(label):
        if ch.isascii() and ch.isalnum():
            word += ch
            continue
        if ch == "-" and word and label[i + 1:i + 2].isalnum():  # a hyphenated name such as one-hot
            word += ch
            continue
        if word:
            out.append(_word(word))
            word = ""
        if ch == "′":
            out.append("'")
            out[-2:] = ["".join(out[-2:]).replace(" '", "'")] if len(out) > 1 else out
        elif ch in _KNOWN:
            out.append(_KNOWN[ch])
        elif _greek(ch):
            out.append(_greek(ch) + " ")
        elif ch == " ":
            out.append(r"\,")
        elif ch in _PLAIN:
            out.append(ch)
        else:
            out.append(r"\text{%s}" % _ESCAPES.get(ch, ch))
    if word:
        out.append(_word(word))
    return "".join(out).rstrip()


def apply_latex(label_tex: str, sub: str, args_tex: list[str], exp=None) -> str:
    """``label_{sub}(args)`` in LaTeX; ``√`` and ``|·|`` get their own shapes."""
    inner = ", ".join(args_tex)
    if label_tex == r"\sqrt" and not sub:
        body = r"\sqrt{%s}" % inner
    elif label_tex == _KNOWN["|·|"]:
        body = r"\left|%s\right|" % inner
    else:
        subscript = r"_{%s}" % "".join(_ESCAPES.get(c, c) for c in sub) if sub else ""
        body = r"%s%s\left(%s\right)" % (label_tex, subscript, inner)
    return body if exp is None else r"\left(%s\right)^{%s}" % (body, exp)


def apply_pretty(printer, label: str, operands) -> object:
    """``label(args)`` as a SymPy prettyForm."""
    from sympy.printing.pretty.stringpict import prettyForm
    if len(operands) == 1:
        pform = printer._print(operands[0])
    else:
        pform = printer._print_seq(operands, None, None, ", ")
    args = prettyForm(*pform.parens())
    head = prettyForm(label)
    out = prettyForm(*head.right(args), binding=prettyForm.FUNC)
    out.prettyFunc, out.prettyArgs = head, args  # what SymPy's power printing reads for f(x)² and A^{∘2}
    return out
