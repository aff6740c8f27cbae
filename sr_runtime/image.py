"""Image I/O for sr-run (OpenCV + numpy): 8/16-bit by dtype, gray/alpha modes, EXIF orientation, atomic writes.

Images are OpenCV arrays: ``(H, W)`` gray, ``(H, W, 2)`` gray+alpha, ``(H, W, 3)`` BGR or ``(H, W, 4)`` BGRA,
dtype uint8 (0..255) or uint16 (0..65535). The bit depth is decided by the dtype, never by the values
(upstream's ``max > 256`` test treats a dark 16-bit image as 8-bit).
"""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from sr_runtime.codec_messages import captured_codec_messages, gist
from sr_runtime.errors import ImageError
from sr_runtime.fileio import atomic_write_bytes

Mode = Literal["L", "LA", "RGB", "RGBA"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".jp2", ".ppm", ".pgm", ".pnm")
"""File suffixes treated as images when IN is a folder or a glob."""
OUTPUT_EXTS = ("png", "jpg", "webp", "tif", "bmp")
"""Formats sr-run writes."""


@dataclass(frozen=True)
class LoadedImage:
    """An image read from disk, orientation applied."""

    pixels: np.ndarray
    """OpenCV layout (see module docstring), uint8 or uint16."""
    mode: Mode
    """``L``, ``LA``, ``RGB`` or ``RGBA``."""
    path: Path
    """Where it was read from."""
    orientation: int = 1
    """The EXIF orientation that was applied (1 = none)."""


def image_mode(img: np.ndarray) -> Mode:
    """The mode of an OpenCV array by its channel count.

    Raises:
        ImageError: not 2-D or 1 to 4 channels.
    """
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        return "L"
    if img.ndim == 3 and img.shape[2] in (2, 3, 4):
        return {2: "LA", 3: "RGB", 4: "RGBA"}[img.shape[2]]  # type: ignore[return-value]
    raise ImageError(f"unsupported image shape {img.shape}", "Use gray, gray+alpha, BGR or BGRA images.")


def dtype_max(dtype: np.dtype) -> int:
    """255 for uint8, 65535 for uint16.

    Raises:
        ImageError: another dtype.
    """
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    raise ImageError(f"unsupported pixel type {dtype}", "Use 8-bit or 16-bit images.")


# --------------------------------------------------------------------------- EXIF orientation
def _tiff_orientation(b: bytes) -> int:
    if len(b) < 8 or b[:2] not in (b"II", b"MM"):
        return 1
    order: Literal["little", "big"] = "little" if b[:2] == b"II" else "big"
    u16 = lambda o: int.from_bytes(b[o:o + 2], order)  # noqa: E731
    off = int.from_bytes(b[4:8], order)
    if off + 2 > len(b):
        return 1
    for i in range(u16(off)):
        e = off + 2 + 12 * i
        if e + 12 > len(b):
            break
        if u16(e) == 0x0112:
            v = u16(e + 8)
            return v if 1 <= v <= 8 else 1
    return 1


def exif_orientation(data: bytes) -> int:
    """EXIF orientation (1..8) of an encoded JPEG, PNG (eXIf), WebP (EXIF) or TIFF file; 1 when absent."""
    try:
        if data[:2] == b"\xff\xd8":
            pos = 2
            while pos + 4 <= len(data) and data[pos] == 0xFF:
                marker = data[pos + 1]
                if marker == 0xDA:  # start of scan: no metadata after it
                    break
                if marker in (0x01, 0xFF) or 0xD0 <= marker <= 0xD8:
                    pos += 1 if marker == 0xFF else 2
                    continue
                n = int.from_bytes(data[pos + 2:pos + 4], "big")
                seg = data[pos + 4:pos + 2 + n]
                if marker == 0xE1 and seg[:6] == b"Exif\x00\x00":
                    return _tiff_orientation(seg[6:])
                pos += 2 + n
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            pos = 8
            while pos + 8 <= len(data):
                n = int.from_bytes(data[pos:pos + 4], "big")
                kind = data[pos + 4:pos + 8]
                if kind == b"eXIf":
                    return _tiff_orientation(data[pos + 8:pos + 8 + n])
                if kind == b"IEND":
                    break
                pos += 12 + n
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            pos = 12
            while pos + 8 <= len(data):
                n = int.from_bytes(data[pos + 4:pos + 8], "little")
                if data[pos:pos + 4] == b"EXIF":
                    chunk = data[pos + 8:pos + 8 + n]
                    return _tiff_orientation(chunk[6:] if chunk[:6] == b"Exif\x00\x00" else chunk)
                pos += 8 + n + (n & 1)
        elif data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_orientation(data)
    except (IndexError, ValueError):
        return 1
    return 1


def apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip an ``(H, W[, C])`` array so that it displays upright (EXIF orientation 1..8), as
    ``cv2.imread(..., IMREAD_COLOR)`` does."""
    o = orientation
    if o == 2:
        img = img[:, ::-1]
    elif o == 3:
        img = img[::-1, ::-1]
    elif o == 4:
        img = img[::-1]
    elif o == 5:
        img = img.swapaxes(0, 1)
    elif o == 6:
        img = np.rot90(img, -1)
    elif o == 7:
        img = img[::-1, ::-1].swapaxes(0, 1)
    elif o == 8:
        img = np.rot90(img, 1)
    else:
        return img
    return np.ascontiguousarray(img)


# --------------------------------------------------------------------------- reading
def decode_image(data: bytes, path: str | Path = "<memory>", max_pixels: int | None = None) -> LoadedImage:
    """Decode an encoded image keeping bit depth and alpha (``IMREAD_UNCHANGED``) and apply its EXIF
    orientation (which ``IMREAD_UNCHANGED`` ignores).

    Raises:
        ImageError: undecodable bytes, an unsupported pixel type, or more than ``max_pixels`` pixels.
    """
    p = Path(path)
    if not data:
        raise ImageError("the file is empty", "Check the file.", p)
    img = _imdecode(data, p)
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"unsupported pixel type {img.dtype}", "Convert it to an 8-bit or 16-bit image.", p)
    if max_pixels is not None and img.shape[0] * img.shape[1] > max_pixels:
        raise ImageError(f"{img.shape[1]}x{img.shape[0]} is more than --max-pixels {max_pixels}",
                         "Raise --max-pixels if you mean it.", p)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    o = exif_orientation(data)
    img = apply_orientation(img, o)
    return LoadedImage(img, image_mode(img), p, o)


def _imdecode(data: bytes, p: Path) -> np.ndarray:
    """``cv2.imdecode(IMREAD_UNCHANGED)`` with the codec's stderr lines captured and OpenCV's exceptions turned
    into one :class:`ImageError` (the codec's message, if any, in parentheses).

    Raises:
        ImageError: OpenCV refuses or cannot decode the bytes.
    """
    refused: cv2.error | None = None
    with captured_codec_messages() as messages:
        try:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            img, refused = None, exc
    if refused is not None and "CV_IO_MAX_IMAGE_PIXELS" in str(refused):
        raise ImageError("the image has more pixels than OpenCV decodes (2^30 by default)",
                         "Set OPENCV_IO_MAX_IMAGE_PIXELS to a larger number of pixels if you mean it.", p)
    if img is None or img.size == 0:
        why = gist(messages + ([str(refused)] if refused is not None else []))
        raise ImageError("cannot decode the image" + (f" ({why})" if why else ""),
                         "The file is corrupt or not an image format OpenCV reads.", p)
    return img


def read_image(path: str | Path, max_pixels: int | None = None) -> LoadedImage:
    """Read an image file (any path, including non-ASCII names) with :func:`decode_image`; ``max_pixels`` is
    checked from the header first (:mod:`sr_runtime.imageheader`), then after the decode.

    Raises:
        ImageError: missing, unreadable or undecodable file.
    """
    p = Path(path)
    check_regular(p)
    if max_pixels is not None:
        from sr_runtime.imageheader import check_max_pixels, read_header

        check_max_pixels(read_header(p), max_pixels, p)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageError("file not found", "Check the path.", p) from None
    except OSError as exc:
        raise ImageError(f"cannot read the file ({exc.strerror or exc})", "Check its permissions.", p) from None
    return decode_image(data, p, max_pixels)


def check_regular(p: Path) -> None:
    """Refuse what is not a regular file before reading it (a folder named x.png, a symlink loop or a dangling
    link, a FIFO that would block the reader forever).

    Raises:
        ImageError: naming what it is.
    """
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise ImageError("broken symbolic link", "Point the link at an image or remove it.", p) from None
        raise ImageError("file not found", "Check the path.", p) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageError("symbolic link loop", "Fix or remove the link.", p) from None
        raise ImageError(f"cannot read the file ({exc.strerror or exc})", "Check its permissions.", p) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageError("is a folder, not an image file",
                         "Rename it or move it out of the input folder (folders are not read recursively).", p)
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("not a regular file (a device, FIFO or socket)", "Pass image files only.", p)


# --------------------------------------------------------------------------- writing
def to_8bit(img: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 with rounding (``round(v * 255 / 65535)``); uint8 unchanged."""
    if img.dtype == np.uint8:
        return img
    return ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def composite(img: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """A BGRA image over an opaque ``background`` (RGB, 0..255): ``color * a + background * (1 - a)``, BGR of the
    input's dtype."""
    top = float(np.iinfo(img.dtype).max)
    a = img[..., 3:4].astype(np.float32) / np.float32(top)
    bg = np.asarray(background[::-1], np.float32) * np.float32(top / 255.0)
    out = img[..., :3].astype(np.float32) * a + bg * (np.float32(1.0) - a)
    return np.round(out).astype(img.dtype)


def prepare_for_format(img: np.ndarray, ext: str,
                       background: tuple[int, int, int] = (255, 255, 255)) -> tuple[np.ndarray, list[str]]:
    """Adapt an OpenCV array to what the format can store; returns the array and notes on what changed.

    JPEG/WebP/BMP are 8-bit: 16-bit is reduced. JPEG/BMP have no alpha: the image is composited onto
    ``background`` (RGB, 0..255; white by default), so that colours under transparent pixels do not show.
    Gray+alpha is stored as BGRA (OpenCV writes no 2-channel images).
    """
    e = ext.lower().lstrip(".")
    notes: list[str] = []
    if img.ndim == 3 and img.shape[2] == 2:
        g, a = img[..., 0], img[..., 1]
        img = np.dstack([g, g, g, a])
    if e in ("jpg", "jpeg", "webp", "bmp") and img.dtype == np.uint16:
        img = to_8bit(img)
        notes.append(f"{e} stores 8 bits: 16-bit output reduced to 8-bit (use png or tif to keep 16 bits)")
    if e in ("jpg", "jpeg", "bmp") and img.ndim == 3 and img.shape[2] == 4:
        img = composite(img, background)
        color = "white" if tuple(background) == (255, 255, 255) else "rgb({},{},{})".format(*background)
        notes.append(f"{e} has no alpha channel: composited onto {color} (--background; use png to keep alpha)")
    return img, notes


def encode_image(img: np.ndarray, ext: str) -> bytes:
    """Encode an OpenCV array (already :func:`prepare_for_format`-ed) as ``ext``.

    Raises:
        ImageError: OpenCV cannot encode it.
    """
    e = "." + ext.lower().lstrip(".")
    params: list[int] = []
    if e in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, 95]
    # PNG: OpenCV's default settings, as upstream writes (2026-12-03, a 2560x1920 x4 photo, one thread: 0.24 s and
    # 5.8 MB; the explicit level 3 used before took 0.62 s for 6.1 MB and slowed folders of photos by ~10 %)
    try:
        ok, buf = cv2.imencode(e, img, params)
    except cv2.error as exc:
        raise ImageError(f"cannot encode as {e} ({' '.join(str(exc).split())[-120:]})",
                         "Choose another --ext.") from None
    if not ok:
        raise ImageError(f"cannot encode as {e}", "Choose another --ext.")
    return buf.tobytes()


def write_image(path: str | Path, img: np.ndarray, ext: str | None = None, *,
                background: tuple[int, int, int] = (255, 255, 255)) -> list[str]:
    """Encode and atomically write an image; the format comes from ``ext`` or the path's suffix (alpha goes
    onto ``background`` for formats without alpha, see :func:`prepare_for_format`).

    Returns:
        Notes on conversions the format forced (16 -> 8 bit, alpha dropped).

    Raises:
        ImageError: unknown format, encoding or writing failed (nothing is left at ``path``).
    """
    p = Path(path)
    e = (ext or p.suffix).lower().lstrip(".")
    if not e:
        raise ImageError("no output format", "Give the output file a suffix (.png, .jpg) or use --ext.", p)
    img, notes = prepare_for_format(img, e, background)
    try:
        data = encode_image(img, e)
    except ImageError as exc:
        raise ImageError(exc.message, exc.hint, p) from None
    try:
        atomic_write_bytes(p, data)
    except OSError as exc:
        raise ImageError(f"cannot write ({exc.strerror or exc})",
                         "Check the folder's permissions and the free disk space.", p) from None
    return notes
