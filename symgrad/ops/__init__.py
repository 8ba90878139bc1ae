"""All ops: one declaration each, grouped by kind.

Importing this package registers every built-in op in
:data:`symgrad.ops.base.REGISTRY`.
"""
from .base import REGISTRY, Code, OpDef, Target, apply, as_node, const, get_op, param, register, var
from .declare import derivative_op, make_elementwise
from .elementwise import (abs, add, cos, div, equal, exp, greater, greater_equal, leaky_relu, log, maximum, mul,
                          neg, pow, relu, sigmoid, sign, sin, softplus, sqrt, sub, tanh, where)
from .linalg import broadcast_like, broadcast_to, expand_dims, matmul, reshape, reshape_like, transpose
from .index import getitem
from .join import concat, flatten, pad, split, squeeze, stack
from .nn import log_softmax, one_hot, softmax
from .reduce import max, mean, sum
from .conv import avg_pool2d, conv1d, conv2d, max_pool2d
from .einsum import einsum
from .activations import clip, elu, gelu, minimum, silu, step
from .mask import masked_fill, tril, triu
from .stats import logsumexp, norm, std, variance
from . import state
from .scan import scan, scan_out

#: the ops symgrad ships with (user ops from sg.elementwise and their derivatives come later)
BUILTIN_OPS = frozenset(REGISTRY)
