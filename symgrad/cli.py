"""The ``symgrad`` command line: gradient formulas, drawings, the gallery.

Expressions are read by :mod:`symgrad.parse` (a whitelist over Python's
``ast``; nothing is evaluated).  Usage errors, including a bad expression,
exit with status 2; a failed gallery example exits with 1.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .errors import SymgradError

LOSSES = ("mse", "mae", "bce", "bce_with_logits")


class UsageError(SymgradError):
    """Bad command-line input (exit status 2)."""


def _names(text: str | None, what: str) -> list[str]:
    if not text:
        return []
    names = [t.strip() for t in text.split(",") if t.strip()]
    for n in names:
        if not n.isidentifier():
            raise UsageError(f"{what}: {n!r} is not a name")
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
            out[name] = float(num)
        except ValueError:
            raise UsageError(f"--values: {num.strip()!r} (for {name}) is not a number") from None
    return out


def _build(args) -> tuple:
    """Parse the expression, add the loss, return (loss-or-output node, wrt nodes, feeds, symbol)."""
    from . import losses
    from .ops import var
    from .parse import parse

    wrt_names = _names(args.wrt, "--wrt")
    values = _values(getattr(args, "values", None))
    parsed = parse(args.expr, params=wrt_names, values=values)
    # the output's name in formulas and drawings (a bare leaf keeps its own)
    out = parsed.node if parsed.node.name else parsed.node.named("out" if "f" in parsed.names else "f")
    symbol = out.name
    if args.loss:
        target = parsed.names.get(args.target) or var(args.target)
        out = getattr(losses, args.loss)(parsed.node, target, name="L")
        parsed.names.setdefault(args.target, target)
        symbol = "L"
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


def _cmd_grad(args) -> int:
    from .autodiff import grad
    from .evaluate import evaluate
    from .formulas import chain_rule, formula, latex
    from .formulas.printing import join_pretty

    out, wrt, feeds, symbol = _build(args)
    if not wrt:
        raise UsageError("--wrt: name at least one variable to differentiate with respect to")
    grads = grad(out, wrt)
    nums = evaluate([out] + grads, feeds) if feeds is not None else None
    d = r"\frac{\partial %s}{\partial %s}" if args.latex else "∂%s/∂%s"
    lhs = [symbol] + [d % (symbol, w.name) for w in wrt]
    for i, node in enumerate([out] + grads):
        value = [f" = {float(nums[i]):.6g}"] if nums else []
        if args.latex:
            print(f"{lhs[i]} = {latex(node)}" + "".join(value))
        elif args.pretty:
            print(join_pretty([f"{lhs[i]} = ", formula(node)] + value))
        else:
            print(f"{lhs[i]} = {formula(node)}" + "".join(value))
    if args.chain:
        for w in wrt:
            print()
            cr = chain_rule(out, w, feeds=feeds)
            print(cr.latex() if args.latex else str(cr))
    return 0


def _cmd_draw(args) -> int:
    from .files import check_target
    from .render import draw, render

    check_target(args.output, "-o")  # a path that cannot be written fails before the drawing is made
    out, wrt, feeds, _ = _build(args)
    if args.backward and not wrt:
        raise UsageError("--backward needs --wrt (the variables whose gradients to draw)")
    kwargs = {"backward": args.backward, "values": feeds, "rankdir": args.rankdir, "formulas": args.formulas}
    if wrt:
        kwargs["wrt"] = wrt
    dot = draw(out, **kwargs)
    path = render(dot, args.output)
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


def _expr_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("expr", help='expression, e.g. "sigmoid(w*x + b)" (functions: sigmoid tanh relu softplus '
                                'exp log sqrt abs sin cos leaky_relu maximum; operators + - * / ** ^ @)')
    p.add_argument("--wrt", help="comma-separated names to differentiate with respect to (they become parameters)")
    p.add_argument("--loss", choices=LOSSES, help="wrap the expression in a loss against --target")
    p.add_argument("--target", default="y", help="name of the target variable for --loss (default: y)")
    p.add_argument("--values", help="numbers for every name, e.g. x=1.5,w=0.2,b=0.1")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="symgrad", description="Print gradient formulas, draw computation graphs, "
                                  "and run the gallery of symgrad examples.")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    g = sub.add_parser("grad", help="print gradient formulas of an expression",
                       description="Print the gradient formulas of an expression (optionally inside a loss).")
    _expr_args(g)
    style = g.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true", help="print LaTeX")
    style.add_argument("--pretty", action="store_true", help="print 2-D unicode")
    g.add_argument("--chain", action="store_true", help="also print the chain-rule paths")
    g.set_defaults(func=_cmd_grad)
    d = sub.add_parser("draw", help="draw the computation graph of an expression",
                       description="Draw the forward (and backward) graph of an expression.")
    _expr_args(d)
    d.add_argument("-o", "--output", default="graph.svg", help="output file: .svg, .dot (always), .png/.pdf "
                                                                 "(need Graphviz's dot)")
    d.add_argument("--backward", action="store_true", help="draw the gradient graph too")
    d.add_argument("--formulas", action="store_true", help="show each node's short formula")
    d.add_argument("--rankdir", default="LR", choices=("LR", "TB", "RL", "BT"), help="layout direction")
    d.set_defaults(func=_cmd_draw)
    y = sub.add_parser("gallery", help="run the gallery and write index.html",
                       description="Run every gallery example and write an index.html that shows them.")
    y.add_argument("--out", default="_out/gallery", help="output folder (default: _out/gallery)")
    y.add_argument("--only", help="run one example, by number (03) or name")
    y.add_argument("--smoke", action="store_true", help="fast mode: fewer epochs and smaller data")
    y.add_argument("--gallery-dir", help="folder of gallery scripts (default: the repository's gallery/)")
    y.set_defaults(func=_cmd_gallery)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except SymgradError as e:
        from .errors import ParseError, ShapeError, GraphError, FeedError, OutputError
        if isinstance(e, (UsageError, ParseError, ShapeError, GraphError, FeedError, OutputError)):
            print(f"symgrad {args.command}: error: {e}", file=sys.stderr)
            return 2
        print(f"symgrad {args.command}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
