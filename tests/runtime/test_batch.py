"""Batch pipeline: inputs and names, a bad file mid-batch, skip-existing, failed writes, Ctrl-C."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import numpy as np
import pytest

from sr_runtime import fileio
from sr_runtime.api import Upscaler
from sr_runtime.batch import BatchOptions, collect_inputs, error_line, plan_jobs, run_batch
from sr_runtime.errors import ImageError, SrError
from tests.runtime.fakes import FakeBackend


def enhance_fn():
    return Upscaler(FakeBackend(scale=2), tile=8, tile_pad=0, pre_pad=0).enhance


def listing(d):
    return sorted(p.name for p in d.iterdir())


def test_collect_inputs(image_files, tmp_path):
    folder = image_files["rgb"].parent
    files = collect_inputs(folder)
    assert [f.name for f in files] == sorted(f.name for f in folder.iterdir())
    assert collect_inputs(folder / "*.jpg") == [image_files["jpg"]]
    assert collect_inputs(image_files["rgb"]) == [image_files["rgb"]]
    with pytest.raises(SrError, match="not found"):
        collect_inputs(tmp_path / "nope.png")
    with pytest.raises(SrError, match="matches no files"):
        collect_inputs(tmp_path / "*.tif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SrError, match="no images"):
        collect_inputs(tmp_path / "empty")


def test_plan_jobs_naming(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.jpeg"
    jobs = plan_jobs([a, b], tmp_path / "out")
    assert [j.dst.name for j in jobs] == ["a_out.png", "b_out.jpg"] and all(j.auto_ext for j in jobs)
    assert [j.dst.name for j in plan_jobs([a, b], tmp_path / "o", suffix="", ext="webp")] == ["a.webp", "b.webp"]
    assert plan_jobs([a], tmp_path / "x.tif", single_file=True)[0].dst == tmp_path / "x.tif"
    with pytest.raises(SrError, match="overwrite the input"):
        plan_jobs([a], tmp_path, suffix="")
    with pytest.raises(SrError, match="both be written"):
        plan_jobs([a, tmp_path / "a.jpg"], tmp_path / "o", ext="png")


def test_bad_file_mid_batch(image_files, tmp_path, capsys):
    out = tmp_path / "out"
    jobs = plan_jobs(collect_inputs(image_files["rgb"].parent), out)
    res = run_batch(jobs, enhance_fn(), quiet=True)
    assert res.failed == 1 and res.done == len(jobs) - 1 and res.skipped == 0
    assert len(res.errors) == 1 and res.errors[0].startswith(str(image_files["corrupt"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {res.errors[0]}"]
    names = listing(out)
    assert "corrupt_out.png" not in names and "rgba_out.png" in names and "photo_out.jpg" in names
    assert not any(n.startswith(".") for n in names), "no temp files"
    assert res.megapixels > 0 and "done 6, failed 1" in res.summary()


def test_alpha_with_auto_ext_jpg_becomes_png(tmp_path):
    import cv2

    src = tmp_path / "a.webp"
    cv2.imwrite(str(src), np.full((4, 4, 4), 200, np.uint8))
    jobs = plan_jobs([src], tmp_path / "o", ext="auto")
    jobs = [dataclasses.replace(jobs[0], dst=tmp_path / "o" / "a_out.jpg")]  # as if the input were a jpg
    res = run_batch(jobs, enhance_fn(), quiet=True)
    assert res.outputs == (tmp_path / "o" / "a_out.png",)


def test_skip_existing(image_files, tmp_path):
    jobs = plan_jobs([image_files["rgb"], image_files["gray"]], tmp_path)
    jobs[0].dst.write_bytes(b"keep")
    res = run_batch(jobs, enhance_fn(), quiet=True, skip_existing=True)
    assert (res.done, res.skipped) == (1, 1) and jobs[0].dst.read_bytes() == b"keep"


def test_failed_write_leaves_no_partial(image_files, tmp_path, monkeypatch):
    def full(fd, data):
        os.write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio, "_write_fully", full)
    jobs = plan_jobs([image_files["rgb"]], tmp_path / "o")
    res = run_batch(jobs, enhance_fn(), quiet=True)
    assert res.failed == 1 and "No space left" in res.errors[0]
    assert listing(tmp_path / "o") == []


def test_keyboard_interrupt_mid_file(image_files, tmp_path):
    inner = enhance_fn()
    n = {"calls": 0}

    def enhance(*a):
        n["calls"] += 1
        if n["calls"] == 2:
            raise KeyboardInterrupt
        return inner(*a)

    jobs = plan_jobs([image_files["rgb"], image_files["gray"], image_files["jpg"]], tmp_path / "o")
    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, enhance, quiet=True)
    assert listing(tmp_path / "o") == ["rgb_out.png"]  # the finished one, complete; nothing partial


def test_sigint_stops_after_the_current_file(image_files, tmp_path):
    inner = enhance_fn()

    def enhance(*a):
        os.kill(os.getpid(), signal.SIGINT)  # the handler only sets a flag: this file still completes
        return inner(*a)

    jobs = plan_jobs([image_files["rgb"], image_files["gray"], image_files["jpg"]], tmp_path / "o")
    res = run_batch(jobs, enhance, quiet=True)
    assert res.interrupted and res.done == 1 and listing(tmp_path / "o") == ["rgb_out.png"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    "exc, line",
    [
        (SrError("cannot decode", "Replace the file."), "in/a.png: cannot decode. Replace the file."),
        (ImageError("too big", "Use --max-pixels.", "other.png"), "other.png: too big. Use --max-pixels."),
        (OSError(28, "No space left on device"),
         "in/a.png: No space left on device. Check the path, its permissions and the free disk space."),
        (OSError("plain"), "in/a.png: plain. Check the path, its permissions and the free disk space."),
        (MemoryError(), "in/a.png: out of memory. Use a smaller --tile or --batch."),
        (ValueError("bad\n   value"),
         "in/a.png: internal error: ValueError: bad value. Re-run with --debug and report it."),
    ],
)
def test_error_line(exc, line):
    assert error_line("in/a.png", exc) == line


def test_error_line_is_pure():
    exc = SrError("cannot decode")
    assert error_line("a.png", exc) == "a.png: cannot decode."
    assert exc.path is None and error_line("b.png", exc) == "b.png: cannot decode."


def test_options_object_and_keyword_changes(image_files, tmp_path):
    jobs = plan_jobs([image_files["rgb"], image_files["gray"]], tmp_path)
    jobs[0].dst.write_bytes(b"keep")
    opts = BatchOptions(quiet=True, skip_existing=True, writers=1, prefetch=1)
    res = run_batch(jobs, enhance_fn(), opts)
    assert (res.done, res.skipped) == (1, 1)
    with pytest.raises(TypeError):
        run_batch(jobs, enhance_fn(), opts, no_such_option=1)


def test_reader_never_blocks_forever(image_files, tmp_path):
    """The model loop stops on the first file while the reader waits on a full queue: no thread is left."""
    files = [image_files[k] for k in ("rgb", "gray", "jpg", "rgb16")]
    jobs = plan_jobs(files, tmp_path / "o")

    def enhance(*a):
        time.sleep(0.3)  # the reader fills the queue (prefetch 1) and waits
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(jobs, enhance, quiet=True, prefetch=1)
    deadline = time.monotonic() + 5
    while any(t.name.startswith("sr-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("sr-")]
