"""Tiled inference as a pure function over a tile plan (after chaiNNer's upscale tiler): no backend, no torch.

Semantics follow upstream ``RealESRGANer`` (``tile``, ``tile_pad``, ``pre_pad``, mod-padding for scale 1/2
models). Two plans, chosen by what the model function accepts (:func:`plan_for`, :data:`WindowShapes`):

- **clipped** (:func:`plan_clipped`, for backends that take any shape: ONNX Runtime, OpenVINO): each window is
  its core plus ``pad`` pixels of context, clipped at the image border, as upstream cuts them; the cores are
  laid out so that the windows come out near-equal (edge cores are ``pad`` larger than inner ones), so the
  tiles execute ``size + 2 * pad * (n - 1)`` pixels per axis, upstream's figure or less, and windows of one
  shape are stacked into one call;
- **same** (:func:`plan_tiles`, for engines built for one shape): cores are balanced (an axis of ``size``
  pixels gets ``n = ceil(size / tile)`` cores of about ``size / n`` pixels) and every window has the same
  shape: windows at the right/bottom edge are shifted inwards (they read *more* real context, never padding);
  ``fixed`` widens them to exactly :func:`window_side` pixels.

In both, window origins, sizes and the padding are multiples of ``size_multiple`` so pixel-unshuffle grids
align; each tile's core is written straight into the uint8/uint16 output canvas (no full-size float32 output);
padding uses numpy's ``reflect`` (works for 1-pixel and tiny images, where torch's reflect fails).

Exactness: a core pixel's output depends on input within the model's receptive radius ``r``. Every window
holds its core plus at least ``pad`` pixels of real context on each side (or reaches the image border,
exactly as the whole-image run does), so with ``pad >= r`` tiled output equals whole-image output.
:func:`default_pad` gives the radius as the default pad where it is cheap.

The arithmetic of cores, pads and windows is written here once (:func:`core_side`, :func:`pad_side`,
:func:`window_side`, :func:`max_core`): TensorRT profiles, engine limits and parity inputs call it. The tiler
itself is :func:`run_tiled` over a :class:`TileSettings` value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from sr_runtime.errors import OutOfMemory, SrError
from sr_runtime.info import ModelInfo

LOG = logging.getLogger("sr_runtime")

MIN_TILE = 32
"""Smallest tile the out-of-memory retry goes down to before giving up."""

ModelFn = Callable[[np.ndarray], np.ndarray]
"""float32 ``(N, C, h, w)`` RGB in [0, 1] -> float32 ``(N, C_out, h*s, w*s)``."""

WindowShapes = Literal["any", "same", "fixed"]
"""Which window shapes a model function accepts; each backend declares it (``Backend.window_shapes``):

- ``any``: every ``(N, C, h, w)`` with ``h`` and ``w`` multiples of the size multiple (ONNX Runtime, OpenVINO
  with dynamic shapes): windows are clipped at the border (:func:`plan_clipped`);
- ``same``: any shape in range, but it is built and tuned for one window shape per run (TensorRT engines):
  same-shape windows (:func:`plan_tiles`);
- ``fixed``: one window shape only: windows of ``window_side(tile, pad)``; an image smaller than a window is
  edge-padded up to it (a static engine).
"""

UPSTREAM_PAD = 10
"""Upstream's ``tile_pad``: the default pad of models whose receptive radius is large or unknown."""
MAX_DEFAULT_PAD = 40
"""The largest receptive radius :func:`default_pad` takes as the pad (SRVGGNetCompact: ``num_conv + 2``, 18 and
34 for the official models); RRDBNet's (349 for 23 blocks) would multiply the work, so it keeps
:data:`UPSTREAM_PAD`."""


def default_pad(info: ModelInfo) -> int:
    """The default ``tile_pad`` for a model: its receptive radius when known and at most
    :data:`MAX_DEFAULT_PAD` (tiled output then equals whole-image output), else upstream's 10.

    A radius of 0 means unknown (an ONNX exported before the field existed, or probed without metadata).
    """
    r = int(info.receptive_radius or 0)
    return r if 0 < r <= MAX_DEFAULT_PAD else UPSTREAM_PAD


# --------------------------------------------------------------------------- the arithmetic, once
def round_up(x: int, m: int) -> int:
    """``x`` rounded up to a multiple of ``m``."""
    return -(-x // m) * m


def round_down(x: int, m: int) -> int:
    """``x`` rounded down to a multiple of ``m``."""
    return x // m * m


def core_side(tile: int, size_multiple: int = 1) -> int:
    """The largest core side the tiler uses for a requested ``tile``: rounded down to the size multiple, at
    least one multiple."""
    m = max(1, size_multiple)
    return max(m, round_down(tile, m))


def pad_side(pad: int, size_multiple: int = 1) -> int:
    """The context the tiler keeps around a core for a requested ``pad``: rounded up to the size multiple."""
    return round_up(pad, max(1, size_multiple))


def window_side(tile: int, pad: int, size_multiple: int = 1) -> int:
    """The largest window side of a tiled run: ``core_side(tile) + 2 * pad_side(pad)``.

    Every window of :func:`plan_tiles` is at most this (less when the image is smaller); TensorRT profiles are
    built for it.
    """
    return core_side(tile, size_multiple) + 2 * pad_side(pad, size_multiple)


def max_core(window: int, pad: int, size_multiple: int = 1) -> int:
    """The largest tile whose windows fit ``window`` pixels: the inverse of :func:`window_side`.

    May be below ``size_multiple`` (even negative) when ``window`` leaves no room beside the pad; callers check.
    """
    m = max(1, size_multiple)
    return round_down(window - 2 * pad_side(pad, m), m)


@dataclass(frozen=True)
class Region:
    """A half-open rectangle ``[y0, y1) x [x0, x1)`` in pixels."""

    y0: int
    """Top row (inclusive)."""
    x0: int
    """Left column (inclusive)."""
    y1: int
    """Bottom row (exclusive)."""
    x1: int
    """Right column (exclusive)."""

    @property
    def height(self) -> int:
        """Rows."""
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        """Columns."""
        return self.x1 - self.x0

    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices for indexing an HxW(xC) array."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def shift(self, dy: int, dx: int) -> Region:
        """Translated copy."""
        return Region(self.y0 + dy, self.x0 + dx, self.y1 + dy, self.x1 + dx)

    def scaled(self, s: int) -> Region:
        """Every coordinate times ``s``."""
        return Region(self.y0 * s, self.x0 * s, self.y1 * s, self.x1 * s)

    def clip(self, height: int, width: int) -> Region:
        """Intersection with ``[0, height) x [0, width)`` (may be empty)."""
        y0, x0 = min(max(self.y0, 0), height), min(max(self.x0, 0), width)
        return Region(y0, x0, max(y0, min(self.y1, height)), max(x0, min(self.x1, width)))


@dataclass(frozen=True)
class Tile:
    """One tile: the window the model reads and the core whose output it owns."""

    index: int
    """Position in the plan (row-major)."""
    src: Region
    """Window read from the (padded) input (one shape for every tile of a same-shape plan)."""
    core: Region
    """Input pixels this tile is responsible for; the cores partition the padded input."""

    def dst(self, scale: int) -> Region:
        """The core in output coordinates."""
        return self.core.scaled(scale)

    def crop(self, scale: int) -> Region:
        """The core's output inside this tile's model output."""
        return self.core.shift(-self.src.y0, -self.src.x0).scaled(scale)


@dataclass(frozen=True)
class TilePlan:
    """How an image of ``height`` x ``width`` (already pre-padded and mod-padded) is cut into tiles."""

    height: int
    """Padded input height."""
    width: int
    """Padded input width."""
    tile: int
    """Largest core side (a multiple of ``size_multiple``, at most the requested tile); the image size when
    tiling is off."""
    pad: int
    """Context on each side of a core (``tile_pad`` rounded up to ``size_multiple``)."""
    window: tuple[int, int]
    """``(h, w)`` of every tile window of a same-shape plan (``min(tile + 2 * pad, image size)``); the largest
    window of a clipped plan."""
    size_multiple: int
    """Window origins and sizes are multiples of this."""
    tiles: tuple[Tile, ...]
    """Row-major tiles."""

    def __len__(self) -> int:
        return len(self.tiles)


def _axis(size: int, tile: int, pad: int, win: int) -> list[tuple[int, int, int]]:
    """(core_start, core_end, window_start) along one axis."""
    out = []
    for cs in range(0, size, tile):
        ce = min(cs + tile, size)
        ws = min(max(cs - pad, 0), size - win)
        out.append((cs, ce, ws))
    return out


def _balanced(size: int, tile: int, m: int) -> int:
    """Core side along an axis: as few cores as ``tile`` allows, of near-equal size (multiple of ``m``).

    640 px at tile 256 gives 3 cores of 214 (214, 214, 212) rather than 256, 256, 128: with same-shape
    windows the thin last core would otherwise read a full ``tile + 2 * pad`` window.
    """
    n = -(-size // tile)
    return min(tile, round_up(-(-size // n), m))


def _check_request(height: int, width: int, tile: int, pad: int, size_multiple: int) -> int:
    """The size multiple (>= 1) of a valid plan request.

    Raises:
        ValueError: negative sizes, or sizes that are not multiples of ``size_multiple``.
    """
    m = max(1, int(size_multiple))
    if height <= 0 or width <= 0 or tile < 0 or pad < 0:
        raise ValueError(f"bad tile plan request: {height}x{width}, tile {tile}, pad {pad}")
    if height % m or width % m:
        raise ValueError(f"image {height}x{width} is not a multiple of {m}; pad it first")
    return m


def _whole(height: int, width: int, m: int) -> TilePlan:
    """One tile: the whole image."""
    core = Region(0, 0, height, width)
    return TilePlan(height, width, max(height, width), 0, (height, width), m, (Tile(0, core, core),))


def plan_tiles(height: int, width: int, *, tile: int, pad: int, size_multiple: int = 1) -> TilePlan:
    """Cut a ``height`` x ``width`` input into a grid of balanced cores with equal-shape windows.

    Args:
        height, width: input size; multiples of ``size_multiple`` (pad the image first).
        tile: largest core side in input pixels (rounded down to ``size_multiple``, at least one multiple);
            each axis gets the fewest cores this allows, of near-equal size; ``0`` means one tile covering
            the whole image.
        pad: context pixels around each core (rounded up to ``size_multiple``); the tiled output equals
            the whole-image output when ``pad`` >= the model's receptive radius.
        size_multiple: the model's input size multiple (1, or 2/4 for pixel-unshuffle models).

    Raises:
        ValueError: negative sizes, or sizes that are not multiples of ``size_multiple``.
    """
    m = _check_request(height, width, tile, pad, size_multiple)
    if tile == 0 or (tile >= height and tile >= width):
        return _whole(height, width, m)
    t, p = core_side(tile, m), pad_side(pad, m)
    ty, tx = _balanced(height, t, m), _balanced(width, t, m)
    win = (min(ty + 2 * p, height), min(tx + 2 * p, width))
    tiles = []
    for cy0, cy1, wy in _axis(height, ty, p, win[0]):
        for cx0, cx1, wx in _axis(width, tx, p, win[1]):
            tiles.append(Tile(len(tiles), Region(wy, wx, wy + win[0], wx + win[1]), Region(cy0, cx0, cy1, cx1)))
    return TilePlan(height, width, max(ty, tx), p, win, m, tuple(tiles))


def _clipped_axis(size: int, tile: int, pad: int, m: int) -> list[tuple[int, int, int, int]]:
    """(core_start, core_end, window_start, window_end) along one axis of a clipped plan.

    ``n`` windows of at most ``tile + 2 * pad`` cover ``size + 2 * pad * (n - 1)`` pixels (each inner seam is
    read twice, ``pad`` on either side); the fewest that fit is ``ceil((size - 2 * pad) / tile)`` and the window
    sides are that total split as evenly as multiples of ``m`` allow. An axis that fits one window is one window.
    """
    if size <= tile + 2 * pad:
        return [(0, size, 0, size)]
    n = -(-(size - 2 * pad) // tile)
    base, rem = divmod((size + 2 * pad * (n - 1)) // m, n)
    out, start = [], 0
    for i in range(n):
        end = start + (base + (i < rem)) * m
        out.append((start + pad if i else 0, end - pad if i < n - 1 else size, start, end))
        start = end - 2 * pad
    return out


def plan_clipped(height: int, width: int, *, tile: int, pad: int, size_multiple: int = 1) -> TilePlan:
    """Cut a ``height`` x ``width`` input into windows clipped at the border, as upstream cuts them.

    Every window is its core plus ``pad`` pixels on each side that is not the image border, never shifted,
    so the tiles execute what upstream's do (640x448 at tile 256 / pad 10: 1.11x the image's pixels) or less:
    the cores are laid out so that the windows are near-equal (at most two sides per axis, a multiple of
    ``size_multiple`` apart) and at most ``window_side(tile, pad)``; an axis that fits one window
    (``size <= tile + 2 * pad``) is not cut. For backends that take any input shape (``windows="any"``).

    Args:
        height, width, tile, pad, size_multiple: as :func:`plan_tiles`.

    Raises:
        ValueError: negative sizes, or sizes that are not multiples of ``size_multiple``.
    """
    m = _check_request(height, width, tile, pad, size_multiple)
    if tile == 0:
        return _whole(height, width, m)
    t, p = core_side(tile, m), pad_side(pad, m)
    tiles = []
    for cy0, cy1, wy0, wy1 in _clipped_axis(height, t, p, m):
        for cx0, cx1, wx0, wx1 in _clipped_axis(width, t, p, m):
            tiles.append(Tile(len(tiles), Region(wy0, wx0, wy1, wx1), Region(cy0, cx0, cy1, cx1)))
    if len(tiles) == 1:
        return _whole(height, width, m)
    window = (max(x.src.height for x in tiles), max(x.src.width for x in tiles))
    core = max(max(x.core.height, x.core.width) for x in tiles)
    return TilePlan(height, width, core, p, window, m, tuple(tiles))


PLAN_KINDS: dict[str, Callable[..., TilePlan]] = {"same": plan_tiles, "clipped": plan_clipped}
"""Every plan kind: ``(height, width, *, tile, pad, size_multiple) -> TilePlan`` (the property tests run each)."""


@dataclass(frozen=True)
class TileSettings:
    """How :func:`run_tiled` cuts an image and feeds the tiles to the model function."""

    scale: int
    """The model's scale factor (>= 1)."""
    tile: int = 0
    """Core size in input pixels (see :func:`plan_tiles`); ``0`` runs the whole (padded) image at once."""
    pad: int = 0
    """Context around each core (upstream ``tile_pad``)."""
    batch: int = 1
    """Tiles per model call (>= 1)."""
    pre_pad: int = 0
    """Reflect padding added at the bottom/right before tiling and cropped afterwards."""
    size_multiple: int = 1
    """The model's input size multiple (mod-padding for pixel-unshuffle models)."""
    windows: WindowShapes = "same"
    """What window shapes the model function accepts (the backend's ``window_shapes``); see :func:`plan_for`."""
    min_tile: int = MIN_TILE
    """Floor of the out-of-memory retry (the tile is halved, after the batch, down to this)."""

    def __post_init__(self) -> None:
        if self.scale < 1 or self.batch < 1:
            raise ValueError(f"scale and batch must be >= 1 (got {self.scale}, {self.batch})")
        if self.windows not in ("any", "same", "fixed"):
            raise ValueError(f"windows must be 'any', 'same' or 'fixed', got {self.windows!r}")


def plan_for(height: int, width: int, settings: TileSettings) -> TilePlan:
    """The tile plan for a padded ``height`` x ``width`` input, chosen by what the model function accepts.

    ``any``: windows clipped at the border (:func:`plan_clipped`); ``same``: same-shape windows
    (:func:`plan_tiles`); ``fixed``: same-shape windows of exactly ``window_side(tile, pad)`` where the image
    allows (smaller images are edge-padded up to it by the tiler).
    """
    if settings.windows == "any":
        return plan_clipped(height, width, tile=settings.tile, pad=settings.pad, size_multiple=settings.size_multiple)
    plan = plan_tiles(height, width, tile=settings.tile, pad=settings.pad, size_multiple=settings.size_multiple)
    if settings.windows == "fixed" and settings.tile > 0:
        return _widen(plan, window_side(settings.tile, settings.pad, plan.size_multiple))
    return plan


def _widen(plan: TilePlan, side: int) -> TilePlan:
    """Every window grown to ``side`` (or the whole axis when the image is smaller), reading real context.

    A fixed-shape model takes only ``side`` x ``side`` windows: balanced cores leave smaller ones, which would
    otherwise be padded with repeated edge pixels; reading more of the image instead keeps tiled output equal to
    whole-image output wherever the image is at least one window large.
    """
    win = (min(side, plan.height), min(side, plan.width))
    if win == plan.window:
        return plan
    tiles = []
    for t in plan.tiles:
        wy = min(max(t.core.y0 - plan.pad, 0), plan.height - win[0])
        wx = min(max(t.core.x0 - plan.pad, 0), plan.width - win[1])
        tiles.append(Tile(t.index, Region(wy, wx, wy + win[0], wx + win[1]), t.core))
    return replace(plan, window=win, tiles=tuple(tiles))


# --------------------------------------------------------------------------- running
def _dtype_max(dtype: np.dtype) -> float:
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise ValueError(f"unsupported image dtype {dtype}; use uint8, uint16 or float32 in [0, 1]")


def pad_input(img: np.ndarray, pre_pad: int, size_multiple: int) -> np.ndarray:
    """Reflect-pad bottom/right by ``pre_pad``, then up to a multiple of ``size_multiple`` (as upstream).

    numpy's ``reflect`` repeats the reflection for pads larger than the image and repeats a 1-pixel axis,
    so 1x1 and 1xN images work (torch's reflect padding raises there).

    Args:
        img: ``(H, W, C)`` array of any dtype.

    Returns:
        The padded array (the input itself when no padding is needed).
    """
    ph, pw = padding(img.shape[0], img.shape[1], pre_pad, size_multiple)
    if ph == 0 and pw == 0:
        return img
    return np.pad(img, ((0, ph), (0, pw)) + ((0, 0),) * (img.ndim - 2), mode="reflect")


def padding(height: int, width: int, pre_pad: int, size_multiple: int) -> tuple[int, int]:
    """Rows and columns :func:`pad_input` adds at the bottom and right."""
    m = max(1, size_multiple)
    return round_up(height + pre_pad, m) - height, round_up(width + pre_pad, m) - width


class _Notify:
    """Say each distinct message once."""

    def __init__(self, sink: Callable[[str], None] | None) -> None:
        self.sink = sink or LOG.warning
        self.seen: set[str] = set()

    def __call__(self, msg: str) -> None:
        if msg not in self.seen:
            self.seen.add(msg)
            self.sink(msg)


def with_fp32_redo(fn: ModelFn, fallback: ModelFn, notify: Callable[[str], None] | None = None) -> ModelFn:
    """Wrap a reduced-precision model function: batch items whose output holds NaN/Inf (fp16 overflow) are
    run again through the fp32 ``fallback``.

    Args:
        fn: the reduced-precision model function.
        fallback: an fp32 model function for the same model.
        notify: where the one-time note goes (default the ``sr_runtime`` logger); said once per wrapper.

    Returns:
        A model function; it raises :class:`SrError` when the fp32 output is not finite either.
    """
    say = _Notify(notify)

    def run(x: np.ndarray) -> np.ndarray:
        y = fn(x)
        bad = ~np.isfinite(y).reshape(len(y), -1).all(axis=1)
        if not bad.any():
            return y
        say("non-finite (NaN/Inf) tile output in reduced precision: those tiles were re-run in fp32")
        redo = fallback(x[bad])
        if not np.all(np.isfinite(redo)):
            raise SrError("the model produced NaN/Inf values even in fp32", "The model or input is broken.")
        y = y.copy() if not y.flags.writeable else y
        y[bad] = redo
        return y

    return run


def _to_batch(src: np.ndarray, tiles: list[Tile], top_in: float, window: tuple[int, int] | None) -> np.ndarray:
    """Stack the tiles' windows as float32 NCHW in [0, 1] (edge-padded to ``window`` if given).

    ``float32(v) / float32(top)`` as upstream computes it (so 8/16-bit inputs match it exactly).
    """
    h, w = tiles[0].src.height, tiles[0].src.width
    H, W = window if window is not None else (h, w)
    c = src.shape[2]
    batch = np.empty((len(tiles), c, H, W), np.float32)
    for i, t in enumerate(tiles):
        part = src[t.src.slices()]
        if (H, W) != (h, w):
            part = np.pad(part, ((0, H - h), (0, W - w), (0, 0)), mode="edge")
        np.divide(part.transpose(2, 0, 1), np.float32(top_in), out=batch[i], casting="unsafe")
    return batch


class _Canvas:
    """The output image: given by the caller, or allocated at the first model output (which sets C_out)."""

    def __init__(self, height: int, width: int, dtype: np.dtype, out: np.ndarray | None) -> None:
        if out is not None:
            if out.ndim != 3 or out.shape[:2] != (height, width):
                raise ValueError(f"out has shape {out.shape}, expected ({height}, {width}, C)")
            dtype = out.dtype
        self.shape, self.array = (height, width), out
        self.dtype, self.top = dtype, _dtype_max(dtype)

    def take(self, channels: int) -> np.ndarray:
        """The canvas for a model output of ``channels`` channels.

        Raises:
            SrError: a given canvas has another channel count.
        """
        if self.array is None:
            self.array = np.empty(self.shape + (channels,), self.dtype)
        elif self.array.shape[2] != channels:
            raise SrError(f"the model returned {channels} channels, the output canvas has {self.array.shape[2]}")
        return self.array

    def paste(self, y: np.ndarray, tile: Tile, scale: int) -> None:
        """Write the tile's core from model output ``y`` (C, h, w) float32."""
        out = self.array
        dst = tile.dst(scale).clip(out.shape[0], out.shape[1])
        if dst.height == 0 or dst.width == 0:
            return
        crop = tile.crop(scale)
        ys, xs = crop.y0, crop.x0
        part = y[:, ys:ys + dst.height, xs:xs + dst.width].transpose(1, 2, 0)
        if out.dtype.kind == "f":
            out[dst.slices()] = np.clip(part, 0.0, 1.0)
        else:
            v = np.clip(part, 0.0, 1.0) * np.float32(self.top)
            np.rint(v, out=v)
            out[dst.slices()] = v


def run_tiled(
    img: np.ndarray,
    fn: ModelFn,
    settings: TileSettings | None = None,
    *,
    out: np.ndarray | None = None,
    out_dtype: np.dtype | type | None = None,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
    **options: object,
) -> np.ndarray:
    """Upscale ``img`` with ``fn`` tile by tile, several tiles per call.

    ``run_tiled(img, fn, TileSettings(scale=4, tile=256, pad=10))`` and the keyword form
    ``run_tiled(img, fn, scale=4, tile=256, pad=10)`` are the same call.

    Args:
        img: ``(H, W, C)`` uint8 (0..255), uint16 (0..65535) or float32 in [0, 1]; channels in the order
            ``fn`` expects (pass ``img[..., ::-1]`` for a BGR image and an RGB model: views are fine).
        fn: float32 ``(N, C, h, w)`` in [0, 1] -> ``(N, C_out, h*scale, w*scale)`` (not necessarily clamped);
            wrap it with :func:`with_fp32_redo` to redo non-finite reduced-precision tiles.
        settings: scale, tile, pad, batch, padding and window kind (:class:`TileSettings`).
        out: a preallocated ``(H*scale, W*scale, C_out)`` canvas to write into (may be a strided view, e.g.
            the BGR channels of a BGRA canvas in reverse order); its dtype wins over ``out_dtype``.
        out_dtype: canvas dtype (default: ``img.dtype``); integer canvases get ``round(clip(y) * max)``.
        progress: ``progress(done_tiles, total_tiles)`` after each call.
        notify: where one-time messages go (smaller tile after out-of-memory); default the ``sr_runtime`` logger.
        **options: the :class:`TileSettings` fields as keywords, instead of ``settings``.

    Returns:
        ``(H*scale, W*scale, C_out)`` array of ``out_dtype``.

    Raises:
        OutOfMemory: still out of memory at ``min_tile`` and batch 1.
        SrError: non-finite output, or a wrong output shape from ``fn``.
        ValueError: bad arguments (not HWC, unsupported dtype).
    """
    if settings is None:
        settings = TileSettings(**options)  # type: ignore[arg-type]
    elif options:
        raise TypeError(f"run_tiled takes settings or keyword options, not both ({', '.join(options)})")
    if img.ndim != 3:
        raise ValueError(f"run_tiled takes an (H, W, C) array, got shape {img.shape}")
    h0, w0 = img.shape[:2]
    top_in = _dtype_max(img.dtype)
    s = settings.scale
    canvas = _Canvas(h0 * s, w0 * s, np.dtype(out_dtype) if out_dtype is not None else img.dtype, out)
    src = pad_input(img, settings.pre_pad, settings.size_multiple)
    say = _Notify(notify)
    while True:
        plan = plan_for(src.shape[0], src.shape[1], settings)
        try:
            return _run_plan(src, plan, fn, settings, canvas, top_in, progress)
        except OutOfMemory as exc:
            settings = _after_oom(settings, max(src.shape[:2]), exc)
            say(f"out of memory: retrying with tile {settings.tile or 'whole image'} and batch {settings.batch}")


def _after_oom(settings: TileSettings, side: int, exc: OutOfMemory) -> TileSettings:
    """Half the batch, or at batch 1 half the tile (``side``: the padded image's longer side).

    Raises:
        OutOfMemory: the tile would fall below ``min_tile``.
    """
    if settings.batch > 1:
        return replace(settings, batch=max(1, settings.batch // 2))
    m = max(1, settings.size_multiple)
    base = settings.tile if settings.tile > 0 else side
    nxt = round_down(base // 2, m)
    if nxt < max(settings.min_tile, m):
        raise OutOfMemory(
            f"out of memory even at tile {base} and batch 1 ({exc.message})",
            "Use a smaller model, the CPU backend (--backend ort), or free memory.",
            exc.path,
        ) from None
    return replace(settings, tile=nxt)


def _fixed_window(plan: TilePlan, settings: TileSettings) -> tuple[int, int] | None:
    """The window every call gets for ``windows="fixed"`` (None: the plan's own windows)."""
    if settings.windows != "fixed" or settings.tile <= 0:
        return None
    full = window_side(settings.tile, settings.pad, plan.size_multiple)
    if plan.window == (full, full):
        return None
    return max(full, plan.window[0]), max(full, plan.window[1])


def _check_output(x: np.ndarray, y: np.ndarray, scale: int) -> None:
    """Refuse a model output of the wrong shape or with NaN/Inf values.

    Raises:
        SrError: ``y`` is not ``(N, C, h*scale, w*scale)`` for input ``x``, or not finite.
    """
    expect_hw = (x.shape[2] * scale, x.shape[3] * scale)
    if y.ndim != 4 or y.shape[0] != x.shape[0] or tuple(y.shape[2:]) != expect_hw:
        raise SrError(f"the model returned shape {tuple(y.shape)} for input {tuple(x.shape)}",
                      f"Expected (N, C, {expect_hw[0]}, {expect_hw[1]}); is the model's scale {scale}?")
    if not np.isfinite(y).all():
        raise SrError("the model produced NaN/Inf values", "Run it in fp32 (--fp32); fp16 overflows in some models.")


def _batches(tiles: Sequence[Tile], batch: int) -> list[list[Tile]]:
    """Tiles grouped by window shape (in order of first appearance), each group cut into runs of ``batch``."""
    by_shape: dict[tuple[int, int], list[Tile]] = {}
    for t in tiles:
        by_shape.setdefault((t.src.height, t.src.width), []).append(t)
    return [g[i:i + batch] for g in by_shape.values() for i in range(0, len(g), batch)]


def _run_plan(src: np.ndarray, plan: TilePlan, fn: ModelFn, settings: TileSettings, canvas: _Canvas,
              top_in: float, progress: Callable[[int, int], None] | None) -> np.ndarray:
    """Run every tile of ``plan`` through ``fn`` in batches of one window shape and paste the cores into the
    canvas."""
    scale = settings.scale
    window = _fixed_window(plan, settings)
    total, done = len(plan), 0
    for group in _batches(plan.tiles, settings.batch):
        x = _to_batch(src, group, top_in, window)
        y = fn(x)
        _check_output(x, y, scale)
        canvas.take(y.shape[1])
        for t, yt in zip(group, y):
            canvas.paste(yt, t, scale)
        done += len(group)
        if progress is not None:
            progress(done, total)
    return canvas.array


def run_tiled_many(imgs: Sequence[np.ndarray], fn: ModelFn, settings: TileSettings, *,
                   notify: Callable[[str], None] | None = None) -> list[np.ndarray]:
    """Upscale images of one shape and dtype (the frames of a video): ``[run_tiled(i, fn, settings) ...]``.

    When the plan is one whole-image tile, up to ``settings.batch`` images go through ``fn`` in one call
    (stacked as N); otherwise (tiled images, a fixed-window model) each image is tiled by :func:`run_tiled`.
    The outputs are identical to one :func:`run_tiled` call per image when ``fn`` computes each batch item
    independently (every backend does).

    Args:
        imgs: ``(H, W, C)`` arrays of one shape and dtype (see :func:`run_tiled`).
        fn: the model function (see :func:`run_tiled`).
        settings: as for :func:`run_tiled`; ``batch`` is images per call here.
        notify: where one-time messages go (see :func:`run_tiled`).

    Returns:
        One ``(H*scale, W*scale, C_out)`` array per image, in order, of the images' dtype.

    Raises:
        OutOfMemory, SrError, ValueError: as :func:`run_tiled`; ValueError also for mixed shapes or dtypes.
    """
    if not imgs:
        return []
    shape, dtype = imgs[0].shape, imgs[0].dtype
    if any(i.shape != shape or i.dtype != dtype for i in imgs) or len(shape) != 3:
        raise ValueError("run_tiled_many takes (H, W, C) images of one shape and dtype")
    padded = [pad_input(i, settings.pre_pad, settings.size_multiple) for i in imgs]
    plan = plan_for(padded[0].shape[0], padded[0].shape[1], settings)
    if len(imgs) == 1 or len(plan) != 1 or _fixed_window(plan, settings) is not None:
        return [run_tiled(i, fn, settings, notify=notify) for i in imgs]
    tile, top, s = plan.tiles[0], _dtype_max(dtype), settings.scale
    outs: list[np.ndarray] = []
    for k in range(0, len(imgs), settings.batch):
        x = np.concatenate([_to_batch(p, [tile], top, None) for p in padded[k:k + settings.batch]])
        try:
            y = fn(x)
        except OutOfMemory:  # run_tiled halves the batch, then the tile
            outs += [run_tiled(i, fn, settings, notify=notify) for i in imgs[k:k + settings.batch]]
            continue
        _check_output(x, y, s)
        for yi in y:
            canvas = _Canvas(shape[0] * s, shape[1] * s, dtype, None)
            canvas.take(yi.shape[0])
            canvas.paste(yi, tile, s)
            outs.append(canvas.array)
    return outs


# --------------------------------------------------------------------------- row bands (streamed images)
@dataclass(frozen=True)
class Band:
    """One row of tiles of a plan: the input rows its windows read, and its tiles relative to them (made when
    asked for: :attr:`plan`).

    Run band after band (:func:`run_band`), an image needs only the rows of one band at a time, and each band's
    output rows are final when it is done, so they can go to an encoder while the next band runs.
    """

    y0: int
    """First row of the (padded) input the band's windows read."""
    y1: int
    """End of those rows (exclusive)."""
    core0: int
    """First input row the band's cores own (its output starts at ``core0 * scale``)."""
    core1: int
    """End of the rows its cores own."""
    columns: TilePlan
    """The plan's column axis: the plan of a one-multiple-high strip of the image."""
    window: tuple[int, int]
    """The whole plan's window shape."""

    def __len__(self) -> int:
        return len(self.columns.tiles)

    @property
    def plan(self) -> TilePlan:
        """The band's tiles with every region shifted up by ``y0`` (``plan.height == y1 - y0``)."""
        y0, y1, c0, c1 = self.y0, self.y1, self.core0, self.core1
        tiles = tuple(Tile(i, Region(0, t.src.x0, y1 - y0, t.src.x1), Region(c0 - y0, t.core.x0, c1 - y0, t.core.x1))
                      for i, t in enumerate(self.columns.tiles))
        return replace(self.columns, height=y1 - y0, window=self.window, tiles=tiles)


def plan_bands(height: int, width: int, settings: TileSettings) -> list[Band]:
    """The rows of tiles of ``plan_for(height, width, settings)``, top to bottom, without making the plan's
    tiles (an image of 10^10 pixels has millions of them, a few thousand rows of them).

    Tile plans are grids: a tile's rows come from the plan's row axis and its columns from its column axis, so
    the plans of a one-multiple-wide and a one-multiple-high image give every band. Running each band's ``plan``
    on its rows gives the same windows, and so the same output, as running the whole plan (only the grouping
    of tiles into model calls differs: batches do not span rows).
    """
    m = max(1, settings.size_multiple)
    rows, cols = plan_for(height, m, settings), plan_for(m, width, settings)
    window = (rows.window[0], cols.window[1])
    return [Band(t.src.y0, t.src.y1, t.core.y0, t.core.y1, cols, window) for t in rows.tiles]


def padded_rows(read: Callable[[int, int], np.ndarray], height: int, width: int, settings: TileSettings,
                y0: int, y1: int) -> np.ndarray:
    """Rows ``[y0, y1)`` of ``pad_input(img, settings.pre_pad, settings.size_multiple)``, read from an image of
    ``height`` x ``width`` through ``read(a, b)`` (its rows ``[a, b)``), without the rest of the image.

    The padding is :func:`pad_input`'s reflection, row for row and column for column.
    """
    ph, pw = padding(height, width, settings.pre_pad, settings.size_multiple)
    idx = np.pad(np.arange(height), (0, ph), mode="reflect")[y0:y1] if ph else np.arange(y0, y1)
    lo, hi = int(idx.min()), int(idx.max()) + 1
    rows = read(lo, hi)
    if hi - lo != len(idx) or idx[0] != lo:
        rows = rows[idx - lo]
    if pw:
        rows = np.pad(rows, ((0, 0), (0, pw)) + ((0, 0),) * (rows.ndim - 2), mode="reflect")
    return rows


def run_band(pixels: np.ndarray, band: TilePlan, fn: ModelFn, settings: TileSettings, out: np.ndarray,
             progress: Callable[[int, int], None] | None = None) -> None:
    """Run one band's tiles through ``fn`` and paste their cores into ``out``.

    Args:
        pixels: the band's input rows (``y1 - y0`` rows of the padded input, see :func:`padded_rows`),
            channels in the order ``fn`` expects.
        band: a :class:`Band`'s ``plan`` (from :func:`plan_bands` of the padded size).
        fn: the model function (see :func:`run_tiled`).
        settings: as for :func:`run_tiled`.
        out: the output rows from the band's ``y0 * scale`` on, ``(rows, W*scale, C_out)`` (rows past the image, the
            pre-padding, are left out: cores are clipped to ``out``); only the rows of the band's cores are
            written.
        progress: ``progress(done_tiles, band_tiles)``.

    Raises:
        OutOfMemory: at batch 1 (the batch is halved first; the tile cannot change within an image).
        SrError: as :func:`run_tiled`.
    """
    canvas = _Canvas(out.shape[0], out.shape[1], out.dtype, out)
    while True:
        try:
            _run_plan(pixels, band, fn, settings, canvas, _dtype_max(pixels.dtype), progress)
            return
        except OutOfMemory as exc:
            if settings.batch == 1:
                raise OutOfMemory(f"out of memory at tile {settings.tile} and batch 1 ({exc.message})",
                                  "Use a smaller --tile or free memory.", exc.path) from None
            settings = replace(settings, batch=max(1, settings.batch // 2))
