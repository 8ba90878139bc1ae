"""Neural-network building blocks: :class:`Module`, :class:`Linear`, :class:`MLP`.

Layers hold ``sg.param`` nodes named by layer (``mlp.0.W``); calling a
layer on a node builds graph nodes (``mlp.0.z``, ``mlp.0.a``).

Examples
--------
>>> import symgrad as sg
>>> model = sg.nn.MLP([64, 32, 10], activation="relu", init="he", seed=0)
>>> [name for name, _ in model.named_parameters()]
['mlp.0.W', 'mlp.0.b', 'mlp.1.W', 'mlp.1.b']
"""
from .batchnorm import BatchNorm1d, BatchNorm2d, Dropout
from .layers import ACTIVATIONS, MLP, Linear
from .module import Module

__all__ = ["Module", "Linear", "MLP", "ACTIVATIONS", "Dropout", "BatchNorm1d", "BatchNorm2d"]
