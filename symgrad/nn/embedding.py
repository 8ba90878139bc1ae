"""A lookup table of vectors, as ``torch.nn.Embedding``: ``E[idx]`` with the public indexing op, whose
gradient adds each row's cotangents into zeros of the table's shape (repeated indices accumulate, rows
never used get zero).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GraphError
from ..graph import Node
from ..init import resolve, to_config
from ..ops import getitem
from .layers import _check_size, init_param
from .module import Module

#: PyTorch's default: every entry drawn from N(0, 1)
DEFAULT_INIT = ("normal", {"std": 1.0})


class Embedding(Module):
    """Rows of a table ``E`` of shape ``(num_embeddings, embedding_dim)`` picked by integer indices.

    ``embedding(idx)[..., j] = E[idx[...], j]``: indices of any shape give an output of shape
    ``idx.shape + (embedding_dim,)``.  Only the rows used get a gradient (a row used twice gets both
    cotangents added).

    Parameters
    ----------
    num_embeddings : the number of rows (the vocabulary size).
    embedding_dim : the length of each vector.
    init : initializer of ``E`` (see :mod:`symgrad.init`); default ``("normal", {"std": 1.0})``,
        PyTorch's N(0, 1).
    seed : seeds the initializer.
    name : the table is ``<name>.E``, the output ``<name>.out``.

    Examples
    --------
    >>> import numpy as np, symgrad as sg
    >>> emb = sg.nn.Embedding(5, 2, init="identity", name="emb")
    >>> emb.E.shape
    (5, 2)
    >>> ids = sg.var("ids", shape=("batch", 3), dtype="int")
    >>> out = emb(ids)
    >>> out.name, out.shape
    ('emb.out', ('batch', 3, 2))
    >>> sg.evaluate(out, {"ids": [[0, 1, 1]]})
    array([[[1., 0.],
            [0., 1.],
            [0., 1.]]])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *, init: Any = None, seed: int | None = None,
                 name: str = "embedding"):
        super().__init__(name)
        what = f"Embedding {name!r}"
        self.num_embeddings = _check_size(num_embeddings, f"{what}: num_embeddings")
        self.embedding_dim = _check_size(embedding_dim, f"{what}: embedding_dim")
        self.init = DEFAULT_INIT if init is None else init
        resolve(self.init, what)
        self.seed = seed
        self.E = init_param(self, "E", (self.num_embeddings, self.embedding_dim), self.init, seed)

    def forward(self, idx: Any) -> Node:
        """``E[idx]``, named ``<name>.out``; ``idx`` is an int var (or an int array or list)."""
        if isinstance(idx, Node):
            if idx.dtype != "int":
                raise GraphError(f"Embedding {self.name!r}: indices must be an int var "
                                 f"(sg.var(..., dtype='int')), got {idx.describe()} of dtype {idx.dtype}")
        else:
            arr = np.asarray(idx)
            if arr.dtype.kind not in "iu":
                raise GraphError(f"Embedding {self.name!r}: indices must be ints, got {arr.dtype} values")
            idx = arr
        return getitem(self.E, idx, name=f"{self.name}.out")

    def config(self) -> dict | None:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "init": to_config(self.init), "seed": self.seed, "name": self.name}

    def __repr__(self) -> str:
        return f"Embedding({self.num_embeddings}, {self.embedding_dim}, name={self.name!r})"


__all__ = ["Embedding"]
