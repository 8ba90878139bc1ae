"""Typed errors raised by symgrad.

Every error a user can trigger derives from :class:`SymgradError`, so one
``except SymgradError`` catches them all; the subclasses say what kind of
mistake it was.  Messages name the op, the shapes and the node names.
"""


class SymgradError(Exception):
    """Base class of every error symgrad raises on bad input."""


class ShapeError(SymgradError, ValueError):
    """Input shapes of an op do not fit its shape rule."""


class GraphError(SymgradError, ValueError):
    """The graph asked for is malformed (e.g. ``wrt`` not in the graph)."""


class GradError(SymgradError, ValueError):
    """A gradient cannot be taken (non-scalar output, int input...)."""


class NotDifferentiableError(GradError):
    """An op has no vector-Jacobian product for the input asked for."""


class FeedError(SymgradError, KeyError):
    """A feed is missing, unknown, or has the wrong shape or dtype."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class GradientCheckError(SymgradError, AssertionError):
    """Analytic and finite-difference gradients disagree."""


class OpDefinitionError(SymgradError, TypeError):
    """An op declaration is incomplete or registered twice."""


class ParseError(SymgradError, ValueError):
    """An expression string could not be parsed safely."""


class StateError(SymgradError, ValueError):
    """A state dict or saved model file does not fit: missing or unexpected
    parameter names, malformed or foreign file."""


class TrainingError(SymgradError, ValueError):
    """``fit`` got bad settings (epochs, batch size, patience, step object)
    or the loss stopped being finite."""


class DependencyError(SymgradError, ImportError):
    """An optional dependency (e.g. matplotlib for plots) is not installed."""


class RenderError(SymgradError, ValueError):
    """A drawing or a rendered file cannot be made (bad drawing option,
    unknown format, Graphviz failed)."""


class GraphvizNotFoundError(RenderError):
    """The output format needs the system Graphviz ``dot``, which is not
    installed (PNG, PDF); SVG and DOT work without it."""


class OptimizerError(SymgradError, ValueError):
    """An optimizer or learning-rate schedule got a bad setting (negative
    learning rate, β outside [0, 1), Nesterov without momentum...)."""


class OutputError(SymgradError, OSError):
    """A file cannot be written where asked: the folder is missing or is a
    file, the target is a folder, no permission, a read-only or full disk.
    The message names the path and the reason; ``errno`` and ``filename``
    are set when an operating-system error was the cause."""

    def __str__(self) -> str:  # OSError would print "[Errno n] None: path" once errno is set
        return str(self.args[0]) if self.args else ""


class TextError(SymgradError, ValueError):
    """The text pipeline (``sg.text``) got bad input: text that is not a string, token lists that
    are not lists of strings, a bad vocabulary setting, an id outside the vocabulary."""
