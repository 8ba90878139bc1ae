"""Run the gallery scripts and gather their output into one ``index.html``.

Each gallery script is a numbered file ``gallery/NN_topic.py`` with a
``main(argv)`` that takes ``--out DIR`` (and ``--smoke`` for a fast run),
prints what it shows and writes SVG, PNG and text files into ``DIR``.
The index shows every example's typeset formulas, printed text, drawings,
plots and LaTeX source; it needs no network to view.  Formulas are MathML,
typeset by the browser itself: a script writes them with
``gallery/_common.formulas`` into ``<name>.math.html`` fragments (each
formula with its unicode text and LaTeX in a fold-out), which the index
puts at the top of the example's section.
"""
from __future__ import annotations

import dataclasses
import html
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from .errors import SymgradError
from .files import atomic_write, ensure_folder

SCRIPT_RE = re.compile(r"^(\d\d)_([a-z0-9_]+)\.py$")
#: the ending of the HTML fragments of typeset formulas a gallery script writes (``gallery/_common.formulas``)
MATH_SUFFIX = ".math.html"


def find_gallery(directory: str | os.PathLike | None = None) -> Path:
    """The gallery folder: ``directory``, else ``gallery/`` next to the package."""
    candidates = [Path(directory)] if directory else [Path(__file__).resolve().parent.parent / "gallery",
                                                      Path.cwd() / "gallery"]
    for c in candidates:
        if c.is_dir() and any(SCRIPT_RE.match(p.name) for p in c.iterdir()):
            return c
    raise SymgradError(f"no gallery folder found (looked in {', '.join(str(c) for c in candidates)}); "
                       f"run from a clone of symgrad or pass --gallery-dir")


def scripts(gallery: Path, only: str | None = None) -> list[Path]:
    found = sorted(p for p in gallery.iterdir() if SCRIPT_RE.match(p.name))
    if only:
        picked = [p for p in found if only in (p.stem, SCRIPT_RE.match(p.name).group(1),
                                                SCRIPT_RE.match(p.name).group(2))]
        if not picked:
            names = ", ".join(p.stem for p in found)
            raise SymgradError(f"no gallery example matches {only!r}; examples: {names}")
        return picked
    return found


@dataclasses.dataclass
class Result:
    name: str
    out: Path
    returncode: int
    seconds: float
    stdout: str
    stderr: str


def run(out: str | os.PathLike, *, only: str | None = None, smoke: bool = False,
        gallery_dir: str | os.PathLike | None = None, timeout: float = 600.0, echo: bool = True) -> list[Result]:
    """Run the gallery scripts (each in its own process) and write ``out/index.html``.

    ``out`` is created if missing; :class:`~symgrad.errors.OutputError` if it cannot be
    (a file in the way, no permission), before any example runs.  A missing gallery or an
    ``only`` that matches no example raises :class:`~symgrad.errors.SymgradError` before
    anything is created.
    """
    todo = scripts(find_gallery(gallery_dir), only)
    out = ensure_folder(out, "gallery --out")
    results = []
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONIOENCODING="utf-8")
    for script in todo:
        target = ensure_folder(out / script.stem)
        cmd = [sys.executable, str(script), "--out", str(target)] + (["--smoke"] if smoke else [])
        if echo:
            print(f"== {script.stem}", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            rc, so, se = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as e:
            rc, so, se = -1, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""), \
                f"timed out after {timeout} s"
        res = Result(script.stem, target, rc, time.perf_counter() - t0, so, se)
        atomic_write(target / "output.txt", so)
        if echo:
            print(so.rstrip())
            status = "ok" if rc == 0 else f"FAILED (exit {rc})"
            print(f"-- {script.stem}: {status} in {res.seconds:.1f} s", flush=True)
            if rc != 0:
                print(se.rstrip()[-3000:], file=sys.stderr)
        results.append(res)
    write_index(out, results)
    return results


def _title(name: str) -> str:
    m = SCRIPT_RE.match(name + ".py")
    words = m.group(2).replace("_", " ") if m else name
    return f"{m.group(1)} · {words}" if m else name


def collected(out: str | os.PathLike, only: str | None = None) -> list[Result]:
    """The results of an earlier :func:`run` into ``out``, read back from its folders (the printed text from
    each ``output.txt``), so the page can be written again without running anything; ``only`` picks one
    example (``"07"``, ``"07_optimizers"`` or ``"optimizers"``).

    :class:`~symgrad.errors.SymgradError` if ``out`` holds no gallery output or nothing matches ``only``.
    """
    out = Path(out)
    found = sorted(p for p in out.iterdir() if p.is_dir() and SCRIPT_RE.match(p.name + ".py")) if out.is_dir() else []
    if only:
        found = [p for p in found if only in (p.name, p.name[:2], p.name[3:])]
    if not found:
        raise SymgradError(f"no gallery output{f' for {only!r}' if only else ''} in {out}; run `symgrad gallery "
                           f"--out {out}` first")
    return [Result(p.name, p, 0, 0.0, (p / "output.txt").read_text(encoding="utf-8", errors="replace")
                   if (p / "output.txt").is_file() else "", "") for p in found]


def write_index(out: Path, results: list[Result], filename: str = "index.html") -> Path:
    """An ``index.html`` (or ``filename``) showing every example's typeset formulas, text, images and LaTeX."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>symgrad gallery</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>symgrad gallery</h1>",
             "<p>Formulas are typeset MathML (each with its unicode text and LaTeX source under "
             "<em>text · LaTeX</em>); drawings are SVG, plots PNG. Everything on this page is local.</p>",
             "<nav><ul>"]
    for r in results:
        parts.append(f'<li><a href="#{html.escape(r.name)}">{html.escape(_title(r.name))}</a></li>')
    parts.append("</ul></nav>")
    for r in results:
        status = "" if r.returncode == 0 else f' <span class="fail">failed (exit {r.returncode})</span>'
        parts.append(f'<section id="{html.escape(r.name)}"><h2>{html.escape(_title(r.name))}{status}</h2>')
        parts.append(f'<p class="meta">ran in {r.seconds:.1f} s · files in <code>{html.escape(r.out.name)}/</code></p>')
        files = sorted(p for p in r.out.iterdir() if p.is_file() and p.name != "output.txt")
        typeset = [p for p in files if p.name.endswith(MATH_SUFFIX)]
        if typeset:
            parts.append('<h3>Formulas</h3><div class="maths">')
            parts += [p.read_text(encoding="utf-8", errors="replace") for p in typeset]
            parts.append("</div>")
        if r.stdout.strip():
            parts.append(f"<h3>What it prints</h3><pre>{html.escape(r.stdout.rstrip())}</pre>")
        if r.returncode != 0 and r.stderr.strip():
            parts.append(f'<pre class="err">{html.escape(r.stderr.strip()[-3000:])}</pre>')
        images = [p for p in files if p.suffix in (".svg", ".png")]
        if images:
            parts.append('<div class="figs">')
            for p in images:
                rel = f"{r.out.name}/{p.name}"
                kind = "drawing" if p.suffix == ".svg" else "plot"  # drawings at full size, scrolled if wide
                parts.append(f'<figure class="{kind}"><a href="{html.escape(rel)}"><img src="{html.escape(rel)}" '
                             f'alt="{html.escape(p.stem)}"></a>'
                             f"<figcaption>{html.escape(p.name)} (click to open alone)</figcaption></figure>")
            parts.append("</div>")
        for p in files:
            if p.suffix in (".tex", ".txt", ".py"):
                text = p.read_text(encoding="utf-8", errors="replace")
                kind = "LaTeX source" if p.suffix == ".tex" else "text"
                parts.append(f"<details><summary>{html.escape(p.name)} ({kind})</summary>"
                             f"<pre>{html.escape(text[:20000])}</pre></details>")
        parts.append("</section>")
    parts.append("</body></html>")
    path = Path(out) / filename
    atomic_write(path, "\n".join(parts))
    return path


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #2b6cb0;padding-bottom:.2em}
h2{color:#2b6cb0;margin-top:2em;border-bottom:1px solid #ddd}
nav ul{columns:2;list-style:none;padding:0}nav a{color:#2b6cb0;text-decoration:none}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:.8em;overflow-x:auto;font-size:13px;
font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;white-space:pre}
pre.err{background:#fff5f5;border-color:#feb2b2}
.fail{color:#c53030;font-size:.8em}.meta{color:#666;font-size:.85em}
.figs{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0;border:1px solid #e1e4e8;padding:.5em;background:#fff;
max-width:100%;box-sizing:border-box;overflow-x:auto}figure img{max-width:100%;height:auto;display:block}
figure.drawing img{max-width:none}figcaption{font-size:.8em;color:#666}
details{margin:.5em 0}summary{cursor:pointer;color:#2b6cb0}
math{font-family:'Latin Modern Math','STIX Two Math','DejaVu Math TeX Gyre','Cambria Math',math;font-size:1.12em}
.maths{background:#fcfcfd;border:1px solid #e1e4e8;padding:.2em 1em}
.formula{overflow-x:auto;border-bottom:1px dotted #e1e4e8;padding:.1em 0}.formula:last-child{border-bottom:0}
.formula math[display=block]{margin:.5em 0}
details.src{margin:0 0 .4em}details.src summary{font-size:.75em;color:#888}
.caption{margin:.8em 0 0;font-weight:600;color:#444}.maths h4{margin:.8em 0 .2em}
"""
