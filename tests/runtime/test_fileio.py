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


@pytest.mark.skipif(fileio.fcntl is None, reason="no advisory locks on this platform")
def test_clean_stale_removes_only_what_no_live_process_holds(tmp_path):
    old = os.path.getmtime(tmp_path) - 60
    dead = tmp_path / ".a.png.abcd1234.tmp"
    dead.write_bytes(b"half")
    other = tmp_path / ".b.png.abcd1234.tmp"  # another output's temp: not asked for
    other.write_bytes(b"half")
    young = tmp_path / ".a.png.young123.tmp"  # may be between its creation and its lock
    young.write_bytes(b"x")
    live = tmp_path / ".a.png.live1234.tmp"
    live.write_bytes(b"x")
    for p in (dead, other, live):
        os.utime(p, (old, old))
    fd = os.open(live, os.O_RDONLY)
    try:
        fileio.fcntl.flock(fd, fileio.fcntl.LOCK_EX)  # a concurrent run writing it
        assert fileio.clean_stale(tmp_path, ("a.png",)) == [dead]
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, young.name, live.name])


@pytest.mark.skipif(fileio.fcntl is None, reason="no advisory locks on this platform")
def test_staging_folder_is_locked_while_used_and_removed_after(tmp_path):
    with fileio.temp_folder(tmp_path, ".sr-export-") as live:
        (live / "model.onnx").write_bytes(b"x")
        os.utime(live, (0, 0))
        assert fileio.clean_stale(tmp_path, folder_prefixes=(".sr-export-",)) == []  # held by this run
    assert not live.exists()
    stale = tmp_path / ".sr-export-killed"
    stale.mkdir()
    (stale / fileio.LOCK_NAME).write_bytes(b"")
    os.utime(stale, (0, 0))
    assert fileio.clean_stale(tmp_path, folder_prefixes=(".sr-export-",)) == [stale]
