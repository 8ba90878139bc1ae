"""Files under stress: killed saves leave nothing behind for long, unwritable output paths give a
typed OutputError naming the path and the reason (exit status 2 in the CLI), and crafted or
damaged .npz files give a StateError before anything large is allocated."""
import io
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad import files
from symgrad.cli import main
from symgrad.errors import OutputError, StateError
from symgrad.io import META_KEY

ROOT = Path(__file__).resolve().parent.parent


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _start_writer(script: str) -> subprocess.Popen:
    """A Python process running ``script``; it prints "ready" once it is stuck mid-write."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"the writer did not start: {line!r} {proc.stderr.read()}")
    return proc


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()


# ------------------------------------------------------------ item 3: temporary files of killed writers
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_save_killed_mid_write_leaves_the_target_intact_and_the_next_save_removes_its_temporary(tmp_path):
    target = tmp_path / "model.npz"
    first = {"w": np.arange(6.0)}
    sg.save(target, first)
    # a 4 MB save, killed after its first array is written: the temporary file is half full
    proc = _start_writer(f"""
        import sys, time, numpy as np, symgrad as sg
        write = np.lib.format.write_array
        def slow(*args, **kwargs):
            write(*args, **kwargs)
            if args[1].size > 1000:
                print("ready", flush=True)
                time.sleep(60)
        np.lib.format.write_array = slow
        sg.save({str(target)!r}, {{"a": np.ones(250_000), "b": np.ones(250_000)}})
    """)
    _kill(proc)
    left = _temporaries(tmp_path)
    assert len(left) == 1 and left[0].startswith(".model.npz~") and f".{proc.pid}." in left[0]
    assert (tmp_path / left[0]).stat().st_size > 2_000_000
    assert np.array_equal(sg.load(target)["w"], first["w"])  # the old file survived the kill
    sg.save(target, {"w": np.arange(3.0)})
    assert _temporaries(tmp_path) == []
    assert np.array_equal(sg.load(target)["w"], [0.0, 1.0, 2.0])


@pytest.mark.skipif(os.name != "posix", reason="process liveness by pid")
def test_temporary_file_of_a_live_writer_survives_other_writes_of_the_same_target(tmp_path):
    target = tmp_path / "page.html"
    proc = _start_writer(f"""
        import time
        from symgrad.files import atomic_open
        with atomic_open({str(target)!r}, "w") as f:
            f.write("half a page")
            f.flush()
            print("ready", flush=True)
            time.sleep(60)
    """)
    try:
        live = _temporaries(tmp_path)
        assert len(live) == 1
        files.atomic_write(target, "another writer's page")
        assert _temporaries(tmp_path) == live  # still being written: left alone
        assert target.read_text() == "another writer's page"
    finally:
        _kill(proc)
    files.atomic_write(target, "the next page")  # its writer is gone now
    assert _temporaries(tmp_path) == [] and target.read_text() == "the next page"


def test_stale_temporaries_are_recognised_per_target_by_pid_host_and_age(tmp_path, monkeypatch):
    target = tmp_path / "m.npz"
    tag, host, me = files._target_tag("m.npz"), files._HOST, os.getpid()
    other_host = "0000" if host != "0000" else "ffff"
    dead = 2 ** 22 + 12345  # above Linux's default pid_max: no such process
    monkeypatch.setattr(files, "_pid_alive", lambda pid: pid != dead)
    hour_ago = time.time() - 2 * files.STALE_AFTER
    made = {
        f".m.npz~{tag}.{host}.{dead}.abcdef.tmp": (None, True),         # dead writer
        f".m.npz~{tag}.{host}.{me}.abcdef.tmp": (None, True),           # this process, not writing it
        f".m.npz~{tag}.{host}.1.abcdef.tmp": (None, False),             # live writer
        f".m.npz~{tag}.{host}.1.fedcba.tmp": (hour_ago, True),          # live pid, untouched: pid reused
        f".m.npz~{tag}.{other_host}.{dead}.abcdef.tmp": (None, False),  # another machine: only age tells
        f".m.npz~{tag}.{other_host}.1.abcdef.tmp": (hour_ago, True),
        ".m.npz.0123456789ab.tmp": (hour_ago, True),                    # before temp names had pids
        ".m.npz.ba9876543210.tmp": (None, False),
        f".n.npz~{files._target_tag('n.npz')}.{host}.{dead}.abcdef.tmp": (None, False),  # another target
        f".m.npz~{'0' * 12}.{host}.{dead}.abcdef.tmp": (None, False),   # label fits, hash does not
        ".m.npz.notes.tmp": (hour_ago, False),                          # a user's own file
    }
    for name, (mtime, _) in made.items():
        (tmp_path / name).write_text("partial")
        if mtime:
            os.utime(tmp_path / name, (mtime, mtime))
    sg.save(target, {"w": np.zeros(2)})
    assert _temporaries(tmp_path) == sorted(n for n, (_, gone) in made.items() if not gone)
    assert np.array_equal(sg.load(target)["w"], [0.0, 0.0])


def test_failed_write_removes_its_temporary_file_and_keeps_the_old_target(tmp_path):
    target = tmp_path / "m.npz"
    sg.save(target, {"w": np.ones(3)})
    with pytest.raises(StateError, match="non-numeric"):
        sg.save(target, {"w": np.ones(3), "v": np.array(["text"])})
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(OutputError, match="it is a folder"):
        sg.save(tmp_path / "dir.npz", {"w": np.ones(3)})
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_open(target) as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert _temporaries(tmp_path) == [] and np.array_equal(sg.load(target)["w"], np.ones(3))


# ------------------------------------------------------------ item 9: unwritable output paths
def test_temporary_name_is_short_so_any_target_name_that_fits_can_be_written(tmp_path):
    name = "m" * 246 + ".npz"  # 250 characters: fits (255), with a ".<name>.<hex>.tmp" suffix it did not
    sg.save(tmp_path / name, {"w": np.arange(2.0)})
    assert np.array_equal(sg.load(tmp_path / name)["w"], [0.0, 1.0])
    files.atomic_write(tmp_path / ("t" * 250), "text")
    assert (tmp_path / ("t" * 250)).read_text() == "text"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name, "t" * 250]
    with pytest.raises(OutputError, match="the file name is 256 bytes long, this file system allows 255"):
        sg.save(tmp_path / ("m" * 252 + ".npz"), {"w": np.arange(2.0)})


def _unwritable(tmp_path: Path, case: str) -> tuple[Path, str]:
    (tmp_path / "file.txt").write_text("a file")
    (tmp_path / "folder.svg").mkdir()
    return {
        "missing folder": (tmp_path / "nowhere" / "out.svg", "the folder '.*nowhere' does not exist"),
        "file as folder": (tmp_path / "file.txt" / "sub" / "out.svg", "'.*file.txt' is a file, not a folder"),
        "folder as target": (tmp_path / "folder.svg", "it is a folder"),
        "/sys": (Path("/sys/symgrad-test.svg"), "permission denied in '/sys'"),
    }[case]


CASES = ["missing folder", "file as folder", "folder as target", "/sys"]


@pytest.mark.parametrize("case", CASES)
def test_unwritable_output_path_raises_output_error_naming_path_and_reason(tmp_path, case):
    path, reason = _unwritable(tmp_path, case)
    if case == "/sys" and not os.path.isdir("/sys/kernel"):
        pytest.skip("no sysfs here")
    x = sg.var("x")
    for write in (lambda: sg.save(path, {"w": np.zeros(2)}), lambda: sg.render(sg.draw(x * x), path, format="dot"),
                  lambda: files.atomic_write(path, "text")):
        with pytest.raises(OutputError, match=reason) as err:
            write()
        assert str(err.value).startswith(f"cannot write {str(path)!r}: ")
        assert isinstance(err.value, OSError) and isinstance(err.value, sg.SymgradError)
    assert not path.exists() or path.is_dir()


@pytest.mark.parametrize("case", CASES)
def test_draw_to_an_unwritable_path_exits_2_with_one_line_naming_it(tmp_path, capsys, case):
    path, reason = _unwritable(tmp_path, case)
    if case == "/sys" and not os.path.isdir("/sys/kernel"):
        pytest.skip("no sysfs here")
    assert main(["draw", "w*x", "-o", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("symgrad draw: error: cannot write") and str(path) in err


def test_gallery_into_a_file_exits_2_before_running_anything(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("a file")
    for out, says in [(tmp_path / "file.txt", "it is a file, not a folder"),
                      (tmp_path / "file.txt" / "gallery", "'.*file.txt' is a file, not a folder")]:
        assert main(["gallery", "--out", str(out), "--only", "01", "--smoke"]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""  # no example ran
        line = captured.err.strip()
        assert "\n" not in line and line.startswith("symgrad gallery: error:") and str(out) in line
        assert re.search(says, line)
    assert (tmp_path / "file.txt").read_text() == "a file"


def test_save_and_load_refuse_arguments_of_the_wrong_type(tmp_path):
    model = {"w": np.zeros(2)}
    with pytest.raises(OutputError, match="save: path must be a str or os.PathLike, got int"):
        sg.save(3, model)
    with pytest.raises(StateError, match="compress must be True or False, got 'yes'"):
        sg.save(tmp_path / "m.npz", model, compress="yes")
    with pytest.raises(StateError, match="value for 'w' is not an array"):
        sg.save(tmp_path / "m.npz", {"w": [[1.0], [1.0, 2.0]]})
    assert list(tmp_path.iterdir()) == []
    sg.save(tmp_path / "m.npz", model)
    with pytest.raises(StateError, match="load: path must be a str or os.PathLike, got NoneType"):
        sg.load(None)
    with pytest.raises(StateError, match="load: path must be a str or os.PathLike, got bytes"):
        sg.load(os.fsencode(tmp_path / "m.npz"))
    with pytest.raises(StateError, match="into must be a Module, got dict"):
        sg.load(tmp_path / "m.npz", into={})
    with pytest.raises(OutputError, match="data must be bytes or str, got int"):
        files.atomic_write(tmp_path / "x.txt", 42)
    with pytest.raises(OutputError, match="mode must be 'wb' or 'w', got 'a'"):
        with files.atomic_open(tmp_path / "x.txt", "a"):
            pass
    with pytest.raises(OutputError, match="NUL"):
        files.atomic_write(str(tmp_path / "x\0.txt"), "text")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


# ------------------------------------------------------------ item 10: crafted .npz files
def _meta(**over) -> np.ndarray:
    meta = {"format": "symgrad.params", "version": 1, "class": None, "config": None, "names": ["w"],
            "shapes": [[2]]}
    meta.update(over)
    return np.array(json.dumps(meta))


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
    return buf.getvalue()


def _write_members(path: Path, members: dict, compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for member, data in members.items():
            zf.writestr(member, data if isinstance(data, bytes) else _npy(data))
    return path


def _load_small(path: Path):
    """sg.load, asserting it allocated little whatever the file claims."""
    tracemalloc.start()
    try:
        return sg.load(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 50_000_000, peak


def test_load_refuses_a_forged_npy_header_before_allocating(tmp_path):
    honest = _npy(np.zeros(2))
    forged = honest.replace(b"(2,)", b"(1000000000000,)").replace(b" " * 12 + b"\n", b"\n", 1)  # 7.3 TiB
    assert np.lib.format.read_array_header_1_0(io.BytesIO(forged[8:]))[0] == (10 ** 12,)
    path = _write_members(tmp_path / "m.npz", {META_KEY + ".npy": _meta(shapes=[[10 ** 12]]), "w.npy": forged})
    with pytest.raises(StateError, match=r"member 'w.npy' declares shape \(1000000000000,\) of float64 "
                                         r"\(8000000000000 bytes\) but holds 16 bytes"):
        _load_small(path)


def test_load_refuses_forged_zip_sizes_before_allocating(tmp_path):
    n = (2 ** 32 - 256) // 8  # an array of almost 4 GiB, consistent with the forged member size
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (n,)})
    header = buf.getvalue()
    assert len(header) == 128
    data = header + bytes(4096)
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        path = _write_members(tmp_path / f"m{compression}.npz",
                              {META_KEY + ".npy": _meta(shapes=[[n]]), "w.npy": data}, compression)
        raw = bytearray(path.read_bytes())
        central = raw.rindex(b"PK\x01\x02")  # the last central-directory entry is w.npy's
        raw[central + 24:central + 28] = struct.pack("<I", 128 + 8 * n)  # its uncompressed size
        path.write_bytes(bytes(raw))
        with pytest.raises(StateError, match=r"member 'w.npy' claims \d+ bytes from \d+ stored"):
            _load_small(path)


def test_load_refuses_parameter_names_that_save_refuses(tmp_path):
    with pytest.raises(StateError, match="not a valid parameter name"):
        sg.save(tmp_path / "x.npz", {"../../etc/passwd": np.zeros(2)})
    path = _write_members(tmp_path / "evil.npz", {META_KEY + ".npy": _meta(names=["../../etc/passwd"]),
                                                  "../../etc/passwd.npy": np.zeros(2)})
    with pytest.raises(StateError, match=r"evil.npz.*member '../../etc/passwd.npy': it is not a valid "
                                         r"parameter name"):
        sg.load(path)
    path = _write_members(tmp_path / "meta.npz", {META_KEY + ".npy": _meta(names=["a b"]), "w.npy": np.zeros(2)})
    with pytest.raises(StateError, match="the metadata names 'a b', which is not a valid parameter name"):
        sg.load(path)


@pytest.mark.parametrize("members, match", [
    ({META_KEY + ".npy": _meta(), "w": b"raw bytes"}, "member 'w' is not an .npy array"),  # was AttributeError
    ({META_KEY: b"{}", "w.npy": np.zeros(2)}, "member 'symgrad-meta' is not an .npy array"),
    ({META_KEY + ".npy": _meta(**{"class": "MLP", "config": {}}), "w.npy": np.zeros(2)},  # was KeyError
     r"MLP config \{\} does not build a model \(missing \['sizes'\]\)"),
    ({META_KEY + ".npy": _meta(**{"class": "MLP", "config": {"sizes": [1, 2], "seed": {"a": 1}}}),
      "w.npy": np.zeros(2)}, r"seed = \{'a': 1\} is not a plain value"),
    ({META_KEY + ".npy": _meta(**{"class": "Linear", "config": {"in_features": 1, "out_features": 1,
                                                                "shell": "rm"}}), "w.npy": np.zeros(2)},
     r"unknown settings \['shell'\]"),
    ({META_KEY + ".npy": _meta(), "w.npy": np.zeros(2, dtype=[("a", "<f8")])}, "dtype .* not a numeric dtype"),
    ({META_KEY + ".npy": _meta(), "w.npy": np.zeros(2, dtype=complex)}, "complex128, not a numeric dtype"),
    ({META_KEY + ".npy": _meta(), "w.npy": b"\x93NUMPY\x09\x00" + b"x" * 20}, "no valid .npy header"),
    ({META_KEY + ".npy": _meta(), "w.npy": _npy(np.zeros(2))[:-3]}, "declares shape .* but holds 13 bytes"),
    ({META_KEY + ".npy": _meta(names=["w", "w"], shapes=[[2], [2]]), "w.npy": np.zeros(2)},
     "names a parameter twice"),
    ({META_KEY + ".npy": _meta(shapes=[[-2]]), "w.npy": np.zeros(2)}, "names/shapes metadata is malformed"),
    ({META_KEY + ".npy": np.array("[" * 100_000), "w.npy": np.zeros(2)}, "not valid JSON"),
])
def test_load_refuses_crafted_members_with_a_state_error_naming_file_and_member(tmp_path, members, match):
    path = _write_members(tmp_path / "crafted.npz", members)
    with pytest.raises(StateError, match=match) as err:
        sg.load(path)
    assert "crafted.npz" in str(err.value)


def test_load_refuses_duplicate_and_encrypted_members(tmp_path):
    path = tmp_path / "dup.npz"
    with pytest.warns(UserWarning, match="Duplicate name"):
        _write_members(path, {META_KEY + ".npy": _meta(), "w.npy": np.zeros(2)})
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("w.npy", _npy(np.ones(2)))
    with pytest.raises(StateError, match="member 'w.npy' appears twice"):
        sg.load(path)
    path = _write_members(tmp_path / "enc.npz", {META_KEY + ".npy": _meta(), "w.npy": np.zeros(2)})
    raw = bytearray(path.read_bytes())
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 8] |= 1  # the "encrypted" flag of w.npy
    path.write_bytes(bytes(raw))
    with pytest.raises(StateError, match="member 'w.npy' is encrypted"):
        sg.load(path)


@pytest.mark.parametrize("compress", [False, True])
def test_random_corruptions_of_a_saved_file_load_bitwise_or_raise_state_error(tmp_path, compress):
    model = sg.nn.MLP([3, 4, 2], seed=0)
    sg.save(tmp_path / "good.npz", model, compress=compress)
    good, want = (tmp_path / "good.npz").read_bytes(), model.state_dict()
    rng = random.Random(7)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(300):
        raw = bytearray(good)
        for _ in range(rng.choice([1, 2, 4])):
            at = rng.randrange(len(raw))
            roll = rng.random()
            if roll < 0.6:
                raw[at] = rng.randrange(256)
            elif roll < 0.8:
                raw[at:at + 4] = struct.pack("<I", rng.choice([0xFFFFFFFF, 1 << 30, 0, rng.randrange(1 << 32)]))
            else:
                del raw[at:at + rng.randrange(1, 40)]
        (tmp_path / "bad.npz").write_bytes(bytes(raw))
        try:
            got = sg.load(tmp_path / "bad.npz")
        except StateError:
            outcomes["refused"] += 1
            continue
        outcomes["loaded"] += 1  # a byte the reader ignores (a timestamp, a comment): the values are exact
        state = got.state_dict() if isinstance(got, sg.nn.Module) else got
        assert list(state) == list(want) and all(a.tobytes() == want[k].tobytes() for k, a in state.items())
    assert outcomes["refused"] > 200

