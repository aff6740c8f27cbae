"""An image's size from its header, without decoding a pixel: PNG, JPEG, TIFF/BigTIFF, WebP, BMP, PNM and JPEG 2000.

sr-run checks ``--max-pixels`` and the memory a job needs (:mod:`sr_runtime.bigimage`) from this before any
decode, so a 74-byte PNG claiming 100000x100000, or a 9 MB one that inflates to 8 GiB, is refused in
milliseconds. Each parser reads a few hundred bytes (JPEG: its marker segments up to the frame header, skipped
by seeking; PNG: its chunk headers up to the first IDAT; TIFF: the first page's tags through ``tifffile``,
which reads no pixels).

``channels`` and ``bit_depth`` describe the array OpenCV's ``imread(IMREAD_UNCHANGED)`` returns (gray+alpha and
palette-with-transparency PNGs decode to 4 channels, CMYK JPEGs to 3, 1/2/4-bit gray to 8 bits), which is what
a decode costs. A file whose format is not recognised gives None: the decoder then decides.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sr_runtime.errors import ImageError


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says about the image."""

    format: str
    """``png``, ``jpeg``, ``tiff``, ``webp``, ``bmp``, ``pnm`` or ``jp2``."""
    width: int
    """Columns."""
    height: int
    """Rows."""
    channels: int
    """Channels of the decoded array (OpenCV ``IMREAD_UNCHANGED``)."""
    bit_depth: int
    """Bits per channel of the decoded array (8, 16, or 32/64 for float TIFFs)."""
    interlaced: bool = False
    """An interlaced PNG (it cannot be read row by row)."""

    @property
    def pixels(self) -> int:
        """``width * height``."""
        return self.width * self.height

    @property
    def decoded_bytes(self) -> int:
        """Bytes of the decoded array."""
        return self.pixels * self.channels * max(1, self.bit_depth // 8)

    @property
    def size(self) -> str:
        """``WxH``."""
        return f"{self.width}x{self.height}"


def read_header(path: str | Path) -> ImageHeader | None:
    """The size, channels and bit depth of an image file, from its header only.

    Returns:
        None when the format is not one of those above (or the file is too short to tell): the decoder decides.

    Raises:
        ImageError: the header is recognised but says the image is empty (zero width or height); the file
            cannot be opened.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(64)
            parse = _parser(head)
            header = parse(f, head) if parse is not None else None
    except (struct.error, ValueError, IndexError):
        return None  # a header cut short or garbled: the decoder will say what is wrong with the file
    except OSError as exc:
        raise ImageError(f"cannot read the file ({exc.strerror or exc})", "Check the path and its permissions.",
                         p) from None
    if header is not None and (header.width <= 0 or header.height <= 0):
        raise ImageError(f"the {header.format} header gives an empty image ({header.size})",
                         "The file is corrupt.", p)
    return header


def check_max_pixels(header: ImageHeader | None, max_pixels: int | None, path: str | Path) -> None:
    """Refuse an image with more pixels than ``max_pixels`` (``--max-pixels``) by its header.

    Raises:
        ImageError: over the limit (nothing happens without a header or a limit).
    """
    if header is not None and max_pixels is not None and header.pixels > max_pixels:
        raise ImageError(f"{header.size} is more than --max-pixels {max_pixels}", "Raise --max-pixels if you mean it.",
                         Path(path))


def _parser(head: bytes):  # noqa: ANN202 - a parser function or None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png
    if head.startswith(b"\xff\xd8"):
        return _jpeg
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp
    if head[:2] == b"BM":
        return _bmp
    if len(head) > 2 and head[:1] == b"P" and head[1:2] in b"123456" and head[2:3].isspace():
        return _pnm
    if head[4:8] == b"jP  " or head.startswith(b"\xff\x4f\xff\x51"):
        return _jp2
    return None


# --------------------------------------------------------------------------- PNG
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}
"""PNG colour type -> channels OpenCV decodes (gray+alpha becomes BGRA, palette BGR)."""


def _png(f: BinaryIO, head: bytes) -> ImageHeader:
    w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if head[12:16] != b"IHDR" or color not in _PNG_CHANNELS:
        raise ValueError("not a PNG header")
    channels = _PNG_CHANNELS[color]
    if color in (0, 2, 3) and _png_has_trns(f):
        channels = 4  # OpenCV turns tRNS into an alpha channel
    return ImageHeader("png", w, h, channels, 16 if depth == 16 else 8, interlace == 1)


def _png_has_trns(f: BinaryIO) -> bool:
    """Whether a tRNS chunk comes before the image data (chunk headers only, data skipped by seeking)."""
    f.seek(33)
    for _ in range(10_000):
        n_kind = f.read(8)
        if len(n_kind) < 8:
            return False
        n, kind = struct.unpack(">I4s", n_kind)
        if kind == b"tRNS":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        f.seek(n + 4, 1)
    return False


# --------------------------------------------------------------------------- JPEG
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(f: BinaryIO, head: bytes) -> ImageHeader | None:
    f.seek(2)
    for _ in range(100_000):
        b = f.read(1)
        if not b:
            return None
        if b != b"\xff":
            continue
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            return None
        m = marker[0]
        if m in (0x01, 0xD8) or 0xD0 <= m <= 0xD7:
            continue  # markers without a length
        if m in (0xD9, 0xDA):
            return None  # end of image / start of scan before any frame header
        (n,) = struct.unpack(">H", f.read(2))
        if m in _SOF:
            precision, h, w, comps = struct.unpack(">BHHB", f.read(6))
            return ImageHeader("jpeg", w, h, 1 if comps == 1 else 3, 16 if precision > 8 else 8)
        f.seek(n - 2, 1)
    return None


# --------------------------------------------------------------------------- TIFF
def _tiff(f: BinaryIO, head: bytes) -> ImageHeader | None:
    """The first page's tags through tifffile (it reads no pixels here)."""
    import tifffile

    f.seek(0)
    try:
        with tifffile.TiffFile(f) as tif:
            page = tif.pages.first
            w, h, spp = int(page.imagewidth), int(page.imagelength), int(page.samplesperpixel)
            bits, photometric = int(page.bitspersample), int(page.photometric)
    except (tifffile.TiffFileError, KeyError, IndexError, ValueError, TypeError, AttributeError):
        return None
    channels = 3 if photometric in (3, 6) else min(spp, 4)  # palette and YCbCr decode to BGR
    return ImageHeader("tiff", w, h, channels, bits if bits in (16, 32, 64) else 8)


# --------------------------------------------------------------------------- WebP
def _webp(f: BinaryIO, head: bytes) -> ImageHeader | None:
    kind = head[12:16]
    if kind == b"VP8X":
        flags = head[20]
        w = 1 + int.from_bytes(head[24:27], "little")
        h = 1 + int.from_bytes(head[27:30], "little")
        return ImageHeader("webp", w, h, 4 if flags & 0x10 else 3, 8)
    if kind == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        w, h = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
        return ImageHeader("webp", w, h, 4 if bits >> 28 & 1 else 3, 8)
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", head[26:30])
        return ImageHeader("webp", w & 0x3FFF, h & 0x3FFF, 3, 8)
    return None


# --------------------------------------------------------------------------- BMP
def _bmp(f: BinaryIO, head: bytes) -> ImageHeader | None:
    (dib,) = struct.unpack("<I", head[14:18])
    if dib == 12:  # BITMAPCOREHEADER
        w, h, _, bpp = struct.unpack("<HHHH", head[18:26])
    elif dib >= 40:
        w, h, _, bpp = struct.unpack("<iiHH", head[18:30])
    else:
        return None
    return ImageHeader("bmp", w, abs(h), 4 if bpp == 32 else 3, 8)


# --------------------------------------------------------------------------- PNM
def _pnm(f: BinaryIO, head: bytes) -> ImageHeader | None:
    f.seek(0)
    text = f.read(1024)
    fields: list[bytes] = []
    for line in text.split(b"\n"):
        fields += line.split(b"#", 1)[0].split()
        if len(fields) >= 4:
            break
    kind = fields[0][1:2]
    need = 3 if kind in b"14" else 4
    if len(fields) < need:
        return None
    w, h = int(fields[1]), int(fields[2])
    maxval = int(fields[3]) if need == 4 else 1
    return ImageHeader("pnm", w, h, 3 if kind in b"36" else 1, 16 if maxval > 255 else 8)


# --------------------------------------------------------------------------- JPEG 2000
def _jp2(f: BinaryIO, head: bytes) -> ImageHeader | None:
    f.seek(0)
    data = f.read(4096)
    if data.startswith(b"\xff\x4f\xff\x51"):  # a raw codestream: the SIZ segment follows SOC
        xsiz, ysiz, x0, y0 = struct.unpack(">IIII", data[8:24])
        (comps,) = struct.unpack(">H", data[40:42])
        depth = (data[42] & 0x7F) + 1
        return ImageHeader("jp2", xsiz - x0, ysiz - y0, min(comps, 4), 16 if depth > 8 else 8)
    i = data.find(b"ihdr")
    if i < 0:
        return None
    h, w, comps, bpc = struct.unpack(">IIHB", data[i + 4:i + 15])
    return ImageHeader("jp2", w, h, min(comps, 4), 16 if (bpc & 0x7F) + 1 > 8 else 8)
