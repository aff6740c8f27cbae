"""Image I/O: modes and bit depth by dtype, EXIF orientation, format adaptation, atomic writes."""

from __future__ import annotations

import errno
import struct

import cv2
import numpy as np
import pytest

from sr_runtime import fileio
from sr_runtime.errors import ImageError
from sr_runtime.image import (
    apply_orientation,
    decode_image,
    exif_orientation,
    prepare_for_format,
    read_image,
    write_image,
)


def exif_app1(orientation: int) -> bytes:
    """A little-endian EXIF APP1 segment holding only the orientation tag."""
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
    tiff += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_orientation(img: np.ndarray, orientation: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 100])
    data = buf.tobytes()
    return data[:2] + exif_app1(orientation) + data[2:]


def png_with_orientation(img: np.ndarray, orientation: int) -> bytes:
    import zlib

    ok, buf = cv2.imencode(".png", img)
    data = buf.tobytes()
    tiff = exif_app1(orientation)[4 + 6:]
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + tiff) & 0xFFFFFFFF)
    return data[:33] + chunk + data[33:]  # after the 8-byte signature and the 25-byte IHDR chunk


def test_modes_and_dtypes(image_files):
    assert read_image(image_files["rgb"]).mode == "RGB"
    g = read_image(image_files["gray"])
    assert g.mode == "L" and g.pixels.ndim == 2 and g.pixels.dtype == np.uint8
    a = read_image(image_files["rgba"])
    assert a.mode == "RGBA" and a.pixels.shape == (12, 10, 4)
    h = read_image(image_files["rgb16"])
    assert h.pixels.dtype == np.uint16 and h.pixels.max() > 255


def test_dark_16bit_stays_16bit(image_files):
    """Upstream decides 16-bit by max > 256: this image (max < 256) would be misread as 8-bit."""
    d = read_image(image_files["dark16"])
    assert d.pixels.dtype == np.uint16 and d.pixels.max() < 256


@pytest.mark.parametrize("name", ["corrupt", "empty", "missing"])
def test_unreadable(image_files, tmp_path, name):
    path = {"corrupt": image_files["corrupt"], "empty": tmp_path / "e.png", "missing": tmp_path / "m.png"}[name]
    if name == "empty":
        path.write_bytes(b"")
    with pytest.raises(ImageError) as err:
        read_image(path)
    assert str(path) in err.value.one_line()


def test_max_pixels(image_files):
    with pytest.raises(ImageError, match="max-pixels"):
        read_image(image_files["rgb"], max_pixels=100)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_opencv(orientation, rgb_image):
    img = rgb_image(6, 10)
    data = jpeg_with_orientation(img, orientation)
    assert exif_orientation(data) == orientation
    ours = decode_image(data).pixels
    ref = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # applies EXIF orientation
    assert ours.shape == ref.shape and np.array_equal(ours, ref)


def test_exif_orientation_png_and_alpha(rgb_image):
    rgba = np.dstack([rgb_image(6, 10), np.arange(60, dtype=np.uint8).reshape(6, 10)])
    loaded = decode_image(png_with_orientation(rgba, 6))
    assert loaded.orientation == 6 and loaded.mode == "RGBA"
    assert np.array_equal(loaded.pixels, np.rot90(rgba, -1))
    assert apply_orientation(rgba, 1) is rgba


def test_prepare_for_format():
    img16 = np.full((2, 2, 4), 65535, np.uint16)
    out, notes = prepare_for_format(img16, "jpg")
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3) and (out == 255).all() and len(notes) == 2
    out, notes = prepare_for_format(img16, "png")
    assert out is img16 and not notes
    la = np.zeros((2, 2, 2), np.uint8)
    assert prepare_for_format(la, "png")[0].shape == (2, 2, 4)


def test_write_roundtrip_16bit_and_alpha(tmp_path):
    img = (np.arange(48, dtype=np.uint16).reshape(3, 4, 4) * 1000).astype(np.uint16)
    write_image(tmp_path / "x.png", img)
    back = read_image(tmp_path / "x.png").pixels
    assert back.dtype == np.uint16 and np.array_equal(back, img)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_full_disk_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def full(fd, data):
        import os

        os.write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "_write_fully", full)
    with pytest.raises(ImageError, match="No space left"):
        write_image(target, np.zeros((4, 4, 3), np.uint8))
    assert target.read_bytes() == b"old", "the previous file must be untouched"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"], "no temp file left behind"


def test_write_unknown_format(tmp_path):
    with pytest.raises(ImageError):
        write_image(tmp_path / "x.nosuchformat", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ImageError, match="suffix"):
        write_image(tmp_path / "noext", np.zeros((2, 2, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
