"""Image cases: one folder that sr-run reads in a single run (good and bad side by side), and gigapixel claims."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import cv2
import numpy as np

from tests.corpus import Case
from tests.corpus.pngbytes import chunk, png, zero_bomb

NON_ASCII = "写真 фото"
"""A file name with CJK, Cyrillic and a space."""


def _pixels(h: int, w: int, c: int = 3, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = 65535 if dtype == np.uint16 else 255
    a = rng.integers(0, top + 1, (h, w, c), dtype=np.int64).astype(dtype)
    return a[..., 0] if c == 1 else a


def _write(path: Path, img: np.ndarray, params: tuple[int, ...] = ()) -> None:
    ok, buf = cv2.imencode(path.suffix, img, list(params))
    assert ok, path
    path.write_bytes(buf.tobytes())


def _ok(name: str, path: Path, shape: tuple[int, ...], what: str, dtype: str = "uint8") -> Case:
    return Case(name, "image", path, "ok", shape=shape, dtype=dtype, what=what)


def _bad(name: str, path: Path, message: str, what: str) -> Case:
    return Case(name, "image", path, "error", message=message, what=what)


def _good_images(d: Path) -> list[Case]:
    """Images that must work (each beside the broken ones: the batch goes on)."""
    from PIL import Image

    cases = []
    rgb = _pixels(24, 32)
    _write(d / "rgb.png", rgb)
    cases.append(_ok("rgb", d / "rgb.png", (96, 128, 3), "8-bit RGB PNG"))
    _write(d / "one_by_one.png", _pixels(1, 1))
    cases.append(_ok("1x1", d / "one_by_one.png", (4, 4, 3), "1x1 image (smaller than any pad)"))
    _write(d / "one_by_n.png", _pixels(1, 17))
    cases.append(_ok("1xN", d / "one_by_n.png", (4, 68, 3), "1x17 image"))
    _write(d / "n_by_one.png", _pixels(13, 1))
    cases.append(_ok("Nx1", d / "n_by_one.png", (52, 4, 3), "13x1 image"))
    _write(d / "gray16.png", _pixels(20, 30, 1, np.uint16))
    cases.append(_ok("gray16", d / "gray16.png", (80, 120), "16-bit gray PNG (stays 16-bit)", "uint16"))
    _write(d / "rgba16.png", _pixels(20, 30, 4, np.uint16))
    cases.append(_ok("rgba16", d / "rgba16.png", (80, 120, 4), "16-bit RGBA PNG (alpha kept)", "uint16"))
    Image.fromarray(_pixels(20, 30, 2), "LA").save(d / "gray_alpha.png")
    cases.append(_ok("gray+alpha", d / "gray_alpha.png", (80, 120, 4), "gray+alpha PNG (OpenCV reads BGRA)"))
    pal = Image.fromarray(_pixels(20, 30, 1) % 4, "L").convert("P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    pal.save(d / "palette_trns.png", transparency=bytes([255, 128, 0, 255]))
    cases.append(_ok("palette+tRNS", d / "palette_trns.png", (80, 120, 4), "palette PNG with transparency"))
    Image.fromarray(_pixels(20, 30, 4), "CMYK").save(d / "cmyk.jpg", quality=95)
    cases.append(_ok("CMYK", d / "cmyk.jpg", (80, 120, 3), "CMYK JPEG (OpenCV converts to BGR)"))
    im = Image.fromarray(_pixels(20, 30), "RGB")
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(d / "exif_rotated.jpg", exif=exif, quality=95)
    cases.append(_ok("EXIF-rotated", d / "exif_rotated.jpg", (120, 80, 3), "JPEG with EXIF orientation 6"))
    for ext in (".tif", ".webp", ".bmp"):
        _write(d / f"photo{ext}", _pixels(20, 30))
        cases.append(_ok(ext[1:], d / f"photo{ext}", (80, 120, 3), f"8-bit {ext[1:].upper()}"))
    _write(d / f"{NON_ASCII}.png", rgb)
    cases.append(_ok("non-ASCII name", d / f"{NON_ASCII}.png", (96, 128, 3), "CJK/Cyrillic name with a space"))
    good = d.joinpath("rgb.png").read_bytes()
    text_chunk = chunk(b"tEXt", b"Comment\0hello", crc=0)  # ancillary chunk, wrong CRC: libpng warns
    i = good.index(b"IDAT") - 4
    (d / "ancillary_crc.png").write_bytes(good[:i] + text_chunk + good[i:])
    cases.append(_ok("bad ancillary CRC", d / "ancillary_crc.png", (96, 128, 3),
                     "decodes, while libpng warns on stderr (captured)"))
    return cases


def _broken_files(d: Path) -> list[Case]:
    """Files that must each give one error line."""
    cases = []
    good = d.joinpath("rgb.png").read_bytes()
    (d / "empty.png").write_bytes(b"")
    cases.append(_bad("zero-byte", d / "empty.png", r"the file is empty", "zero-byte file"))
    (d / "text.png").write_text("this is not an image\n")
    cases.append(_bad("text as .png", d / "text.png", r"cannot decode", "a text file named .png"))
    (d / "truncated.png").write_bytes(good[: len(good) // 2])
    cases.append(_bad("truncated PNG", d / "truncated.png", r"cannot decode", "PNG cut in half"))
    (d / "zero_width.png").write_bytes(png(0, 10, zlib.compress(b"\0" * 10)))
    cases.append(_bad("zero width", d / "zero_width.png", r"(cannot decode|width|header)",
                      "IHDR with width 0 (libpng warns, then fails)"))
    bad_ihdr = bytearray(good)
    bad_ihdr[29] ^= 0xFF  # inside the IHDR CRC
    (d / "bad_ihdr_crc.png").write_bytes(bytes(bad_ihdr))
    cases.append(_bad("IHDR CRC", d / "bad_ihdr_crc.png", r"cannot decode", "critical chunk with a bad CRC"))
    _write(d / "whole.jpg", _pixels(64, 64), (cv2.IMWRITE_JPEG_QUALITY, 90))
    jpg = d.joinpath("whole.jpg").read_bytes()
    (d / "whole.jpg").unlink()
    (d / "truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    cases.append(_bad("truncated JPEG", d / "truncated.jpg", r"cannot decode", "JPEG cut after its header"))
    nan = np.full((8, 8, 3), np.nan, np.float32)
    _write(d / "nan_float.tif", nan)
    cases.append(_bad("NaN float TIFF", d / "nan_float.tif", r"pixel type float32", "32-bit float TIFF of NaN"))
    claim = png(100_000, 100_000, zlib.compress(b"\0" * 1000))
    (d / "claims_100000.png").write_bytes(claim)
    cases.append(_bad("header 100000x100000", d / "claims_100000.png", r"(100000x100000|more pixels|memory)",
                      "PNG header claiming 10 gigapixels over 74 bytes"))
    return cases


def _odd_entries(d: Path) -> list[Case]:
    """Folder entries named like images that are not regular files."""
    cases = []
    (d / "folder.png").mkdir()
    cases.append(_bad("folder x.png", d / "folder.png", r"is a folder", "a directory named folder.png"))
    os.symlink("loop.png", d / "loop.png")
    cases.append(_bad("symlink loop", d / "loop.png", r"symbolic link loop", "loop.png -> loop.png"))
    os.symlink("missing.png", d / "dangling.png")
    cases.append(_bad("dangling symlink", d / "dangling.png", r"broken symbolic link", "link to nothing"))
    if hasattr(os, "mkfifo"):
        os.mkfifo(d / "fifo.png")
        cases.append(_bad("FIFO", d / "fifo.png", r"not a regular file", "a named pipe (reading it would block)"))
    return cases


def _big(d: Path) -> list[Case]:
    """Gigapixel claims: refused from the header, before any decode (tests run them with a memory cap)."""
    (d / "bomb.png").write_bytes(zero_bomb(32768, 32768, depth=16, color="rgba"))
    (d / "huge.png").write_bytes(zero_bomb(30000, 30000))
    return [
        Case("decompression bomb", "big", d / "bomb.png", "error", r"(32768x32768|memory|more pixels)",
             what="9 MB PNG that decodes to 32768x32768 16-bit RGBA (8 GiB)"),
        Case("30000x30000", "big", d / "huge.png", "error", r"(30000x30000|memory|more pixels)",
             what="3 MB PNG of 30000x30000 RGB (2.5 GiB decoded, 40 GiB output at x4)"),
    ]


def build(images: Path, big: Path) -> list[Case]:
    """Write the image cases into ``images`` (one folder run) and ``big``."""
    images.mkdir(parents=True, exist_ok=True)
    big.mkdir(parents=True, exist_ok=True)
    return _good_images(images) + _broken_files(images) + _odd_entries(images) + _big(big)

