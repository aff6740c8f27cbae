"""Atomic file writes shared by the whole toolkit (stdlib only).

Every output (images, engines, sidecars, checkpoints, training states, ONNX files) is written to a hidden temp
file in the target folder and renamed into place, so a crash, a full disk or Ctrl-C never leaves a half-written
file under the final name, and the temp file is removed on failure.

A process killed outright (SIGKILL, power loss) cannot remove its temp files. Each one is therefore held under
an advisory lock (``flock``) while it is being written, and so is the lock file of every staging folder
(:func:`temp_folder`); the kernel drops the lock when its process dies. :func:`clean_stale` removes the temp
files and staging folders in a folder whose lock nobody holds, never a live one of a concurrent run. Where
``fcntl`` does not exist (Windows) nothing is removed: stale files are only ignored.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sr_runtime import signals

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale temp files are ignored, never removed
    fcntl = None  # type: ignore[assignment]

TEMP_SUFFIX = ".tmp"
"""Suffix of the hidden temp files (``.<name>.<random>.tmp``)."""
LOCK_NAME = ".lock"
"""The lock file inside a staging folder (:func:`temp_folder`)."""
STALE_AFTER_S = 1.0
"""An unlocked temp file younger than this is left alone (it may be between its creation and its lock)."""
_TEMP_FILE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}" + re.escape(TEMP_SUFFIX) + "$")


def _lock(fd: int) -> bool:
    """Take an exclusive advisory lock on ``fd`` without waiting; True when taken (or locks do not exist)."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def default_file_mode() -> int:
    """``0o666`` minus the process umask: the mode ``open()`` would give (``mkstemp`` gives ``0o600``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call ``write(tmp_path)`` on a temp file in ``path``'s folder, fsync it, then ``os.replace`` it into place.

    Args:
        path: the final file; its folder is created if missing.
        write: writes the whole content to the temp path it is given.

    Returns:
        ``path``.

    Raises:
        OSError: the write or rename failed (the temp file is removed first).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        _lock(fd)  # held until this function returns: clean_stale() of another run leaves the file alone
        os.chmod(tmp, default_file_mode())
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with signals.deferred(), contextlib.suppress(OSError):  # a second Ctrl-C must not skip this
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)
    return path


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp: str) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_BINARY", 0))
        try:
            _write_fully(fd, data)
        finally:
            os.close(fd)

    return atomic_write(path, write)


@contextlib.contextmanager
def temp_folder(parent: str | Path, prefix: str) -> Iterator[Path]:
    """A hidden staging folder ``parent/<prefix><random>/``, locked while in use and removed afterwards.

    Args:
        parent: where to create it (the final files' folder, so that ``os.replace`` stays on one file system).
        prefix: starts with a dot, e.g. ``.sr-export-``; :func:`clean_stale` removes dead ones with it.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _lock(fd)
        yield folder
    finally:
        with signals.deferred():  # a second Ctrl-C must not leave the folder half removed
            os.close(fd)
            shutil.rmtree(folder, ignore_errors=True)


def _unlocked(path: Path) -> bool:
    """Whether nobody holds ``path``'s lock (False when it cannot be opened or locks do not exist)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _lock(fd)
    finally:
        os.close(fd)


def _old(path: Path, now: float) -> bool:
    try:
        return now - path.lstat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def clean_stale(folder: str | Path, names: tuple[str, ...] = (), folder_prefixes: tuple[str, ...] = ()) -> list[Path]:
    """Remove what killed runs left in ``folder``: temp files of :func:`atomic_write` and staging folders of
    :func:`temp_folder` that no live process holds.

    Args:
        folder: where to look (not recursive); a missing folder is fine.
        names: only temp files of these final names (``.<name>.<random>.tmp``); empty: every such temp file.
        folder_prefixes: staging folders to consider, e.g. ``(".sr-export-",)``.

    Returns:
        What was removed. Errors (permissions, a race with another cleaner) are ignored: stale files are never
        read, so leaving one is harmless.
    """
    root = Path(folder)
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    now, removed = time.time(), []
    for p in entries:
        n = p.name
        if _TEMP_FILE.match(n) and (not names or any(n.startswith(f".{x}.") for x in names)):
            if p.is_file() and not p.is_symlink() and _old(p, now) and _unlocked(p):
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
        elif folder_prefixes and n.startswith(folder_prefixes) and p.is_dir() and not p.is_symlink():
            lock = p / LOCK_NAME
            dead = _unlocked(lock) if lock.exists() else (fcntl is not None and _old(p, now))
            if dead and _old(p, now):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed
