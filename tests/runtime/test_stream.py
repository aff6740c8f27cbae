"""Streamed images (sr_runtime/stream.py, bigimage.py, Upscaler.enhance_rows): band writers and strip readers
equal OpenCV's whole-image encode and decode, streamed runs equal in-memory runs bit for bit, and a failed or
interrupted streamed run leaves nothing behind."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from sr_runtime.api import Upscaler
from sr_runtime.batch import collect_inputs, plan_jobs, run_batch
from sr_runtime.bigimage import ImagePlanner
from sr_runtime.errors import ImageError
from sr_runtime.imageheader import read_header
from sr_runtime.stream import ArrayRows, can_read_rows, open_rows, open_writer
from tests.corpus.harness import leftovers
from tests.corpus.models import TINY_ONNX
from tests.corpus.pngbytes import png
from tests.runtime.fakes import FakeBackend

LAYOUTS = [(1, np.uint8), (3, np.uint8), (4, np.uint8), (1, np.uint16), (3, np.uint16), (4, np.uint16)]


def smooth(h, w, c, dtype=np.uint8, seed=0):
    """An image with structure (resized noise), ``(h, w)`` for one channel."""
    top = 65535 if dtype == np.uint16 else 255
    small = np.random.default_rng(seed).integers(0, top, (max(2, h // 6), max(2, w // 6), c)).astype(dtype)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return img.reshape(h, w, c)[..., 0] if c == 1 else img


def splits(n, seed=0):
    """Random band boundaries covering ``[0, n)``."""
    rng, y, out = np.random.default_rng(seed), 0, []
    while y < n:
        k = int(rng.integers(1, 60))
        out.append((y, min(n, y + k)))
        y += k
    return out


@pytest.mark.parametrize("ext", ["png", "tif", "bigtiff"])
def test_band_writers_equal_opencv(tmp_path, ext, monkeypatch):
    big = ext == "bigtiff"
    if big:  # what outputs past 4 GiB of pixels get
        import sr_runtime.stream as stream

        monkeypatch.setattr(stream, "BIGTIFF_ABOVE", 0)
        ext = "tif"
    for i, (c, dt) in enumerate(LAYOUTS):
        img = smooth(141, 263, c, dt, seed=i)
        w = open_writer(tmp_path / f"o.{ext}", ext, 141, 263, c, dt)
        for y0, y1 in splits(141, i):
            w.write(img[y0:y1])
        w.close()
        back = cv2.imread(str(tmp_path / f"o.{ext}"), cv2.IMREAD_UNCHANGED)
        assert back.dtype == img.dtype and np.array_equal(back, img), (c, dt)
        if big:
            import tifffile

            with tifffile.TiffFile(tmp_path / "o.tif") as tif:
                assert tif.is_bigtiff and tif.pages.first.is_tiled
    assert leftovers(tmp_path) == []


def _inputs(d):
    """Files the strip readers take: OpenCV's own PNG/TIFF, pypng/tifffile layouts, gray+alpha."""
    import tifffile
    from PIL import Image

    files = []
    for i, (c, dt) in enumerate(LAYOUTS):
        for ext in ("png", "tif"):
            p = d / f"cv_{c}_{np.dtype(dt).name}.{ext}"
            cv2.imwrite(str(p), smooth(97, 131, c, dt, seed=i))
            files.append(p)
    tifffile.imwrite(d / "strips.tif", smooth(97, 131, 3), rowsperstrip=7, compression="zlib", predictor=True)
    tifffile.imwrite(d / "tiles.tif", smooth(97, 131, 3, np.uint16), tile=(32, 48), bigtiff=True)
    Image.fromarray(smooth(97, 131, 2), "LA").save(d / "la.png")
    return files + [d / "strips.tif", d / "tiles.tif", d / "la.png"]


def test_strip_readers_equal_whole_decode(tmp_path):
    for p in _inputs(tmp_path):
        h = read_header(p)
        assert can_read_rows(p, h), p.name
        r = open_rows(p, h)
        got = np.concatenate([r.rows(0, 40), r.rows(30, 80)[10:], r.rows(80, 97)])  # bands overlap
        r.close()
        assert np.array_equal(got, cv2.imread(str(p), cv2.IMREAD_UNCHANGED)), p.name


def test_what_strip_readers_leave_to_the_decoder(tmp_path):
    import png as png_writer
    import tifffile
    from PIL import Image

    Image.fromarray(smooth(20, 30, 1) % 4, "L").convert("P").save(tmp_path / "palette.png")
    with open(tmp_path / "interlaced.png", "wb") as f:
        png_writer.Writer(30, 20, greyscale=False, interlace=True).write(f, smooth(20, 30, 3).reshape(20, 90))
    tifffile.imwrite(tmp_path / "planar.tif", smooth(20, 30, 3), planarconfig="separate")
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((20, 30), np.float32))
    for name in ("palette.png", "interlaced.png", "planar.tif", "float.tif"):
        p = tmp_path / name
        assert not can_read_rows(p, read_header(p)) and open_rows(p, read_header(p)) is None, name


def test_truncated_png_rows_fail_in_one_error(tmp_path):
    (tmp_path / "claims.png").write_bytes(png(5000, 5000, zlib.compress(b"\0" * 1000)))
    p = tmp_path / "claims.png"
    r = open_rows(p, read_header(p))
    with pytest.raises(ImageError, match="cannot decode"):
        r.rows(0, 100)
    r.close()


# --------------------------------------------------------------------------- streamed == in memory
@pytest.mark.parametrize("c, dtype", [(3, np.uint8), (4, np.uint16), (1, np.uint8)])
def test_enhance_rows_equals_enhance(c, dtype):
    """Same tiles, so the same output bit for bit: ORT's tiny SRVGG, batches of 4 (rows of 3 tiles), pre-pad."""
    up = Upscaler(TINY_ONNX, tile=24, tile_pad=5, pre_pad=3, batch=4, backend="ort", threads=1)
    img = smooth(61, 70, c, dtype)
    whole, _ = up.enhance(img)
    bands = list(up.enhance_rows(ArrayRows(img)))
    assert len(bands) == 3
    assert np.array_equal(np.concatenate(bands), whole)


def test_enhance_rows_edge_cases():
    """One band, a 1-pixel-high image, size multiples with padding: the fake backend's exact nearest output."""
    for h, w, m, pre in ((1, 9, 1, 0), (5, 3, 4, 2), (37, 29, 2, 1)):
        up = Upscaler(FakeBackend(scale=2, size_multiple=m), tile=8, tile_pad=2, pre_pad=pre)
        img = smooth(h, w, 3)
        assert np.array_equal(np.concatenate(list(up.enhance_rows(ArrayRows(img)))), up.enhance(img)[0])


def _run(folder, out, stream, planner_kw=None, **opts):
    up = Upscaler(TINY_ONNX, tile=32, tile_pad=5, pre_pad=0, batch=2, backend="ort", threads=1)
    planner = ImagePlanner(up, stream=stream, **(planner_kw or {}))
    jobs = plan_jobs(collect_inputs(folder), out, **opts)
    return run_batch(jobs, up.enhance, quiet=True, planner=planner)


def test_streamed_files_equal_whole_files(tmp_path, monkeypatch):
    """png (8-bit RGB, 16-bit RGBA, gray+alpha) and tif (8-bit gray, 16-bit RGB) outputs, streamed and not; the
    strip-read inputs too (the read threshold lowered so these small files take that path)."""
    from PIL import Image

    import sr_runtime.bigimage as bigimage

    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "rgb.png"), smooth(70, 90, 3))
    cv2.imwrite(str(src / "rgba16.png"), smooth(50, 66, 4, np.uint16))
    Image.fromarray(smooth(40, 45, 2), "LA").save(src / "la.png")
    cv2.imwrite(str(src / "gray.tif"), smooth(45, 77, 1))
    cv2.imwrite(str(src / "rgb16.tif"), smooth(66, 40, 3, np.uint16))
    cv2.imwrite(str(src / "photo.jpg"), smooth(40, 40, 3))  # jpg output: never streamed
    whole = _run(src, tmp_path / "whole", "off")
    streamed = _run(src, tmp_path / "streamed", "on")
    monkeypatch.setattr(bigimage, "READ_ROWS_ABOVE", 0)
    strips = _run(src, tmp_path / "strips", "on")
    assert whole.done == streamed.done == strips.done == 6 and not whole.errors
    for p in sorted((tmp_path / "whole").iterdir()):
        ref = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        for other in ("streamed", "strips"):
            got = cv2.imread(str(tmp_path / other / p.name), cv2.IMREAD_UNCHANGED)
            assert got.dtype == ref.dtype and np.array_equal(got, ref), (other, p.name)
    for d in ("whole", "streamed", "strips"):
        assert leftovers(tmp_path / d) == []


def test_plan_decisions_and_refusals(tmp_path):
    from tests.corpus.pngbytes import zero_bomb

    up = Upscaler(TINY_ONNX, tile=64, tile_pad=5, pre_pad=0, backend="ort", threads=1)
    (tmp_path / "big.png").write_bytes(zero_bomb(4000, 3000))
    big = tmp_path / "big.png"
    auto = ImagePlanner(up, budget=8 << 30).plan(big, lambda alpha: "png")
    assert auto.stream and not auto.read_rows  # 36 MB decoded: read whole, 576 MB of output: streamed
    assert auto.estimate.output < 64 << 20
    assert not ImagePlanner(up, stream="off", budget=8 << 30).plan(big, lambda alpha: "png").stream
    assert not ImagePlanner(up, budget=8 << 30).plan(big, lambda alpha: "jpg").stream
    assert not ImagePlanner(up, budget=8 << 30, outscale=2).plan(big, lambda alpha: "png").stream
    assert ImagePlanner(up, budget=60 << 20).plan(big, lambda alpha: "png").read_rows  # whole read does not fit
    with pytest.raises(ImageError, match=r"4000x3000 \(x4: 16000x12000\) needs about .* [GM]iB.*--max-memory 0\.5 GiB"
                                         r".*--ext png: streamed"):
        ImagePlanner(up, budget=512 << 20).plan(big, lambda alpha: "jpg")


def test_failed_streamed_run_leaves_nothing(tmp_path, monkeypatch):
    """The model fails in the third band: the temp file of the band writer is removed, the batch goes on."""
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), smooth(120, 50, 3))
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise MemoryError
        return np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)

    up = Upscaler(FakeBackend(flaky, scale=2), tile=32, tile_pad=2, pre_pad=0)
    jobs = plan_jobs(collect_inputs(src), tmp_path / "out")
    res = run_batch(jobs, up.enhance, quiet=True, planner=ImagePlanner(up, stream="on"))
    assert res.failed == 1 and "out of memory" in res.errors[0]
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_interrupted_band_writer_removes_its_temp_file(tmp_path):
    w = open_writer(tmp_path / "o.png", "png", 100, 10, 3, np.uint8)
    w.write(np.zeros((40, 10, 3), np.uint8))
    w.abort()
    assert list(tmp_path.iterdir()) == []
    w = open_writer(tmp_path / "o.tif", "tif", 100, 10, 3, np.uint8)
    w.write(np.zeros((40, 10, 3), np.uint8))
    with pytest.raises(ImageError, match="40 rows written for a 100-row image"):
        w.close()  # too few rows: an error, never a short file
    assert list(tmp_path.iterdir()) == []


def test_bands_are_the_plan_row_by_row():
    """plan_bands (two 1-D plans) gives plan_for's tiles, row by row, for random sizes, tiles, pads, multiples and
    window kinds."""
    from sr_runtime.tiling import TileSettings, plan_bands, plan_for

    rng = np.random.default_rng(7)
    for _ in range(300):
        m = int(rng.choice([1, 2, 4]))
        h, w = int(rng.integers(1, 90)) * m, int(rng.integers(1, 90)) * m
        settings = TileSettings(scale=2, tile=int(rng.choice([0, 8, 16, 33, 64])), pad=int(rng.integers(0, 12)),
                                size_multiple=m, windows=str(rng.choice(["any", "same", "fixed"])))
        plan = plan_for(h, w, settings)
        got = [(t.src.shift(b.y0, 0), t.core.shift(b.y0, 0)) for b in plan_bands(h, w, settings) for t in b.plan.tiles]
        assert got == [(t.src, t.core) for t in plan.tiles], (h, w, settings)
        assert {b.window for b in plan_bands(h, w, settings)} == {plan.window}


def test_decoder_errors_name_their_class_once():
    import png

    from sr_runtime.stream import _decode_error

    line = _decode_error(png.FormatError("Wrong size for decompressed IDAT chunk."), Path("x.png")).one_line()
    assert "(FormatError: Wrong size" in line and "FormatError: FormatError" not in line
    assert "(ValueError: bad)" in _decode_error(ValueError("bad"), Path("x.png")).one_line()
