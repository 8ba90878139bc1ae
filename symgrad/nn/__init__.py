"""Neural-network building blocks: :class:`Module`, :class:`Linear`, :class:`MLP`, the containers
:class:`Sequential` and :class:`ModuleList`, activation modules, convolution and pooling
(:class:`Conv2d`, :class:`MaxPool2d`, :class:`AvgPool2d`), :class:`Flatten`, :class:`LayerNorm`
and :class:`Embedding`.

Layers hold ``sg.param`` nodes named by layer (``mlp.0.W``); calling a
layer on a node builds graph nodes (``mlp.0.z``, ``mlp.0.a``).

Examples
--------
>>> import symgrad as sg
>>> model = sg.nn.MLP([64, 32, 10], activation="relu", init="he", seed=0)
>>> [name for name, _ in model.named_parameters()]
['mlp.0.W', 'mlp.0.b', 'mlp.1.W', 'mlp.1.b']
>>> cnn = sg.nn.Sequential(sg.nn.Conv2d(1, 4, 3, padding=1, seed=0), sg.nn.ReLU(), sg.nn.MaxPool2d(2),
...                        sg.nn.Flatten(), sg.nn.Linear(64, 10, seed=1), name="cnn")
>>> [(name, p.shape) for name, p in cnn.named_parameters()]
[('cnn.0.W', (4, 1, 3, 3)), ('cnn.0.b', (4,)), ('cnn.4.W', (64, 10)), ('cnn.4.b', (10,))]
"""
from .attention import MultiheadAttention, PositionalEmbedding, attention, attention_weights, sinusoidal_positions
from .batchnorm import BatchNorm1d, BatchNorm2d, Dropout
from .containers import GELU, Flatten, ModuleList, ReLU, Sequential, Sigmoid, Softmax, Tanh
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .embedding import Embedding
from .layers import ACTIVATIONS, MLP, Linear
from .module import Module
from .norm import LayerNorm
from .recurrent import GRU, LSTM, RNN
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = ["Module", "Linear", "MLP", "ACTIVATIONS",
           "Sequential", "ModuleList", "ReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "Flatten",
           "Conv2d", "MaxPool2d", "AvgPool2d", "LayerNorm", "Embedding", "Dropout", "BatchNorm1d", "BatchNorm2d"]
__all__ += ["attention", "attention_weights", "MultiheadAttention", "sinusoidal_positions", "PositionalEmbedding",
            "TransformerEncoderLayer", "TransformerEncoder"]
__all__ += ["RNN", "LSTM", "GRU"]
