"""Files named by a local path or a URI that one of pyarrow's file systems reads (``s3://``, ``gs://``,
``hdfs://``, ``file://``), read and written with the local path's rules.

A :class:`Location` is a file system key (``""`` for a local path, else ``scheme://host?query``) and the path
inside that file system, so it pickles as two strings and each Ray process opens a file system once per key
(:func:`filesystem`). Writes are atomic everywhere: locally through :func:`sr_runtime.fileio.atomic_write_bytes`,
remotely as a hidden temp object in the same folder moved onto the final name (an S3/GCS object appears whole
when its upload completes, so a reader never sees half an output). pyarrow is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

from sr_runtime.errors import MissingExtraError, SrError
from sr_runtime.fileio import TEMP_SUFFIX, atomic_write_bytes

LIST_SUFFIXES = (".txt", ".lst")
"""A file IN with one of these suffixes is a list of inputs: one path or URI a line, ``#`` comments."""
_URI = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+)://(?P<host>[^/?#]*)(?P<path>[^?#]*)(?P<query>\?[^#]*)?$")


def is_uri(text: str | os.PathLike) -> bool:
    """Whether ``text`` is a URI with a scheme of two or more letters (``C:\\x`` is a local path)."""
    return isinstance(text, str) and _URI.match(text) is not None


def _pyarrow_fs() -> Any:
    try:
        import pyarrow.fs
    except ImportError:
        raise MissingExtraError("pyarrow", "ray", "reading and writing URIs") from None
    return pyarrow.fs


@functools.lru_cache(maxsize=32)
def _root(key: str) -> tuple[Any, str]:
    """The file system of a key (``scheme://host?query``) and the path of its root: opened once per process
    (an S3 file system may ask the network for the bucket's region)."""
    m = _URI.match(key)
    assert m is not None  # noqa: S101 - keys are made by Location.parse
    try:
        return _pyarrow_fs().FileSystem.from_uri(f"{m['scheme']}://{m['host']}/{m['query'] or ''}")
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise SrError(f"no file system for {key} ({' '.join(str(exc).split())[:200]})",
                      "Check the URI, the credentials and that pyarrow was built with this file system.",
                      key) from None


@dataclass(frozen=True)
class Location:
    """A local file or folder (``key == ""``), or a path inside the pyarrow file system named by ``key``."""

    key: str
    """``""`` for a local path, else ``scheme://host?query`` (what :func:`filesystem` opens)."""
    path: str
    """The local path, or the path inside the file system (``bucket/key`` for S3 and GCS, ``/a/b`` for files)."""

    @classmethod
    def parse(cls, text: str | os.PathLike) -> Location:
        """A location from what the user wrote: a local path, or a URI (percent-escapes decoded)."""
        m = _URI.match(text) if isinstance(text, str) else None
        if m is None:
            return cls("", os.fspath(text))
        key = f"{m['scheme'].lower()}://{m['host']}{m['query'] or ''}"
        _, root = _root(key)
        return cls(key, posixpath.join(root, unquote(m["path"]).lstrip("/")))

    @property
    def local(self) -> bool:
        """A local path (read with the local path's own code)."""
        return not self.key

    @property
    def fs(self) -> Any:
        """The pyarrow file system (remote locations only)."""
        return _root(self.key)[0]

    @property
    def name(self) -> str:
        """The last path component."""
        return PurePosixPath(self.path).name if not self.local else Path(self.path).name

    def child(self, name: str) -> Location:
        """The location of ``name`` inside this folder."""
        if self.local:
            return Location("", os.path.join(self.path, name))
        return Location(self.key, posixpath.join(self.path, name))

    def with_name(self, name: str) -> Location:
        """This location with its last component replaced."""
        parent = os.path.dirname(self.path) if self.local else posixpath.dirname(self.path)
        return Location(self.key, os.path.join(parent, name) if self.local else posixpath.join(parent, name))

    def __str__(self) -> str:
        """What messages show: the local path, or a URI (``s3://bucket/key``, ``hdfs://host:8020/a``)."""
        if self.local:
            return self.path
        base = self.key.split("?", 1)[0]
        return base + self.path if self.path.startswith("/") else base.split("://", 1)[0] + "://" + self.path


def _info(loc: Location) -> Any:
    try:
        return loc.fs.get_file_info(loc.path)
    except OSError as exc:
        raise SrError(f"cannot read ({' '.join(str(exc).split())[:200]})",
                      "Check the URI and the credentials.", loc) from None


def exists(loc: Location) -> bool:
    """Whether a file (or folder) is there."""
    if loc.local:
        return os.path.exists(loc.path)
    return _info(loc).type != _pyarrow_fs().FileType.NotFound


def is_folder(loc: Location) -> bool:
    """Whether ``loc`` is a folder (a prefix with objects under it, on S3 and GCS)."""
    if loc.local:
        return os.path.isdir(loc.path)
    return _info(loc).type == _pyarrow_fs().FileType.Directory


def list_folder(loc: Location, suffixes: Iterable[str]) -> list[Location]:
    """The files directly inside a remote folder whose suffix is one of ``suffixes`` (lower case), sorted.

    Raises:
        SrError: the folder cannot be listed.
    """
    pafs = _pyarrow_fs()
    wanted = tuple(suffixes)
    try:
        infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=False))
    except OSError as exc:
        raise SrError(f"cannot list the folder ({' '.join(str(exc).split())[:200]})",
                      "Check the URI and the credentials.", loc) from None
    return sorted((Location(loc.key, i.path) for i in infos
                   if i.type == pafs.FileType.File and PurePosixPath(i.path).suffix.lower() in wanted),
                  key=lambda x: x.path)


def read_bytes(loc: Location) -> bytes:
    """The whole content of a file.

    Raises:
        SrError: missing or unreadable (the message names the location).
    """
    if loc.local:
        try:
            return Path(loc.path).read_bytes()
        except OSError as exc:
            raise SrError(f"cannot read the file ({exc.strerror or exc})", "Check the path and its permissions.",
                          loc) from None
    try:
        with loc.fs.open_input_stream(loc.path) as f:
            return f.readall()
    except FileNotFoundError:
        raise SrError("file not found", "Check the URI.", loc) from None
    except OSError as exc:
        raise SrError(f"cannot read ({' '.join(str(exc).split())[:200]})", "Check the URI and the credentials.",
                      loc) from None


def read_list(loc: Location) -> list[Location]:
    """The inputs named in a list file: one path or URI a line; blank lines and ``#`` comments are skipped;
    a relative local path is relative to a local list file's folder.

    Raises:
        SrError: unreadable, not UTF-8, or no entries.
    """
    try:
        text = read_bytes(loc).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SrError("the list file is not UTF-8 text", "Write one path or URI a line.", loc) from None
    base = os.path.dirname(loc.path) if loc.local else None
    out = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not is_uri(entry) and base is not None and not os.path.isabs(entry):
            entry = os.path.join(base, entry)
        out.append(Location.parse(entry))
    if not out:
        raise SrError("the list file names no inputs", "Write one path or URI a line.", loc)
    return out


def _temp_name(loc: Location) -> Location:
    """A hidden temp name beside ``loc``, in :mod:`sr_runtime.fileio`'s pattern (``.<name>.<random>.tmp``)."""
    return loc.with_name(f".{loc.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def write_bytes(loc: Location, data: bytes) -> None:
    """Write ``data`` to ``loc`` atomically (local: temp file + rename; remote: temp object + move).

    Raises:
        OSError: the write or the move failed (the temp file or object is removed first).
    """
    if loc.local:
        atomic_write_bytes(loc.path, data)
        return
    tmp = _temp_name(loc)
    with _removed_on_failure(tmp):
        with loc.fs.open_output_stream(tmp.path) as f:
            f.write(data)
        loc.fs.move(tmp.path, loc.path)


def put_file(local: Path, loc: Location) -> None:
    """Copy a finished local file to a remote location atomically (temp object + move)."""
    tmp = _temp_name(loc)
    with _removed_on_failure(tmp):
        with open(local, "rb") as src, loc.fs.open_output_stream(tmp.path) as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        loc.fs.move(tmp.path, loc.path)


def fetch_file(loc: Location, local: Path) -> None:
    """Copy a remote file to a local path (streamed; for the video pipeline, which reads local files).

    Raises:
        SrError: missing or unreadable.
    """
    try:
        with loc.fs.open_input_stream(loc.path) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
    except FileNotFoundError:
        raise SrError("file not found", "Check the URI.", loc) from None
    except OSError as exc:
        raise SrError(f"cannot read ({' '.join(str(exc).split())[:200]})", "Check the URI and the credentials.",
                      loc) from None


@contextlib.contextmanager
def _removed_on_failure(tmp: Location):
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.fs.delete_file(tmp.path)
        raise


def make_folder(loc: Location) -> None:
    """Create a remote output folder (a no-op on object stores, where folders are prefixes).

    Raises:
        SrError: it is a file, or it cannot be created.
    """
    if _info(loc).type == _pyarrow_fs().FileType.File:
        raise SrError("OUT is a file, not a folder", "Give a folder (a prefix) as OUT.", loc)
    try:
        loc.fs.create_dir(loc.path, recursive=True)
    except OSError as exc:
        raise SrError(f"cannot create the output folder ({' '.join(str(exc).split())[:200]})",
                      "Check the URI and the credentials.", loc) from None
