"""PNG files written chunk by chunk: headers that lie, bad CRCs, and decompression bombs built in a second.

OpenCV and Pillow only write honest files; these cases need a PNG whose IHDR claims what its data does not
hold, or one whose data inflates to gigabytes. A bomb is made without compressing gigabytes: after a full flush
deflate restarts from an empty window, so one row of zeros compresses to the same block every time; the block
is repeated and the zlib trailer (adler32 of all-zero data: ``A = 1``, ``B = n mod 65521``) is computed.
"""

from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {"gray": 0, "rgb": 2, "palette": 3, "gray_alpha": 4, "rgba": 6}
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk; ``crc`` overrides the correct CRC (to forge a bad one)."""
    good = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", good if crc is None else crc)


def ihdr(width: int, height: int, depth: int = 8, color: str = "rgb", interlace: int = 0) -> bytes:
    """The IHDR chunk (any values, valid or not)."""
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, COLOR_TYPES[color], 0, 0, interlace))


def png(width: int, height: int, idat: bytes, *, depth: int = 8, color: str = "rgb",
        before_idat: tuple[bytes, ...] = ()) -> bytes:
    """A PNG with the given header, extra chunks (already framed) and compressed image data."""
    return (SIGNATURE + ihdr(width, height, depth, color) + b"".join(before_idat) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def raw_rows(pixels, depth: int = 8) -> bytes:
    """Filter-0 scanlines of a ``(H, W[, C])`` uint8/uint16 numpy array (16-bit big-endian, as PNG stores it)."""
    import numpy as np

    a = np.asarray(pixels)
    a = a.reshape(a.shape[0], -1)
    if depth == 16:
        a = a.astype(">u2").view(np.uint8).reshape(a.shape[0], -1)
    rows = np.concatenate([np.zeros((a.shape[0], 1), np.uint8), a.astype(np.uint8)], axis=1)
    return rows.tobytes()


def zero_bomb(width: int, height: int, *, depth: int = 8, color: str = "rgb") -> bytes:
    """A valid PNG of ``width`` x ``height`` black pixels whose IDAT is built without compressing them.

    32768 x 32768 16-bit RGBA (8 GiB decoded) gives an 8.4 MB file in about a second.
    """
    row = b"\0" * (1 + width * CHANNELS[COLOR_TYPES[color]] * depth // 8)
    c = zlib.compressobj(9)
    first = c.compress(row) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(row) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(row) + c.flush(zlib.Z_FULL_FLUSH)
    assert block == again, "deflate did not repeat itself after a full flush"
    tail = c.compress(b"") + c.flush(zlib.Z_FINISH)  # final empty block + adler32 of what c saw
    n = len(row) * height
    adler = ((n % 65521) << 16) | 1  # every byte is zero: A stays 1, B adds A once per byte
    data = first + block * (height - 1) + tail[:-4] + struct.pack(">I", adler)
    return png(width, height, data, depth=depth, color=color)
