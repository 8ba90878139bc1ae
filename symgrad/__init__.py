"""symgrad: the mathematics of deep learning, visible and runnable.

Build a model as a graph of symbolic nodes, derive gradients by the chain
rule on that graph, then print the formulas, draw the graphs, and compile
them to NumPy for training.

>>> import symgrad as sg
>>> x, w = sg.var("x"), sg.param("w", 0.5)
>>> dw = sg.grad(sg.sigmoid(w * x), w)
>>> round(float(sg.evaluate(dw, {"x": 1.5})), 6)
0.326842
"""
from . import init, losses
from .autodiff import adjoints, grad
from .errors import (FeedError, GradError, GradientCheckError, GraphError, NotDifferentiableError,
                     OpDefinitionError, ParseError, ShapeError, SymgradError)
from .evaluate import evaluate
from . import formulas
from .formulas import backprop_equations, chain_rule, formula, latex, pretty
from .formulas import mathml
from .graph import Graph, Node
from .ops import (abs, add, const, cos, div, equal, exp, expand_dims, greater, greater_equal, leaky_relu, log, log_softmax, matmul, max, maximum,
                  mean, mul, neg, one_hot, param, pow, relu, reshape, sigmoid, sign, sin, softmax, softplus, sqrt, sub,
                  sum, tanh, transpose, var, where)
from .ops import make_elementwise as elementwise
from .ops.linalg import broadcast_to
from .ops import concat, flatten, getitem, pad, split, squeeze, stack
from .ops.conv import avg_pool2d, conv1d, conv2d, max_pool2d
from .ops.einsum import einsum
from .ops.scan import scan  # loops as one graph node (sg.scan); its gradient is a reverse scan
from .ops import (clip, elu, gelu, logsumexp, masked_fill, minimum, norm, silu, std, step, tril, triu,
                  variance)
from .ops.sympy_funcs import relu as sympy_relu
from .ops.sympy_funcs import sigmoid as sympy_sigmoid
from .ops.sympy_funcs import softplus as sympy_softplus
from .errors import GraphvizNotFoundError, RenderError
from .render import draw, render
from .testing import check_grad
from .diagnostics import GradCheckReport  # check_grad(..., per_node=True)
from .formula_size import FormulaStats, formula_stats
from .parse import parse  # expression strings to graph nodes, without eval
from . import nn
from .nn.attention import attention  # scaled dot-product attention (sg.nn.MultiheadAttention builds on it)
from .errors import DependencyError, StateError, TrainingError
from .io import load, save
from .train import History, fit
from . import optim
from .codegen import compile, compile_step
from . import random  # sg.random.normal/uniform/bernoulli: random nodes drawn at each evaluation
from .random import dropout
from .errors import OptimizerError
from .errors import OutputError
from . import text  # tokenize → numericalize (Vocab) → pad, for embeddings
from .errors import TextError

__version__ = "0.1.0"
