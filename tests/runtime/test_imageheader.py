"""Header-only image sizes (sr_runtime/imageheader.py) and the checks made from them before any decode."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest

from sr_runtime.errors import ImageError
from sr_runtime.image import read_image
from sr_runtime.imageheader import read_header
from tests.corpus.pngbytes import png, zero_bomb


def _random(shape, dtype=np.uint8, seed=0):
    top = 65535 if dtype == np.uint16 else 255
    return np.random.default_rng(seed).integers(0, top, shape).astype(dtype)


def _opencv_files(d):
    """(name, path) of every format OpenCV writes here, in the layouts that matter."""
    files = []
    cases = {"png": [(3, np.uint8), (1, np.uint8), (4, np.uint8), (3, np.uint16), (4, np.uint16)],
             "jpg": [(3, np.uint8), (1, np.uint8)], "tif": [(3, np.uint8), (1, np.uint16), (4, np.uint8)],
             "webp": [(3, np.uint8), (4, np.uint8)], "bmp": [(3, np.uint8), (4, np.uint8)],
             "ppm": [(3, np.uint8)], "pgm": [(1, np.uint16)], "jp2": [(3, np.uint8)]}
    for ext, layouts in cases.items():
        for c, dt in layouts:
            p = d / f"{ext}_{c}_{np.dtype(dt).name}.{ext}"
            shape = (66, 97) if c == 1 else (66, 97, c)
            if cv2.imwrite(str(p), _random(shape, dt)):
                files.append(p)
    return files


def _pillow_files(d):
    from PIL import Image

    files = []
    Image.fromarray(_random((23, 37, 2)), "LA").save(d / "la.png")
    pal = Image.fromarray(_random((23, 37)) % 4, "L").convert("P")
    pal.save(d / "palette_trns.png", transparency=0)
    pal.save(d / "palette.png")
    Image.fromarray(_random((23, 37, 4)), "CMYK").save(d / "cmyk.jpg")
    Image.fromarray(_random((23, 37, 3))).save(d / "progressive.jpg", progressive=True)
    Image.fromarray(_random((23, 37, 3))).save(d / "lossless.webp", lossless=True)
    Image.fromarray(_random((23, 37, 4))).save(d / "lossless_alpha.webp", lossless=True)
    files += [d / n for n in ("la.png", "palette_trns.png", "palette.png", "cmyk.jpg", "progressive.jpg",
                              "lossless.webp", "lossless_alpha.webp")]
    import tifffile

    tifffile.imwrite(d / "big.tif", _random((23, 37, 3)), bigtiff=True, tile=(16, 16))
    files.append(d / "big.tif")
    return files


def test_header_matches_what_opencv_decodes(tmp_path):
    """Size, channels and bit depth from the header equal OpenCV's IMREAD_UNCHANGED array, format by format."""
    files = _opencv_files(tmp_path) + _pillow_files(tmp_path)
    assert len(files) >= 25
    for p in files:
        h = read_header(p)
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        channels = 1 if img.ndim == 2 else img.shape[2]
        assert h is not None, p.name
        assert (h.height, h.width, h.channels, h.bit_depth) == (*img.shape[:2], channels, img.itemsize * 8), p.name
        assert h.decoded_bytes == img.nbytes, p.name


def test_unknown_truncated_and_empty_headers(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    assert read_header(tmp_path / "text.png") is None
    good = cv2.imencode(".png", _random((8, 8, 3)))[1].tobytes()
    (tmp_path / "cut.png").write_bytes(good[:20])
    assert read_header(tmp_path / "cut.png") is None
    (tmp_path / "zero.png").write_bytes(png(0, 10, zlib.compress(b"\0" * 10)))
    with pytest.raises(ImageError, match="empty image"):
        read_header(tmp_path / "zero.png")
    with pytest.raises(ImageError, match="cannot read"):
        read_header(tmp_path / "missing.png")


@pytest.fixture()
def no_decoding(monkeypatch):
    """Every OpenCV decode fails the test: what is refused must be refused from the header."""

    def boom(*_a, **_k):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(cv2, "imdecode", boom)
    monkeypatch.setattr(cv2, "imread", boom)


def test_max_pixels_from_the_header_without_decoding(tmp_path, no_decoding):
    (tmp_path / "bomb.png").write_bytes(zero_bomb(4096, 4096, depth=16, color="rgba"))
    with pytest.raises(ImageError, match=r"4096x4096 is more than --max-pixels 1000000"):
        read_image(tmp_path / "bomb.png", max_pixels=1_000_000)
    (tmp_path / "claims.png").write_bytes(png(100_000, 100_000, zlib.compress(b"\0" * 1000)))
    with pytest.raises(ImageError, match=r"100000x100000 is more than --max-pixels"):
        read_image(tmp_path / "claims.png", max_pixels=10**9)
