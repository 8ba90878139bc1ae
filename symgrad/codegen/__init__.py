"""Graph -> plain Python + NumPy source: the compiler.

:func:`compile` turns output nodes into one Python function written as
source text, one line per op; :func:`compile_step` builds forward,
backward and optimizer update (:mod:`symgrad.optim`) into one function.
The pipeline, one module a stage:

1. :mod:`.ir` **lowers** the graph to values with structural sharing
   (common subexpressions over forward and backward nodes alike) and folds
   constant subexpressions;
2. :mod:`.rewrite` applies the ops' own compile-time **rewrites**
   (fusions such as σ′(z) from σ(z), cross-entropy as a gather) and sinks
   broadcasts below elementwise ops;
3. :mod:`.schedule` drops dead values, **schedules** (forward, backward,
   then updates) and computes liveness; :mod:`.buffers` **reuses
   buffers** (``np.add(a, b, out=a)``, updates landing in the param arrays);
4. :mod:`.emit` and :mod:`.function` **write the source**, with names
   from :mod:`.names`; :mod:`.load` writes it to a real file (so
   tracebacks and ``inspect`` show it) and loads it with its globals bound.

Everything the compiler knows about an op comes from its
:class:`~symgrad.ops.base.OpDef`.  User-chosen names never reach the code
unsanitized: identifiers are built from ASCII letters, digits and ``_``
only, and names appear otherwise only in ``#`` comments after removing
anything that could end the comment.
"""
from .api import CompiledFunction, StepFunction, compile, compile_step
from .names import comment_text
from .schedule import DTYPES

__all__ = ["compile", "compile_step", "CompiledFunction", "StepFunction", "comment_text", "DTYPES"]
