"""Images read and written band by band, so that memory does not grow with the image.

Readers (:class:`~sr_runtime.api.RowSource`, rows in the layout and values ``cv2.imread(IMREAD_UNCHANGED)``
gives; the header and a scan of the chunk/tag table decide whether a file can be read this way,
:func:`open_rows`):

- :class:`ArrayRows`: a decoded image (whole-read inputs with a streamed output);
- :class:`PngRows`: a non-interlaced 8/16-bit gray, gray+alpha, RGB or RGBA PNG, inflated and unfiltered in
  order by ``pypng`` (pure Python: about 2 MP/s here, used only for inputs too big to decode whole);
- :class:`TiffRows`: the first page of a stripped or tiled, chunky, gray/RGB(A) 8/16-bit TIFF or BigTIFF, one
  row of strips or tiles at a time through ``tifffile`` (its codecs, or ``imagecodecs`` for LZW and others).

Writers (:class:`BandWriter`): the bands go through a bounded queue to an encoder thread that writes a hidden
temp file beside the output (:func:`sr_runtime.fileio.atomic_write`), renamed into place by
:meth:`BandWriter.close` and removed by :meth:`BandWriter.abort` or any error (Ctrl-C and SIGTERM included):

- :class:`PngBands`: PNG rows filtered in numpy (per row the best of four filters, as libpng chooses) and
  deflated by zlib at level 3, as OpenCV writes them; ``pypng`` writes the header and chunks. pypng's own writer stores unfiltered rows: 1.8x the file size of OpenCV's, and its 16-bit
  rows are converted in Python at a third of the speed (measured in docs/big-images.md);
- :class:`TiffBands`: a tiled (256 x 256) TIFF through ``tifffile``, deflate with horizontal predictor,
  BigTIFF when the pixels pass 4 GiB: the layout of maps, satellite and slide images.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sr_runtime import signals
from sr_runtime.errors import ImageError
from sr_runtime.fileio import atomic_write
from sr_runtime.imageheader import ImageHeader

STREAM_FORMATS = ("png", "tif")
"""Output formats written band by band."""
TIFF_TILE = 256
"""Tile side of streamed TIFF outputs."""
BIGTIFF_ABOVE = 2**32 - 2**25
"""TIFF outputs with more bytes of pixels than this are BigTIFF (tifffile's own limit for classic TIFF)."""
PNG_LEVEL = 3
"""zlib level of streamed PNGs (sr-run's whole-image PNGs use OpenCV's level 3 too)."""


def _bgr_order(a: np.ndarray) -> np.ndarray:
    """RGB(A) <-> BGR(A) (gray unchanged): a view."""
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return a[..., [2, 1, 0, 3][:a.shape[2]]]
    return a


# =========================================================================== readers
class ArrayRows:
    """The rows of an image already in memory."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.height, self.width = pixels.shape[:2]
        self.channels = 1 if pixels.ndim == 2 else pixels.shape[2]

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``[y0, y1)`` (a view)."""
        return self.pixels[y0:y1]

    def close(self) -> None:
        """Nothing to release."""


class _Forward:
    """Rows produced in order and kept from the lowest one still asked for: ``rows(y0, y1)`` with ``y0`` never
    going back (the tiler's bands overlap by the tile pad)."""

    def __init__(self, path: Path, height: int, width: int, channels: int) -> None:
        self.path, self.height, self.width, self.channels = path, height, width, channels
        self._kept: deque[np.ndarray] = deque()
        self._first = 0  # image row of self._kept[0]

    def _next(self) -> list[np.ndarray]:
        """The next rows in file order, converted (at least one)."""
        raise NotImplementedError

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``[y0, y1)`` (a new array).

        Raises:
            ImageError: the data is corrupt or ends early; ``y0`` before a row already dropped.
        """
        if y0 < self._first:
            raise ImageError(f"rows {y0}-{y1} asked after row {self._first}: the reader only goes forward",
                             "Report this (a streamed read out of order).", self.path)
        while self._first + len(self._kept) < y1:
            self._kept.extend(self._next())
        while self._first < y0:
            self._kept.popleft()
            self._first += 1
        return np.stack(list(itertools.islice(self._kept, 0, y1 - y0)))

    def close(self) -> None:
        """Release the file."""


_TO_OPENCV = {2: [0, 0, 0, 1], 3: [2, 1, 0], 4: [2, 1, 0, 3]}
"""pypng's planes -> OpenCV's channels (gray+alpha decodes to BGRA)."""


class PngRows(_Forward):
    """A non-interlaced 8/16-bit gray, gray+alpha, RGB or RGBA PNG, row by row: ``pypng`` undoes the filters;
    the data is inflated here at most ``INFLATE_BYTES`` at a time (pypng's own ``read()`` inflates each IDAT
    chunk whole: a 3 MB chunk of zeros is 2.7 GB)."""

    INFLATE_BYTES = 1 << 20

    def __init__(self, path: Path, header: ImageHeader) -> None:
        import png

        super().__init__(path, header.height, header.width, header.channels)
        self._file = open(path, "rb")  # noqa: SIM115 - held until close()
        try:
            reader = png.Reader(file=self._file)
            reader.preamble()
        except Exception as exc:  # noqa: BLE001 - pypng raises several kinds; each is the file's fault
            self._file.close()
            raise _decode_error(exc, path) from None
        self._planes = int(reader.planes)
        self._dtype = np.dtype(">u2") if reader.bitdepth == 16 else np.dtype(np.uint8)
        self._iter = reader._iter_straight_packed(self._inflated(reader))  # the unfiltering of pypng's read()

    def _inflated(self, reader: Any) -> Iterator[bytes]:
        """The IDAT chunks' data, inflated in pieces of at most ``INFLATE_BYTES``."""
        z = zlib.decompressobj()
        while True:
            kind, data = reader.chunk()
            if kind == b"IEND":
                break
            while kind == b"IDAT" and data:
                out = z.decompress(data, self.INFLATE_BYTES)
                data = z.unconsumed_tail
                if out:
                    yield out
        yield z.flush()

    def _next(self) -> list[np.ndarray]:
        try:
            row = next(self._iter)
        except StopIteration:
            raise ImageError("cannot decode the image (the PNG data ends early)", "The file is corrupt.",
                             self.path) from None
        except Exception as exc:  # noqa: BLE001
            raise _decode_error(exc, self.path) from None
        a = np.frombuffer(row, self._dtype).reshape(self.width, self._planes)
        if self._planes == 1:
            return [a[:, 0].astype(self._dtype.newbyteorder("="))]
        return [a[:, _TO_OPENCV[self._planes]].astype(self._dtype.newbyteorder("="))]

    def close(self) -> None:
        self._file.close()


def _decode_error(exc: BaseException, path: Path) -> ImageError:
    """One line for a decoder's exception (pypng's messages already start with their class name)."""
    why, name = " ".join(str(exc).split()), type(exc).__name__
    why = why if why.startswith(f"{name}:") else f"{name}: {why}"
    return ImageError(f"cannot decode the image ({why[:180]})", "The file is corrupt.", path)


class TiffRows(_Forward):
    """The first page of a chunky gray/RGB(A) 8/16-bit TIFF, one row of strips or tiles at a time."""

    def __init__(self, path: Path, header: ImageHeader) -> None:
        import tifffile

        super().__init__(path, header.height, header.width, header.channels)
        self._tif = tifffile.TiffFile(path)
        page = self._tif.pages.first
        self._page = page
        self._seg_h = int(page.tilelength if page.is_tiled else page.rowsperstrip) or header.height
        self._seg_w = int(page.tilewidth) if page.is_tiled else header.width
        self._per_row = -(-header.width // self._seg_w)
        self._k = 0  # next row of segments

    def _next(self) -> list[np.ndarray]:
        page, fh, k = self._page, self._tif.filehandle, self._k
        y0 = k * self._seg_h
        n = min(self._seg_h, self.height - y0)
        if n <= 0:
            raise ImageError("cannot decode the image (the TIFF has fewer rows than it says)", "The file is corrupt.",
                             self.path)
        out = np.empty((n, self.width, int(page.samplesperpixel)), page.dtype)
        for j in range(self._per_row):
            index = k * self._per_row + j
            try:
                fh.seek(int(page.dataoffsets[index]))
                data = fh.read(int(page.databytecounts[index]))
                seg = page.decode(data, index, jpegtables=page.jpegtables)[0]
            except Exception as exc:  # noqa: BLE001 - tifffile and its codecs raise several kinds
                raise _decode_error(exc, self.path) from None
            x0 = j * self._seg_w
            w = min(self._seg_w, self.width - x0)
            out[:, x0:x0 + w] = seg.reshape(seg.shape[-3:])[:n, :w]
        self._k += 1
        rows = _bgr_order(out[..., 0] if out.shape[2] == 1 else out)
        return list(np.ascontiguousarray(rows))

    def close(self) -> None:
        self._tif.close()


def open_rows(path: str | Path, header: ImageHeader) -> PngRows | TiffRows | None:
    """A row reader for ``path`` when its format and layout allow one, else None (decode it whole)."""
    p = Path(path)
    if header.format == "png" and _png_rows_ok(p, header):
        return PngRows(p, header)
    if header.format == "tiff" and _tiff_rows_ok(p):
        return TiffRows(p, header)
    return None


def can_read_rows(path: str | Path, header: ImageHeader) -> bool:
    """Whether :func:`open_rows` gives a reader (from the header and the chunk or tag table, no pixels)."""
    p = Path(path)
    if header.format == "png":
        return _png_rows_ok(p, header)
    return header.format == "tiff" and _tiff_rows_ok(p)


def _png_rows_ok(p: Path, header: ImageHeader) -> bool:
    """8/16-bit, not interlaced, gray/gray+alpha/RGB/RGBA (no palette, no tRNS), no EXIF rotation."""
    import png

    if header.interlaced or header.bit_depth not in (8, 16):
        return False
    try:
        with open(p, "rb") as f:
            r = png.Reader(file=f)
            r.preamble()
            plain = r.color_type in (0, 2, 4, 6) and r.bitdepth in (8, 16) and r.trns is None
            return plain and not _png_rotated(f)
    except Exception:  # noqa: BLE001 - whatever pypng dislikes is left to the decoder
        return False


def _png_rotated(f: Any) -> bool:
    """Whether an eXIf chunk (anywhere before IEND: chunk headers are read, data skipped) rotates the image."""
    from sr_runtime.image import exif_orientation

    f.seek(8)
    while head := f.read(8):
        if len(head) < 8:
            return False
        n, kind = int.from_bytes(head[:4], "big"), head[4:]
        if kind == b"eXIf":
            return exif_orientation(b"\x89PNG\r\n\x1a\n" + head + f.read(n)) != 1
        if kind == b"IEND":
            return False
        f.seek(n + 4, 1)
    return False


_TIFF_CODECS_BUILTIN = (1, 8, 32946, 32773)
"""Compressions tifffile decodes without imagecodecs: none, deflate (two tags), packbits."""


def _tiff_rows_ok(p: Path) -> bool:
    """Chunky gray/RGB(A) uint8/uint16, top-left orientation, no subsampling, a codec at hand."""
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            page = tif.pages.first
            spp, photometric = int(page.samplesperpixel), int(page.photometric)
            ok = (page.dtype in (np.uint8, np.uint16) and int(page.fillorder) == 1
                  and (photometric, spp) in ((1, 1), (2, 3), (2, 4)) and (spp == 1 or int(page.planarconfig) == 1)
                  and int(page.tags.valueof(274, 1)) == 1 and not page.is_subsampled
                  and len(page.dataoffsets) == _segments(page))
            return ok and (int(page.compression) in _TIFF_CODECS_BUILTIN or _have_imagecodecs())
    except Exception:  # noqa: BLE001 - whatever tifffile dislikes is left to the decoder
        return False


def _segments(page: Any) -> int:
    """Strips or tiles a chunky page has."""
    h, w = int(page.imagelength), int(page.imagewidth)
    if page.is_tiled:
        return -(-h // int(page.tilelength)) * -(-w // int(page.tilewidth))
    return -(-h // (int(page.rowsperstrip) or h))


def _have_imagecodecs() -> bool:
    import importlib.util

    return importlib.util.find_spec("imagecodecs") is not None


# =========================================================================== writers
_END = object()
_ABORT = object()


class _Aborted(Exception):
    """The producer gave up: the temp file goes."""


class BandWriter:
    """Writes an image band by band in an encoder thread, to a temp file renamed into place at :meth:`close`.

    Args:
        path: the output file.
        height, width: the output size.
        channels: 1, 3 or 4 (OpenCV layout: gray, BGR, BGRA); the bands must be :func:`prepare_for_format`-ed.
        dtype: uint8 or uint16.
    """

    def __init__(self, path: str | Path, height: int, width: int, channels: int, dtype: np.dtype) -> None:
        self.path = Path(path)
        self.height, self.width, self.channels, self.dtype = height, width, channels, np.dtype(dtype)
        self._q: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._rows = 0
        self._thread = threading.Thread(target=self._main, name="sr-band-writer", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            atomic_write(self.path, self._write_file)
        except BaseException as exc:  # noqa: BLE001 - handed to the producer by write()/close()
            self._error = exc

    def _write_file(self, tmp: str) -> None:
        raise NotImplementedError

    def _bands(self) -> Iterator[np.ndarray]:
        """The bands as they come (encoder thread)."""
        while True:
            item = self._q.get()
            if item is _END:
                return
            if item is _ABORT:
                raise _Aborted
            self._rows += len(item)
            yield item

    def _put(self, item: object) -> None:
        while True:
            if not self._thread.is_alive():
                self._raise()
                return
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise(self) -> None:
        exc = self._error
        if exc is None or isinstance(exc, _Aborted):
            return
        if isinstance(exc, ImageError):
            raise exc
        if isinstance(exc, OSError):
            raise ImageError(f"cannot write ({exc.strerror or exc})",
                             "Check the folder's permissions and the free disk space.", self.path) from None
        raise ImageError(f"cannot encode ({type(exc).__name__}: {exc})", "Choose another --ext.", self.path) from exc

    def write(self, band: np.ndarray) -> None:
        """Queue the next rows (OpenCV layout, ``channels`` channels, ``dtype``); blocks while one band waits.

        Raises:
            ImageError: the encoder failed (the temp file is gone).
        """
        self._put(band)

    def close(self) -> Path:
        """Wait for the encoder, then put the file in place.

        Raises:
            ImageError: fewer or more rows than ``height``, or the encoder failed (nothing is left at the path).
        """
        self._put(_END)
        self._thread.join()
        self._raise()
        return self.path

    def abort(self) -> None:
        """Stop the encoder and remove the temp file (signals are held back until it is gone)."""
        with signals.deferred():
            with contextlib.suppress(queue.Empty):
                while True:
                    self._q.get_nowait()
            if self._thread.is_alive():
                self._q.put(_ABORT)
            self._thread.join()

    def _check_rows(self) -> None:
        if self._rows != self.height:
            raise ImageError(f"internal error: {self._rows} rows written for a {self.height}-row image",
                             "Re-run with --debug and report it.", self.path)


# --------------------------------------------------------------------------- PNG
def png_filter(raw: np.ndarray, prev: np.ndarray | None, bpp: int) -> np.ndarray:
    """PNG-filter scanlines: per row the filter of None, Sub, Up and Average with the least sum of absolute values
    as signed bytes (libpng's heuristic, without Paeth), the filter byte first.

    Paeth costs more in numpy than the other four together and rarely wins on upscaled images: with zlib's
    default strategy at level 3, files come out as small as OpenCV's (libpng, all five filters) or smaller
    (measured in docs/big-images.md).

    Args:
        raw: ``(n, L)`` uint8, the rows' bytes as PNG stores them.
        prev: the row above ``raw[0]`` (None at the top of the image).
        bpp: bytes per complete pixel (1 to 8).

    Returns:
        ``(n, L + 1)`` uint8.
    """
    n = raw.shape[0]
    up = np.empty_like(raw)
    up[0] = 0 if prev is None else prev
    up[1:] = raw[:-1]
    cands = np.empty((4,) + raw.shape, np.uint8)
    cands[0] = raw
    cands[1] = raw
    cands[1][:, bpp:] -= raw[:, :-bpp]
    np.subtract(raw, up, out=cands[2])
    mean = up.astype(np.uint16)
    mean[:, bpp:] += raw[:, :-bpp]
    mean >>= 1
    np.subtract(raw, mean, out=cands[3], casting="unsafe")
    cost = np.abs(cands.view(np.int8).astype(np.int16)).sum(axis=2, dtype=np.int64)
    best = cost.argmin(axis=0)
    out = np.empty((n, raw.shape[1] + 1), np.uint8)
    out[:, 0] = best
    out[:, 1:] = cands[best, np.arange(n)]
    return out


class PngBands(BandWriter):
    """A PNG written row band by row band (see the module docstring)."""

    FILTER_BYTES = 512 << 10
    """Row bytes filtered at a time (the filter's temporaries are about 20 times this)."""
    IDAT_BYTES = 64 << 10
    """Compressed bytes gathered into one IDAT chunk (small: a reader that inflates a chunk whole stays small)."""

    def _write_file(self, tmp: str) -> None:
        import png

        depth = 16 if self.dtype == np.uint16 else 8
        bpp = self.channels * depth // 8
        with open(tmp, "wb") as f:
            png.Writer(self.width, self.height, greyscale=self.channels == 1, alpha=self.channels == 4,
                       bitdepth=depth).write_preamble(f)
            z = zlib.compressobj(PNG_LEVEL)
            pending = bytearray()
            prev: np.ndarray | None = None
            step = max(1, self.FILTER_BYTES // (self.width * bpp))
            for band in self._bands():
                for i in range(0, len(band), step):  # a few rows at a time: no copy of the whole band
                    a = _bgr_order(band[i:i + step]).astype(">u2" if depth == 16 else np.uint8, order="C")
                    part = a.view(np.uint8).reshape(len(a), -1)
                    pending += z.compress(png_filter(part, prev, bpp).data)
                    prev = part[-1].copy()
                    if len(pending) >= self.IDAT_BYTES:
                        png.write_chunk(f, b"IDAT", pending)
                        pending = bytearray()
            self._check_rows()
            png.write_chunk(f, b"IDAT", bytes(pending) + z.flush())
            png.write_chunk(f, b"IEND")


# --------------------------------------------------------------------------- TIFF
def _drop_rows(held: list[np.ndarray], rows: int) -> list[np.ndarray]:
    """``held`` without its first ``rows`` rows (views)."""
    out = []
    for piece in held:
        if rows >= len(piece):
            rows -= len(piece)
            continue
        out.append(piece[rows:])
        rows = 0
    return out


class TiffBands(BandWriter):
    """A tiled TIFF (BigTIFF past 4 GiB of pixels) written tile row by tile row (see the module docstring)."""

    def _tiles(self) -> Iterator[np.ndarray]:
        """Row-major tiles (RGB order) from the incoming bands: rows gather until a row of tiles is complete;
        each tile is copied out of the bands on its own (no copy of a whole band)."""
        t = TIFF_TILE
        held: list[np.ndarray] = []  # rows not yet written, in pieces
        n = 0
        for band in self._bands():
            held.append(band)
            n += len(band)
            while n >= t:
                yield from self._tile_row(held, t)
                held, n = _drop_rows(held, t), n - t
        self._check_rows()
        if n:
            yield from self._tile_row(held, n)

    def _tile_row(self, held: list[np.ndarray], rows: int) -> Iterator[np.ndarray]:
        """The tiles of the first ``rows`` rows of ``held``."""
        parts, need = [], rows
        for piece in held:
            parts.append(piece[:need])
            need -= len(parts[-1])
            if not need:
                break
        for x in range(0, self.width, TIFF_TILE):
            yield _bgr_order(np.concatenate([p[:, x:x + TIFF_TILE] for p in parts]))


    def _write_file(self, tmp: str) -> None:
        import tifffile

        shape = (self.height, self.width) + (() if self.channels == 1 else (self.channels,))
        raw = int(np.prod(shape)) * self.dtype.itemsize
        with tifffile.TiffWriter(tmp, bigtiff=raw > BIGTIFF_ABOVE) as tw:
            tw.write(self._tiles(), shape=shape, dtype=self.dtype, tile=(TIFF_TILE, TIFF_TILE),
                     photometric="minisblack" if self.channels == 1 else "rgb",
                     # as OpenCV's own TIFF writer: alpha as an unspecified extra sample (OpenCV premultiplies
                     # colour by an "unassociated alpha" when it reads one back)
                     extrasamples=("unspecified",) if self.channels == 4 else None,
                     compression="zlib", compressionargs={"level": 1}, predictor=True, metadata=None)


def open_writer(path: str | Path, ext: str, height: int, width: int, channels: int,
                dtype: np.dtype) -> BandWriter:
    """The band writer for ``ext`` (one of :data:`STREAM_FORMATS`)."""
    cls = {"png": PngBands, "tif": TiffBands, "tiff": TiffBands}[ext.lower().lstrip(".")]
    return cls(path, height, width, channels, dtype)
