"""Atomic writes: the final name appears whole or not at all, with the normal file mode."""

from __future__ import annotations

import os

import pytest

from sr_runtime import fileio


def test_atomic_write_bytes_mode_and_no_leftovers(tmp_path):
    p = fileio.atomic_write_bytes(tmp_path / "sub" / "a.bin", b"x" * 1000)
    assert p.read_bytes() == b"x" * 1000
    assert p.stat().st_mode & 0o777 == fileio.default_file_mode()
    assert [q.name for q in p.parent.iterdir()] == ["a.bin"]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def full(fd, data):
        os.write(fd, bytes(data[:3]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio, "_write_fully", full)
    with pytest.raises(OSError, match="No space"):
        fileio.atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert [q.name for q in tmp_path.iterdir()] == ["a.bin"]
