"""Atomic file writes shared by the whole toolkit (stdlib only).

Every output (images, engines, sidecars, checkpoints, training states, ONNX files) is written to a hidden temp
file in the target folder and renamed into place, so a crash, a full disk or Ctrl-C never leaves a half-written
file under the final name, and the temp file is removed on failure.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TEMP_SUFFIX = ".tmp"
"""Suffix of the hidden temp files (``.<name>.<random>.tmp``)."""


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
        os.close(fd)
        os.chmod(tmp, default_file_mode())
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
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
