"""How sr-run handles one image, decided from its header before a pixel is decoded.

:meth:`ImagePlanner.plan` reads the header (:mod:`sr_runtime.imageheader`), refuses an image over
``--max-pixels``, estimates the memory the job needs and refuses it when that is more than the budget
(``--max-memory``, else the memory available now), in one line with the estimate and the flag to change. An
accepted image runs one of two ways:

- **whole**: decoded, upscaled in memory (:meth:`Upscaler.enhance`), encoded by OpenCV (every format);
- **streamed** (png and tif outputs at the model's scale): rows of tiles go to an encoder thread as they finish
  (:mod:`sr_runtime.stream`), so the output is never held whole; inputs too big to decode whole are read in
  strips where the format allows (:func:`sr_runtime.stream.open_rows`).

The estimate (bytes): input = the file's bytes + the decoded array (x2 when padding copies it), or for a strip
read ``ROW_COPIES`` copies of one band of rows; output = the uint8/uint16 canvas + a resized copy (``--outscale``)
+ the encoded file twice (OpenCV's buffer and its copy, at ``ENCODED`` of the canvas), or for a streamed output
``BANDS_IN_FLIGHT`` bands; model = the tile windows of one call times :func:`sr_runtime.memory.bytes_per_pixel`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sr_runtime.errors import ImageError
from sr_runtime.imageheader import ImageHeader, check_max_pixels, read_header
from sr_runtime.memory import available_memory, bytes_per_pixel
from sr_runtime.tiling import core_side, padding, window_side

if TYPE_CHECKING:
    from sr_runtime.api import Upscaler

StreamMode = Literal["auto", "on", "off"]
GIB = float(1 << 30)
STREAM_ABOVE = 64 << 20
"""``--stream auto``: png/tif outputs whose canvas has at least this many bytes are streamed."""
STREAM_BUDGET = 512 << 20
"""Memory for the tiles and bands of a streamed image without ``--max-memory`` (``--tile auto``): a streamed
run stays about this size whatever the image's."""
READ_ROWS_ABOVE = 256 << 20
"""A streamed image whose decoded input has at least this many bytes is read in strips (when its format
allows), as is one whose whole decode does not fit the budget."""
BANDS_IN_FLIGHT = 3
"""Output bands alive at once when streaming: being filled, queued, being encoded."""
ROW_COPIES = 4
"""Copies of an input band alive at once when reading in strips (read, padded, channel views as float...)."""
ENCODED = {"png": 0.6, "tif": 0.7, "bmp": 1.0, "jpg": 0.25, "webp": 0.25}
"""Encoded size as a fraction of the canvas, on the safe side (lossless formats of upscaled photos: 0.15-0.5)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a job needs at its peak, by part."""

    input: int
    """The file's bytes and the decoded input (or the strips being read)."""
    output: int
    """The output canvas and the encoded file (or the bands being encoded)."""
    model: int
    """The tile windows of one model call (activations)."""

    @property
    def total(self) -> int:
        """All parts."""
        return self.input + self.output + self.model

    def text(self) -> str:
        """``about 12.3 GiB (input 2.5, output 9.7, model 0.1 GiB)``; in MiB below 1 GiB."""
        unit, div = ("GiB", GIB) if self.total >= GIB else ("MiB", float(1 << 20))
        f = "{:.1f}" if unit == "GiB" else "{:.0f}"
        parts = ", ".join(f"{k} {f.format(v / div)}" for k, v in
                          (("input", self.input), ("output", self.output), ("model", self.model)))
        return f"about {f.format(self.total / div)} {unit} ({parts} {unit})"


@dataclass(frozen=True)
class ImagePlan:
    """How one image runs."""

    header: ImageHeader | None
    """None: the format was not recognised (decoded whole; the decoder decides)."""
    ext: str
    """Output format."""
    stream: bool = False
    """The output is written band by band."""
    read_rows: bool = False
    """The input is read in strips (only with ``stream``)."""
    estimate: MemoryEstimate | None = None
    """What it needs (None without a header)."""
    tiles: tuple[int, int] = (0, 1)
    """``(tile, batch)`` the estimate is for (a streamed run uses them)."""


class ImagePlanner:
    """Plans and runs the images of one sr-run call.

    Args:
        up: the open model.
        outscale: the final scale (None: the model's); another one is a resize of the whole output.
        alpha_upsampler: how alpha is upscaled; only ``model`` streams.
        max_pixels: refuse larger images (from the header).
        stream: ``auto`` (outputs of ``STREAM_ABOVE`` bytes and more, or that do not fit whole), ``on``
            (every png/tif output the options allow), ``off``.
        budget: memory for one job in bytes; None: ``up.max_memory`` (``--max-memory``), else the memory
            available when each image is planned.
    """

    def __init__(self, up: Upscaler, *, outscale: float | None = None, alpha_upsampler: str = "model",
                 max_pixels: int | None = None, stream: StreamMode = "auto", budget: int | None = None) -> None:
        if stream not in ("auto", "on", "off"):
            raise ValueError(f"stream must be auto, on or off, not {stream!r}")
        self.up, self.outscale, self.alpha_upsampler = up, outscale, alpha_upsampler
        self.max_pixels, self.mode = max_pixels, stream
        self.budget = budget if budget is not None else up.max_memory

    # ------------------------------------------------------------------ planning
    def plan(self, src: Path, ext: Callable[[bool], str]) -> ImagePlan:
        """Check ``src`` from its header and decide how it runs.

        Args:
            src: the input.
            ext: the output format given whether the image has alpha (``--ext auto`` writes png then).

        Raises:
            ImageError: over ``--max-pixels``; more memory than the budget (the estimate and the flag in the
                message); an empty image in the header; not a regular file, or an unreadable one.
        """
        from sr_runtime.image import check_regular

        check_regular(src)  # a FIFO would block the header's read; a broken link is named as such
        header = read_header(src)
        if header is None:
            return ImagePlan(None, ext(False))
        check_max_pixels(header, self.max_pixels, src)
        fmt = ext(header.channels in (2, 4))
        budget = self.budget if self.budget is not None else available_memory()
        plan = self._choose(header, src, fmt, budget)
        if budget is not None and plan.estimate is not None and plan.estimate.total > budget:
            raise ImageError(self._too_big(header, plan.estimate, budget), self._hint(header, src, fmt), src)
        return plan

    def _choose(self, header: ImageHeader, src: Path, fmt: str, budget: int | None) -> ImagePlan:
        """Whole, streamed, or streamed from strips: the first that the options allow and the budget takes."""
        whole = self.planned(header, src, fmt, stream=False, read_rows=False)
        if not self._streams(header, fmt):
            return whole
        streamed = self.planned(header, src, fmt, stream=True, read_rows=False)
        over = budget is not None and whole.estimate.total > budget  # type: ignore[union-attr]
        if not (self.mode == "on" or over or self._canvas(header) >= STREAM_ABOVE) or not self._bands(streamed):
            return whole
        from sr_runtime.stream import can_read_rows

        over = budget is not None and streamed.estimate.total > budget  # type: ignore[union-attr]
        rows = can_read_rows(src, header) and (header.decoded_bytes >= READ_ROWS_ABOVE or over)
        return self.planned(header, src, fmt, stream=True, read_rows=rows, quiet=False)  # says the tile chosen

    def _streams(self, header: ImageHeader, fmt: str) -> bool:
        """Whether the options allow a streamed output: png/tif, the model's scale, alpha by the model."""
        from sr_runtime.stream import STREAM_FORMATS

        same_scale = self.outscale is None or float(self.outscale) == float(self.up.scale)
        alpha_ok = header.channels not in (2, 4) or self.alpha_upsampler in ("model", "realesrgan")
        return self.mode != "off" and fmt in STREAM_FORMATS and same_scale and alpha_ok and header.bit_depth <= 16

    def _bands(self, plan: ImagePlan) -> int:
        """Rows of tiles of a plan (1: the whole image at once, where streaming saves nothing; ``on`` streams it)."""
        tile = plan.tiles[0]
        h = plan.header.height if plan.header else 0
        many = -(-h // core_side(tile, self.up.info.size_multiple)) if tile else 1
        return many if many > 1 or self.mode == "on" else 0

    def _canvas(self, header: ImageHeader) -> int:
        """Bytes of the output at the model's scale."""
        return header.decoded_bytes * self.up.scale * self.up.scale

    def planned(self, header: ImageHeader, src: Path, fmt: str, *, stream: bool, read_rows: bool,
                quiet: bool = True) -> ImagePlan:
        """One way of running the image, its tiles and its peak memory (see the module docstring)."""
        up, h, w, s = self.up, header.height, header.width, self.up.scale
        px = header.channels * max(1, header.bit_depth // 8)
        ph, pw = padding(h, w, up.pre_pad, up.info.size_multiple)
        decoded = header.decoded_bytes * (2 if ph or pw else 1)
        file_bytes = src.stat().st_size
        data_in = file_bytes + decoded
        if stream:
            row_bytes = px * (BANDS_IN_FLIGHT * s * s * w + (ROW_COPIES * (w + pw) if read_rows else 0))
            tiles = up.plan(h, w, 0 if read_rows else decoded, row_bytes=row_bytes, budget=STREAM_BUDGET, quiet=quiet)
            rows = min(h + ph, window_side(tiles[0], up.tile_pad, up.info.size_multiple) if tiles[0] else h + ph)
            bands = -(-(h + ph) // core_side(tiles[0], up.info.size_multiple)) if tiles[0] else 1
            data_out = min(BANDS_IN_FLIGHT, bands) * rows * s * w * s * px
            if read_rows:
                data_in = ROW_COPIES * rows * (w + pw) * px
        else:
            canvas = self._canvas(header)
            tiles = up.plan(h, w, decoded + canvas, quiet=True)  # enhance() says what it chose
            final = canvas * (self.outscale / s) ** 2 if self.outscale else canvas
            data_out = int(canvas + (final if final != canvas else 0) + 2 * final * ENCODED.get(fmt, 1.0))
        model = self._model_bytes(h + ph, w + pw, *tiles)
        return ImagePlan(header, fmt, stream, read_rows, MemoryEstimate(int(data_in), int(data_out), model), tiles)

    def _model_bytes(self, h: int, w: int, tile: int, batch: int) -> int:
        up = self.up
        if tile <= 0:
            return int(h * w * bytes_per_pixel(up.info))
        side = window_side(tile, up.tile_pad, up.info.size_multiple)
        return int(batch * min(side, h) * min(side, w) * bytes_per_pixel(up.info))

    def _too_big(self, header: ImageHeader, est: MemoryEstimate, budget: int) -> str:
        s = self.up.scale
        limit = (f"--max-memory {budget / GIB:.1f} GiB" if self.budget is not None
                 else f"the {budget / GIB:.1f} GiB of memory available")
        return f"{header.size} (x{s}: {header.width * s}x{header.height * s}) needs {est.text()}, more than {limit}"

    def _hint(self, header: ImageHeader, src: Path, fmt: str) -> str:
        """What would make it fit: a streamed format, tiles, or a larger --max-memory."""
        tips = []
        if fmt not in ("png", "tif") and self._streams(header, "png"):
            from sr_runtime.stream import can_read_rows

            rows = can_read_rows(src, header)
            need = self.planned(header, src, "png", stream=True, read_rows=rows).estimate.total  # type: ignore[union-attr]
            tips.append(f"write png or tif (--ext png: streamed, about {need / GIB:.1f} GiB)")
        if self.up.tile != "auto" and int(self.up.tile) == 0:
            tips.append("tile it (--tile auto)")
        tips.append("raise --max-memory if the memory is there")
        return "To run it: " + ", or ".join(tips) + "."

    # ------------------------------------------------------------------ running
    def notes(self, src: Path, plan: ImagePlan) -> list[str]:
        """What to tell the user before a long streamed run (the output's size and the memory it takes)."""
        h = plan.header
        if not plan.stream or h is None or plan.estimate is None or self._canvas(h) < (1 << 30):
            return []
        s = self.up.scale
        how = "read in strips and " if plan.read_rows else ""
        return [f"{src}: {h.size} -> {h.width * s}x{h.height * s} ({self._canvas(h) / GIB:.1f} GiB of pixels) is "
                f"{how}written in bands: {plan.estimate.text()}"]

    def run_streamed(self, src: Path, dst: Path, plan: ImagePlan,
                     progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Upscale ``src`` into ``dst`` band by band (``plan.stream``).

        Returns:
            Notes on conversions the format forced.

        Raises:
            ImageError, SrError: reading, the model or writing failed; nothing is left at ``dst``.
            KeyboardInterrupt: the temp file is removed first.
        """
        from sr_runtime.image import prepare_for_format, read_image
        from sr_runtime.stream import ArrayRows, open_rows, open_writer

        assert plan.header is not None
        source = open_rows(src, plan.header) if plan.read_rows else None
        if source is None:
            source = ArrayRows(read_image(src, self.max_pixels).pixels)
        s, writer, notes = self.up.scale, None, []
        try:
            for band in self.up.enhance_rows(source, self.alpha_upsampler, progress,  # type: ignore[arg-type]
                                             tiles=plan.tiles):
                band, said = prepare_for_format(band, plan.ext)
                if writer is None:
                    notes = said
                    writer = open_writer(dst, plan.ext, source.height * s, source.width * s,
                                         1 if band.ndim == 2 else band.shape[2], band.dtype)
                writer.write(band)
            if writer is not None:
                writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            source.close()
        return notes
