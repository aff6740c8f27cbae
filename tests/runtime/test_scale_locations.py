"""Locations for ``sr-run --ray``: local paths and pyarrow URIs, list files, atomic remote writes (no Ray needed)."""

from __future__ import annotations

import pytest

pytest.importorskip("pyarrow", reason="pyarrow is not installed (extra 'ray')")

from sr_runtime.errors import SrError  # noqa: E402
from sr_runtime.scale import locations  # noqa: E402
from sr_runtime.scale.locations import Location, is_uri, read_list, write_bytes  # noqa: E402


def test_parse_and_show():
    assert not is_uri("C:\\x\\y.png") and not is_uri("photos/a.png") and is_uri("s3://b/k")
    s3 = Location.parse("s3://bucket/in/a%20b.png?region=eu-west-1")  # a region: no network call
    assert (s3.key, s3.path, str(s3)) == ("s3://bucket?region=eu-west-1", "bucket/in/a b.png", "s3://bucket/in/a b.png")
    assert str(s3.with_name("c.png")) == "s3://bucket/in/c.png" and s3.name == "a b.png"
    f = Location.parse("file:///tmp/x/y.png")
    assert (f.key, f.path, str(f), str(f.child("z"))) == ("file://", "/tmp/x/y.png", "file:///tmp/x/y.png",
                                                          "file:///tmp/x/y.png/z")
    assert Location.parse("rel/a.png") == Location("", "rel/a.png")


def test_list_file(tmp_path):
    (tmp_path / "sub").mkdir()
    lst = tmp_path / "sub" / "l.txt"
    lst.write_text("\ufeff# comment\n\n a.png \n/abs/b.png\nfile:///c/d.png\n")
    assert [str(x) for x in read_list(Location("", str(lst)))] == [
        str(tmp_path / "sub" / "a.png"), "/abs/b.png", "file:///c/d.png"]
    lst.write_text("# nothing\n")
    with pytest.raises(SrError, match="names no inputs"):
        read_list(Location("", str(lst)))


def test_remote_write_is_atomic(tmp_path, monkeypatch):
    """A failed move leaves neither the final object nor the temp object (a file system whose move fails)."""
    import pyarrow.fs as pafs
    from fsspec.implementations.local import LocalFileSystem

    class Failing(LocalFileSystem):
        fail = True

        def mv(self, *args, **kwargs):
            if self.fail:
                raise OSError("disk went away")
            return super().mv(*args, **kwargs)

    fs = Failing(skip_instance_cache=True)
    monkeypatch.setattr(locations, "_root", lambda key: (pafs.PyFileSystem(pafs.FSSpecHandler(fs)), "/"))
    dst = Location("mem://", str(tmp_path / "out.png"))
    with pytest.raises(OSError, match="disk went away"):
        write_bytes(dst, b"data")
    assert list(tmp_path.iterdir()) == []
    fs.fail = False
    write_bytes(dst, b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"] and (tmp_path / "out.png").read_bytes() == b"data"
