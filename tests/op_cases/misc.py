"""Masks (tril, triu, masked_fill with an int mask, a float mask and −∞), elementwise activations and
bounds (GELU, ELU, SiLU, minimum, clip and their derivative ops), and statistics over axes
(logsumexp with −∞ entries, variance and std with ddof, the 2-norm, and the quotient their
gradients divide with)."""
from __future__ import annotations

import numpy as np

import symgrad as sg
from symgrad.ops import apply

from . import Case

_CAUSAL = sg.const(np.triu(np.ones((3, 3)), k=1))  # 1 above the diagonal: the future of each row
_SOME = sg.const([0.0, 1.0, 0.0, 1.0])  # masks two of four entries of each row
WIDE = ((-4.0, 4.0),)
MASK01 = ((-2.0, 2.0), (0, 2))  # an int mask of zeros and ones

CASES = [
    Case("tril", ((3, 3),), lambda x: sg.tril(x)),
    Case("tril", (("batch", 3, 4),), lambda x: sg.tril(x, k=1)),
    Case("tril", ((2, 4, 3),), lambda x: sg.tril(x, k=-1)),
    Case("tril", (("batch", "batch"),), lambda x: sg.tril(x)),
    Case("triu", ((3, 3),), lambda x: sg.triu(x)),
    Case("triu", (("batch", 3, 4),), lambda x: sg.triu(x, k=-1)),
    Case("triu", ((2, 4, 3),), lambda x: sg.triu(x, k=2)),
    Case("triu", ((3, 2),), lambda x: sg.triu(x * x)),
    Case("masked_fill", (("batch", 3), (3,)), lambda x, m: sg.masked_fill(x, m, 0.5), MASK01, wrt=(0,),
         int_inputs=(1,)),
    Case("masked_fill", ((2, 3), (2, 3)), lambda x, m: sg.masked_fill(x, m, -3.0), MASK01, wrt=(0,),
         int_inputs=(1,)),
    Case("masked_fill", (("batch", 2, 2), ("batch", 2, 2)), lambda x, m: sg.masked_fill(x, sg.greater(m, 0.0), 1.5),
         wrt=(0,)),
    Case("masked_fill", (("batch", 3, 3),), lambda s: sg.softmax(sg.masked_fill(s, _CAUSAL, -np.inf))),
    Case("masked_fill", ((3,), ()), lambda x, m: sg.masked_fill(x * x, m, 0.0), MASK01, wrt=(0,), int_inputs=(1,)),
    Case("gelu", ((),), sg.gelu, WIDE),
    Case("gelu", (("batch", 3),), sg.gelu, WIDE),
    Case("gelu", ((2, 3),), lambda x: sg.gelu(3.0 * x)),
    Case("gelu", ((4,),), lambda x: sg.gelu(x) * x),
    Case("gelu_prime", (("batch", 3),), lambda x: apply("gelu_prime", x), WIDE),
    Case("gelu_prime", ((),), lambda x: apply("gelu_prime", x)),
    Case("gelu_prime", ((2, 3),), lambda x: apply("gelu_prime", 2.0 * x)),
    Case("gelu_prime", ((3,),), lambda x: sg.grad(sg.sum(sg.gelu(x)), x)),
    Case("elu", (("batch", 3),), sg.elu),
    Case("elu", ((2, 3),), lambda x: sg.elu(x, alpha=0.5)),
    Case("elu", ((),), lambda x: sg.elu(x, alpha=2.0)),
    Case("elu", ((4,),), lambda x: sg.elu(x * x - 1.0)),
    Case("elu_prime", (("batch", 3),), lambda x: apply("elu_prime", x, alpha=1.0)),
    Case("elu_prime", ((2, 3),), lambda x: apply("elu_prime", x, alpha=0.3)),
    Case("elu_prime", ((),), lambda x: apply("elu_prime", x, alpha=2.0)),
    Case("elu_prime", ((3,),), lambda x: sg.grad(sg.sum(sg.elu(x, alpha=0.7)), x)),
    Case("silu", ((),), sg.silu, WIDE),
    Case("silu", (("batch", 3),), sg.silu, WIDE),
    Case("silu", ((2, 3),), lambda x: sg.silu(2.0 * x)),
    Case("silu", ((4,),), lambda x: sg.silu(x) * x),
    Case("silu_prime", (("batch", 3),), lambda x: apply("silu_prime", x), WIDE),
    Case("silu_prime", ((),), lambda x: apply("silu_prime", x)),
    Case("silu_prime", ((2, 3),), lambda x: apply("silu_prime", 2.0 * x)),
    Case("silu_prime", ((3,),), lambda x: sg.grad(sg.sum(sg.silu(x)), x)),
    Case("minimum", ((3,), (3,)), sg.minimum),
    Case("minimum", (("batch", 3), (1, 3)), sg.minimum),
    Case("minimum", ((2, 1), (1, 3)), sg.minimum),
    Case("minimum", ((2, 3), ()), sg.minimum),
    Case("clip", (("batch", 3),), lambda x: sg.clip(x, -1.0, 1.0)),
    Case("clip", ((2, 3),), lambda x: sg.clip(x, low=0.0)),
    Case("clip", ((4,),), lambda x: sg.clip(x, high=0.5)),
    Case("clip", ((),), lambda x: sg.clip(x * x, 0.5, 2.0)),
    Case("clip_prime", (("batch", 3),), lambda x: apply("clip_prime", x, low=-1.0, high=1.0)),
    Case("clip_prime", ((2, 3),), lambda x: apply("clip_prime", x, low=0.0, high=None)),
    Case("clip_prime", ((4,),), lambda x: apply("clip_prime", x, low=None, high=0.5)),
    Case("clip_prime", ((3,),), lambda x: sg.grad(sg.sum(sg.clip(x, -1.0, 1.0) ** 2), x)),
    Case("logsumexp", ((3,),), sg.logsumexp),
    Case("logsumexp", (("batch", 4),), lambda x: sg.logsumexp(x, axis=1)),
    Case("logsumexp", ((2, 3, 4),), lambda x: sg.logsumexp(x, axis=(0, 2), keepdims=True)),
    Case("logsumexp", (("batch", 3),), lambda x: sg.logsumexp(x, axis=0, keepdims=True)),
    Case("logsumexp", (("batch", 4),), lambda x: sg.logsumexp(sg.masked_fill(x, _SOME, -np.inf), axis=-1)),
    Case("variance", ((4,),), sg.variance),
    Case("variance", (("batch", 3),), lambda x: sg.variance(x, axis=1, ddof=1)),
    Case("variance", ((2, 3, 4),), lambda x: sg.variance(x, axis=(0, 2), keepdims=True)),
    Case("variance", (("batch", 3),), lambda x: sg.variance(x, axis=0, ddof=1)),
    Case("std", ((4,),), sg.std),
    Case("std", (("batch", 3),), lambda x: sg.std(x, axis=1, ddof=1)),
    Case("std", ((2, 3, 4),), lambda x: sg.std(x, axis=(0, 2), keepdims=True)),
    Case("std", (("batch", 3),), lambda x: sg.std(x, axis=0)),
    Case("norm", ((3,),), sg.norm),
    Case("norm", (("batch", 3),), lambda x: sg.norm(x, axis=1)),
    Case("norm", ((2, 3, 4),), lambda x: sg.norm(x, axis=(1, 2), keepdims=True)),
    Case("norm", (("batch", 3),), lambda x: sg.norm(x, axis=0, keepdims=True)),
    Case("div_or_zero", ((3,), (3,)), lambda a, b: apply("div_or_zero", a, b), ((-2.0, 2.0), (0.3, 3.0))),
    Case("div_or_zero", (("batch", 3), (3,)), lambda a, b: apply("div_or_zero", a, b), ((-2.0, 2.0), (0.3, 3.0))),
    Case("div_or_zero", ((2, 3), ()), lambda a, b: apply("div_or_zero", a, b), ((-2.0, 2.0), (-3.0, -0.3))),
    Case("div_or_zero", ((3,),), lambda x: sg.grad(sg.norm(x), x)),
]
