"""A whole step's core calls its kernels by address (symgrad.backends.numba_link): the names it calls
must be published before Numba loads a cached core, and a core whose kernels' records are gone is
compiled again instead of loaded (loading it would crash the process)."""
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from symgrad.backends.numba_link import symbol  # noqa: E402

_STEP = """
import json, numpy as np, symgrad as sg
m = sg.nn.MLP([3, 8, 2], activation="sigmoid", seed=0)
X, Y = sg.var("X", shape=("batch", 3)), sg.var("Y", shape=("batch", 2))
step = sg.compile_step(sg.losses.mse(m(X), Y), sg.optim.Adam(lr=0.01), inputs=[X, Y], backend="numba")
rng = np.random.default_rng(0)
xs, ys = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
losses = [step(xs, ys) for _ in range(3)]
print(json.dumps({"whole": step.whole, "losses": losses, "hits": sum(step.core.stats.cache_hits.values()),
                  "W": m.parameters()[0].value.ravel().tolist()}))
"""


def _run(tmp_path):
    import json
    env = dict(os.environ, SYMGRAD_CACHE=str(tmp_path), SYMGRAD_NUMBA_CACHE="1")
    res = subprocess.run([sys.executable, "-c", _STEP], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_cached_core_calls_its_kernels_and_a_lost_record_recompiles_it(tmp_path):
    cold = _run(tmp_path)
    assert cold["whole"] and cold["hits"] == 0
    sigs = tmp_path / "numba" / "sigs"
    records = sorted(sigs.iterdir())
    assert records and all(list(d.glob("symgrad_kernel_*.pkl")) for d in records)
    cached = _run(tmp_path)  # the core from Numba's disk cache, its kernels' names published first
    assert cached["hits"] == 1
    np.testing.assert_allclose(cached["losses"], cold["losses"], rtol=0, atol=0)
    np.testing.assert_allclose(cached["W"], cold["W"], rtol=0, atol=0)
    # a kernel's record removed: the cached core is dropped and compiled again (its record written again)
    for f in records[0].iterdir():
        f.unlink()
    again = _run(tmp_path)
    assert again["hits"] == 0 and list(records[0].glob("symgrad_kernel_*.pkl"))
    np.testing.assert_allclose(again["losses"], cold["losses"], rtol=0, atol=0)
    # a damaged record: removed, the core compiled again; the run after that loads it from the cache
    damaged = next(records[1].glob("symgrad_kernel_*.pkl"))
    damaged.write_bytes(b"not a pickle")
    assert _run(tmp_path)["hits"] == 0
    assert _run(tmp_path)["hits"] == 1 and damaged.read_bytes() != b"not a pickle"


def test_published_names_differ_by_kernel_and_argument_types():
    from numba import types
    c2 = types.Array(types.float64, 2, "C")
    f2 = types.Array(types.float64, 2, "F")
    c2_32 = types.Array(types.float32, 2, "C")
    ro = types.Array(types.float64, 2, "C", readonly=True)
    names = {symbol(k, sig) for k in ("aaa_core", "bbb_core")
             for sig in [(c2, c2), (f2, c2), (c2_32, c2_32), (ro, c2), (types.float64, c2), (types.float32, c2)]}
    assert len(names) == 12 and all(n.startswith("symgrad_kernel_") and n.isidentifier() for n in names)
    assert symbol("aaa_core", (c2, c2)) == symbol("aaa_core", (types.Array(types.float64, 2, "C"),) * 2)
