"""Atomic file writes: every file symgrad writes (drawings, models, plots, pages) goes
through here, so a crash or a full disk never leaves a half-written file in place.

A write goes to a hidden temporary file in the target's folder and is renamed over the
target in one step.  The temporary name is short and of fixed shape whatever the
target's length (``.<up to 32 chars of the name>~<target hash>.<host>.<pid>.<random>.tmp``),
so a target name that fits the file system never fails because of the suffix, and the
next write of the same target recognises and removes temporary files a killed process
left behind: those whose process is gone, and any untouched for an hour.  A temporary
file that a live process (or another thread of this one) is still writing is left alone.

A path that cannot be written (missing folder, a file used as a folder, a folder as the
target, no permission, a read-only or full disk) raises :class:`~symgrad.errors.OutputError`
naming the path and the reason.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import IO, Iterator

from .errors import OutputError

__all__ = ["atomic_open", "atomic_write", "check_target", "ensure_folder", "remove_stale_temporaries"]

STALE_AFTER = 3600.0  # seconds untouched after which any temporary file of a target counts as abandoned
_LABEL_CHARS = 32     # how much of the target's name the temporary name repeats, for people reading `ls -a`
_TEMP_RE = re.compile(r"~(?P<target>[0-9a-f]{12})\.(?P<host>[0-9a-f]{4})\.(?P<pid>[0-9]{1,10})\.[0-9a-f]{6}\.tmp",
                      re.ASCII)
_LEGACY_RE = re.compile(r"\.[0-9a-f]{12}\.tmp", re.ASCII)  # `.<name>.<hex>.tmp`, written before the names had pids
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EIO} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT")
                                                                       else set())
_live: set[str] = set()  # temporary files this process is writing now
_live_lock = threading.Lock()


def _host_tag() -> str:
    return hashlib.blake2b(socket.gethostname().encode("utf-8", "surrogateescape"), digest_size=2).hexdigest()


_HOST = _host_tag()


def _target_tag(name: str) -> str:
    return hashlib.blake2b(os.fsencode(name), digest_size=6).hexdigest()


def _as_path(path: object, who: str) -> Path:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise OutputError(f"{who}: the path must be a str or os.PathLike, got {type(path).__name__}")
    if "\0" in path:
        raise OutputError(f"{who}: the path {path!r} contains a NUL character")
    if not path:
        raise OutputError(f"{who}: the path is empty")
    return Path(path)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long to ask about, a loop of links
        return False


def _exists(path: Path) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def _folder_problem(folder: Path) -> str:
    """Why ``folder`` cannot hold a new file: it, or a folder above it, is missing or is a file."""
    for above in [folder, *folder.parents]:
        if _is_dir(above):
            break
        if _exists(above):
            return f"{str(above)!r} is a file, not a folder"
    else:
        return f"the folder {str(folder)!r} does not exist"
    return f"the folder {str(folder)!r} does not exist" if above != folder else ""


def _reason(path: Path, err: OSError) -> str:
    """A short human reason for an OSError met while writing ``path``."""
    code = err.errno
    if code in (errno.ENOENT, errno.ENOTDIR):
        return _folder_problem(path.parent) or err.strerror or str(err)
    if code == errno.EISDIR or _is_dir(path):
        return "it is a folder"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied in {str(path.parent)!r}"
    if code == errno.EROFS:
        return "the file system is read-only"
    if code == errno.ENAMETOOLONG:
        return "the file name is too long for this file system"
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", None):
        return "no space left on the device"
    return err.strerror or str(err)


def output_error(path: str | os.PathLike, err: OSError) -> OutputError:
    """The :class:`OutputError` for an OSError met while writing ``path``."""
    p = Path(path)
    e = OutputError(f"cannot write {str(p)!r}: {_reason(p, err)}")
    e.errno, e.strerror, e.filename = err.errno, err.strerror, str(p)
    return e


def check_target(path: str | os.PathLike, who: str = "write") -> Path:
    """Check, before any work is spent making the data, that a file can be written at ``path``.

    Raises :class:`OutputError` when the path is not a string or path, is a folder, sits in a
    folder that is missing or is a file, or has a name longer than the file system allows.
    Returns the path.  (Permission and disk space show only when writing.)
    """
    p = _as_path(path, who)
    problem = _folder_problem(p.parent)
    if problem:
        raise OutputError(f"cannot write {str(p)!r}: {problem}")
    limit = 0
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no pathconf on Windows
        limit = os.pathconf(p.parent, "PC_NAME_MAX")
    size = len(os.fsencode(p.name))
    if 0 < limit < size:
        raise OutputError(f"cannot write {str(p)!r}: the file name is {size} bytes long, this file system "
                          f"allows {limit}")
    if _is_dir(p):
        raise OutputError(f"cannot write {str(p)!r}: it is a folder")
    return p


def ensure_folder(path: str | os.PathLike, who: str = "write") -> Path:
    """Create the folder ``path`` (and missing folders above it); OutputError if that is impossible."""
    p = _as_path(path, who)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write into {str(p)!r}: it is a file, not a folder") from None
    except OSError as e:
        problem = _folder_problem(p.parent) if e.errno in (errno.ENOENT, errno.ENOTDIR) else ""
        raise OutputError(f"cannot create the folder {str(p)!r}: {problem or _reason(p, e)}") from None
    return p


def _temp_name(target: Path) -> str:
    label = target.name[:_LABEL_CHARS]
    return f".{label}~{_target_tag(target.name)}.{_HOST}.{os.getpid()}.{secrets.token_hex(3)}.tmp"


def _pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` exists on this machine; None where that cannot be asked safely."""
    if os.name != "posix":  # os.kill(pid, 0) terminates the process on Windows
        return None
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    except (OverflowError, OSError):
        return None
    return True


def _is_stale(entry: os.DirEntry, target: Path) -> bool:
    """Whether ``entry`` is a temporary file of ``target`` that nobody is writing any more."""
    name = entry.name
    tail = name[1 + len(target.name[:_LABEL_CHARS]):]
    m = _TEMP_RE.fullmatch(tail) if name.startswith("." + target.name[:_LABEL_CHARS]) else None
    legacy = name.startswith("." + target.name) and _LEGACY_RE.fullmatch(name[1 + len(target.name):])
    if not m and not legacy:
        return False
    if m and m["target"] != _target_tag(target.name):
        return False
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    if not entry.is_file(follow_symlinks=False):
        return False
    here = m is not None and m["host"] == _HOST
    if here and int(m["pid"]) == os.getpid():  # ours: stale unless a thread of ours is writing it now
        with _live_lock:
            return os.path.abspath(entry.path) not in _live
    if time.time() - st.st_mtime > STALE_AFTER:  # also covers a dead writer's pid reused by a live process
        return True
    if not here:
        return False  # written on another machine (or by an old version): only age tells
    return _pid_alive(int(m["pid"])) is False


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed writer of ``path`` left in its folder; returns them."""
    target = Path(path)
    removed = []
    with contextlib.suppress(OSError):
        with os.scandir(target.parent if str(target.parent) else ".") as it:
            for entry in it:
                if entry.name.startswith(".") and entry.name.endswith(".tmp") and _is_stale(entry, target):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
    return removed


def _create_beside(path: Path) -> tuple[int, Path]:
    """A new, uniquely named file next to ``path``, with the permissions ``open`` would give it
    (0o666 less the umask: unlike mkstemp's owner-only 0o600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.with_name(_temp_name(path))
        try:
            with _live_lock:
                fd = os.open(tmp, flags, 0o666)
                _live.add(os.path.abspath(tmp))
            return fd, tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise output_error(path, e) from None
    raise OutputError(f"cannot write {str(path)!r}: could not create a temporary file beside it")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    On any error the temporary file is removed and ``path`` is left as it was.  Temporary
    files that killed writers of ``path`` left behind are removed first.

    Raises
    ------
    OutputError : ``path`` cannot be written (see the module docstring), or the disk filled
        up while writing.
    """
    if mode not in ("wb", "w"):
        raise OutputError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}")
    target = check_target(path, "atomic_open")
    remove_stale_temporaries(target)
    fd, tmp = _create_beside(target)
    in_block = False
    try:
        with os.fdopen(fd, mode, encoding=encoding if mode == "w" else None) as f:
            in_block = True
            yield f
            in_block = False
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:  # the caller's own errors pass through; ours and a full disk become OutputError
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if in_block and e.errno not in _WRITE_ERRNOS:
            raise
        raise output_error(target, e) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with _live_lock:
            _live.discard(os.path.abspath(tmp))


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write bytes, or text as UTF-8, to ``path`` atomically; returns the path."""
    if isinstance(data, str):
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(data)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        with atomic_open(path, "wb") as f:
            f.write(data)
    else:
        raise OutputError(f"atomic_write: data must be bytes or str, got {type(data).__name__} "
                          f"(nothing was written to {str(path)!r})")
    return Path(path)
