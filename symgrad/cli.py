"""The ``symgrad`` command line: gradient formulas, drawings, the gallery.

Expressions are read by :mod:`symgrad.parse` (a whitelist over Python's
``ast``; nothing is evaluated).  Exit status: 0 on success; 2 for a usage
error (a bad expression, option or value, an unwritable output path); 1
for any other error (Graphviz failed or took too long, a gallery example
failed).  The command never shows a Python traceback or a warning that
names an internal file: an unexpected exception prints one line and asks
for a report (``--debug`` shows the traceback), and numerical warnings are
one clean line each.  An expression that starts with ``-`` needs no
``--`` in front of it (``symgrad grad "-x" --wrt x``).
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from typing import Sequence

from .errors import FeedError, GraphError, OutputError, ParseError, ShapeError, SymgradError

LOSSES = ("mse", "mae", "bce", "bce_with_logits")
#: errors that mean the command line asked for something wrong (exit status 2)
USAGE_ERRORS = (ParseError, ShapeError, GraphError, FeedError, OutputError)
#: each expression command's options: (those that take a value, flags), to tell "-x" from an option
_OPTIONS = {
    "grad": ({"--wrt", "--loss", "--target", "--values"},
             {"-h", "--help", "--debug", "--latex", "--pretty", "--chain", "--stats"}),
    "draw": ({"--wrt", "--loss", "--target", "--values", "-o", "--output", "--rankdir", "--timeout"},
             {"-h", "--help", "--debug", "--backward", "--formulas"}),
}
#: warnings that are about symgrad's own dependencies, not the user's numbers: never shown
_QUIET = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


class UsageError(SymgradError):
    """Bad command-line input (exit status 2)."""


def _names(text: str | None, what: str) -> list[str]:
    if not text:
        return []
    names = [t.strip() for t in text.split(",") if t.strip()]
    seen: set[str] = set()
    for n in names:
        if not n.isidentifier():
            raise UsageError(f"{what}: {n!r} is not a name")
        if n in seen:
            raise UsageError(f"{what}: {n!r} is given twice")
        seen.add(n)
    return names


def _values(text: str | None) -> dict[str, float]:
    out: dict[str, float] = {}
    if not text:
        return out
    for item in text.split(","):
        if not item.strip():
            continue
        name, eq, num = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise UsageError(f"--values: expected name=number pairs like x=1.5,w=0.2, got {item.strip()!r}")
        try:
            value = float(num)
        except ValueError:
            raise UsageError(f"--values: {num.strip()!r} (for {name}) is not a number") from None
        if not math.isfinite(value):
            raise UsageError(f"--values: {num.strip()!r} (for {name}) is not a finite number "
                             f"(floats reach ±1.8e308)")
        if name in out:
            raise UsageError(f"--values: {name} is given twice ({name}={out[name]:g} and {name}={num.strip()})")
        out[name] = value
    return out


def _fresh(candidates: Sequence[str], taken: set) -> str:
    """The first candidate name not taken, else the first with a number appended."""
    for c in candidates:
        if c not in taken:
            return c
    k = 1
    while f"{candidates[0]}{k}" in taken:
        k += 1
    return f"{candidates[0]}{k}"


def _build(args) -> tuple:
    """Parse the expression, add the loss, return (loss-or-output node, wrt nodes, feeds, symbol)."""
    from . import losses
    from .ops import var
    from .parse import parse

    wrt_names = _names(args.wrt, "--wrt")
    values = _values(getattr(args, "values", None))
    target_name = args.target if args.target is not None else "y"
    if args.target is not None and not args.loss:
        raise UsageError("--target only applies with --loss (it names the loss's target variable)")
    if not target_name.isidentifier() or target_name.startswith("_"):
        raise UsageError(f"--target: {target_name!r} is not a name (letters, digits and _, not first)")
    parsed = parse(args.expr, params=wrt_names, values=values)
    taken = set(parsed.names) | ({target_name} if args.loss else set())
    # the output's name in formulas and drawings, never one of the user's names (a bare leaf keeps its own)
    node = parsed.node
    symbol = node.name if node.name else _fresh(("f", "out", "output"), taken)
    out = node if node.is_leaf else node.named(symbol)
    if args.loss:
        target = parsed.names.get(target_name)
        if target is None:
            target = var(target_name)
        symbol = _fresh(("L", "loss"), taken | {out.name})
        out = getattr(losses, args.loss)(parsed.node, target, name=symbol)
        parsed.names.setdefault(target_name, target)
    for n in wrt_names:
        if n not in parsed.names:
            raise UsageError(f"--wrt: {n!r} does not appear in the expression {parsed.text!r}")
    unknown = sorted(set(values) - set(parsed.names))
    if unknown:
        raise UsageError(f"--values: {', '.join(unknown)} not in the expression")
    wrt = [parsed.names[n] for n in wrt_names]
    feeds = {parsed.names[k]: v for k, v in values.items() if parsed.names[k].kind == "var"}
    if values:
        missing = sorted(n for n, node in parsed.names.items() if node.kind == "var" and n not in values)
        if missing:
            raise UsageError(f"--values: give a value for {', '.join(missing)} too")
    return out, wrt, feeds if values else None, symbol


def _evaluate(nodes: list, feeds: dict) -> list:
    """Values of ``nodes`` with NumPy's floating-point warnings off (a non-finite value is reported)."""
    import numpy as np

    from .evaluate import evaluate
    with np.errstate(all="ignore"):
        return evaluate(nodes, feeds)


def _cmd_grad(args) -> int:
    from .autodiff import grad
    from .formulas import chain_rule, latex
    from .formulas.build import formula_with_definitions
    from .formulas.printing import join_pretty, to_latex

    out, wrt, feeds, symbol = _build(args)
    if not wrt:
        if not any(n.kind in ("var", "param") for n in _leaves(out)):
            raise UsageError(f"the expression {args.expr.strip()!r} has no variables to differentiate")
        raise UsageError("--wrt: name at least one variable to differentiate with respect to")
    grads = grad(out, wrt)
    nums = _evaluate([out] + grads, feeds) if feeds is not None else None
    d = r"\frac{\partial %s}{\partial %s}" if args.latex else "∂%s/∂%s"
    lhs = [symbol] + [d % (symbol, w.name) for w in wrt]
    for i, node in enumerate([out] + grads):
        value = [f" = {float(nums[i]):.6g}"] if nums else []
        expr, defs = formula_with_definitions(node)
        if args.latex:
            print(f"{lhs[i]} = {latex(expr)}" + "".join(value))
        elif args.pretty:
            print(join_pretty([f"{lhs[i]} = ", expr] + value))
        else:
            print(f"{lhs[i]} = {expr}" + "".join(value))
        if defs:  # a graph too deep for one formula is written in intermediates
            print("  where")
            for s, e in defs:
                if args.latex:
                    print(f"  {to_latex(s)} = {to_latex(e)}")
                elif args.pretty:
                    print(join_pretty(["    ", s, " = ", e]))
                else:
                    print(f"    {s} = {e}")
    if nums:
        bad = [f"{lhs[i]} = {float(v):g}" for i, v in enumerate(nums) if not math.isfinite(float(v))]
        if bad:
            print(f"symgrad grad: warning: not finite at these values: {', '.join(bad)}", file=sys.stderr)
    if args.chain:
        for w in wrt:
            print()
            cr = chain_rule(out, w, feeds=feeds)
            print(cr.latex() if args.latex else str(cr))
    if args.stats:
        from .formula_size import formula_stats
        for w in wrt:
            print()
            print(formula_stats(out, w))
    return 0


def _leaves(node) -> list:
    from .graph import Graph
    return Graph(node).leaves


def _cmd_draw(args) -> int:
    from .files import check_target
    from .render import draw, render

    check_target(args.output, "-o")  # a path that cannot be written fails before the drawing is made
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UsageError(f"--timeout: expected a positive number of seconds, got {args.timeout:g}")
    out, wrt, feeds, _ = _build(args)
    if args.backward and not wrt:
        raise UsageError("--backward needs --wrt (the variables whose gradients to draw)")
    if wrt and not args.backward:
        raise UsageError("--wrt only applies with --backward (it names the variables whose gradients to draw)")
    kwargs = {"backward": args.backward, "values": feeds, "rankdir": args.rankdir, "formulas": args.formulas}
    if wrt:
        kwargs["wrt"] = wrt
    dot = draw(out, **kwargs)
    path = render(dot, args.output, **({"timeout": args.timeout} if args.timeout is not None else {}))
    print(f"wrote {path}")
    return 0


def _cmd_gallery(args) -> int:
    from .showcase import run

    try:  # run raises only before any example runs: no gallery folder, or an --only that matches none
        results = run(args.out, only=args.only, smoke=args.smoke, gallery_dir=args.gallery_dir)
    except SymgradError as e:
        raise UsageError(str(e)) from None
    failed = [r.name for r in results if r.returncode != 0]
    print(f"wrote {args.out}/index.html ({len(results)} examples" + (f", {len(failed)} failed)" if failed else ")"))
    return 1 if failed else 0


def _debug_arg(p: argparse.ArgumentParser, default=argparse.SUPPRESS) -> None:
    p.add_argument("--debug", action="store_true", default=default,
                   help="show the Python traceback of an unexpected error")


def _expr_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("expr", help='expression, e.g. "sigmoid(w*x + b)" (functions: sigmoid tanh relu softplus '
                                'exp log sqrt abs sin cos leaky_relu maximum; operators + - * / ** ^ @)')
    p.add_argument("--wrt", help="comma-separated names to differentiate with respect to (they become parameters)")
    p.add_argument("--loss", choices=LOSSES, help="wrap the expression in a loss against --target")
    p.add_argument("--target", help="name of the target variable for --loss (default: y)")
    p.add_argument("--values", help="numbers for every name, e.g. x=1.5,w=0.2,b=0.1")
    _debug_arg(p)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="symgrad", description="Print gradient formulas, draw computation graphs, "
                                  "and run the gallery of symgrad examples.")
    _debug_arg(top, default=False)
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    g = sub.add_parser("grad", help="print gradient formulas of an expression",
                       description="Print the gradient formulas of an expression (optionally inside a loss).")
    _expr_args(g)
    style = g.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true", help="print LaTeX")
    style.add_argument("--pretty", action="store_true", help="print 2-D unicode")
    g.add_argument("--chain", action="store_true", help="also print the chain-rule paths")
    g.add_argument("--stats", action="store_true", help="also print the size of each gradient: operation counts "
                                                         "of its closed form, after sympy.cse, in named "
                                                         "intermediates, its backward graph, and sympy.diff's")
    g.set_defaults(func=_cmd_grad)
    d = sub.add_parser("draw", help="draw the computation graph of an expression",
                       description="Draw the forward (and backward) graph of an expression.")
    _expr_args(d)
    d.add_argument("-o", "--output", default="graph.svg", help="output file: .svg, .dot (always), .png/.pdf "
                                                                 "(need Graphviz's dot)")
    d.add_argument("--backward", action="store_true", help="draw the gradient graph too")
    d.add_argument("--formulas", action="store_true", help="show each node's short formula")
    d.add_argument("--rankdir", default="LR", choices=("LR", "TB", "RL", "BT"), help="layout direction")
    d.add_argument("--timeout", type=float, help="seconds Graphviz may take (default: 60)")
    d.set_defaults(func=_cmd_draw)
    y = sub.add_parser("gallery", help="run the gallery and write index.html",
                       description="Run every gallery example and write an index.html that shows them.")
    y.add_argument("--out", default="_out/gallery", help="output folder (default: _out/gallery)")
    y.add_argument("--only", help="run one example, by number (03) or name")
    y.add_argument("--smoke", action="store_true", help="fast mode: fewer epochs and smaller data")
    y.add_argument("--gallery-dir", help="folder of gallery scripts (default: the repository's gallery/)")
    _debug_arg(y)
    y.set_defaults(func=_cmd_gallery)
    return top


def _is_option(arg: str, values: set, flags: set) -> bool:
    """Whether argparse reads ``arg`` as an option (a known one, an abbreviation, ``--opt=value``, ``-oFILE``)."""
    name = arg.split("=", 1)[0]
    if name in values or name in flags:
        return True
    if arg.startswith("--"):
        return any(o.startswith(name) for o in values | flags if o.startswith("--"))
    return arg[:2] in values  # a short option with its value attached


def expression_first(argv: list[str]) -> list[str]:
    """``argv`` with an expression that starts with ``-`` (``-x``, ``-2*w``) moved after ``--``, where
    argparse reads it as the expression rather than as an unknown option."""
    start = 0
    while start < len(argv) and argv[start] in ("--debug", "-h", "--help"):  # the top level's own options
        start += 1
    if start >= len(argv) or argv[start] not in _OPTIONS or "--" in argv:
        return argv
    values, flags = _OPTIONS[argv[start]]
    i = start + 1
    while i < len(argv):
        arg = argv[i]
        if arg in values or (arg.startswith("--") and "=" not in arg and _is_option(arg, values, set())):
            i += 2  # the option's value, whatever it looks like, is argparse's to judge
            continue
        if arg.startswith("-") and arg not in ("-", "--") and not _is_option(arg, values, flags):
            return argv[:i] + argv[i + 1:] + ["--", arg]
        i += 1
    return argv


def _stderr(line: str) -> None:
    """Print a line to stderr, whatever characters it holds and the stream can encode."""
    try:
        print(line, file=sys.stderr)
    except UnicodeEncodeError:
        encoding = getattr(sys.stderr, "encoding", None) or "ascii"
        print(line.encode(encoding, "backslashreplace").decode(encoding, "replace"), file=sys.stderr)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (argparse exits with 2 on a malformed command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    args = p.parse_args(expression_first(argv))
    command = args.command
    debug = bool(getattr(args, "debug", False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = args.func(args)
        except (UsageError,) + USAGE_ERRORS as e:
            _stderr(f"symgrad {command}: error: {e}")
            code = 2
        except SymgradError as e:
            _stderr(f"symgrad {command}: {type(e).__name__}: {e}")
            code = 1
        except KeyboardInterrupt:
            _stderr(f"symgrad {command}: interrupted")
            code = 130
        except Exception as e:  # noqa: BLE001  the one place that turns a bug into a message
            if debug:
                import traceback
                traceback.print_exc()
            hint = "" if debug else " (run again with --debug to see the traceback)"
            _stderr(f"symgrad {command}: internal error: {type(e).__name__}: {_one_line(e)}")
            _stderr(f"symgrad {command}: this is a bug in symgrad; please report it with the command line{hint}")
            code = 1
    seen = set()
    for w in caught:  # one clean line each: no file, no line number
        line = f"symgrad {command}: warning: {_one_line(w.message)}"
        if not issubclass(w.category, _QUIET) and line not in seen:
            seen.add(line)
            _stderr(line)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
