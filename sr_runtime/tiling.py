"""Tiled inference as a pure function over a tile plan (after chaiNNer's upscale tiler): no backend, no torch.

Semantics follow upstream ``RealESRGANer`` (``tile``, ``tile_pad``, ``pre_pad``, mod-padding for scale 1/2
models), with four differences:

- cores are balanced: an axis of ``size`` pixels gets ``n = ceil(size / tile)`` cores of about ``size / n``
  pixels (``tile`` is the largest core, not a fixed one), so no thin remainder tile carries a full window;
- every tile window has the same shape: windows at the right/bottom edge are shifted inwards (they read
  *more* real context, never padding), so several tiles stack into one batch and an engine sees one shape;
- window origins, sizes and the padding are multiples of ``size_multiple`` so pixel-unshuffle grids align;
- each tile's core is written straight into the uint8/uint16 output canvas (no full-size float32 output);
- padding uses numpy's ``reflect`` (works for 1-pixel and tiny images, where torch's reflect fails).

Exactness: a core pixel's output depends on input within the model's receptive radius ``r``. Every window
holds its core plus at least ``pad`` pixels of real context on each side (or reaches the image border,
exactly as the whole-image run does), so with ``pad >= r`` tiled output equals whole-image output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sr_runtime.errors import OutOfMemory, SrError

LOG = logging.getLogger("sr_runtime")

MIN_TILE = 32
"""Smallest tile the out-of-memory retry goes down to before giving up."""

ModelFn = Callable[[np.ndarray], np.ndarray]
"""float32 ``(N, C, h, w)`` RGB in [0, 1] -> float32 ``(N, C_out, h*s, w*s)``."""


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
    """Window read from the (padded) input; every window of a plan has the same shape."""
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
    """``(h, w)`` of every tile window: ``min(tile + 2 * pad, image size)``."""
    size_multiple: int
    """Window origins and sizes are multiples of this."""
    tiles: tuple[Tile, ...]
    """Row-major tiles."""

    def __len__(self) -> int:
        return len(self.tiles)


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


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
    return min(tile, _round_up(-(-size // n), m))


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
    m = max(1, int(size_multiple))
    if height <= 0 or width <= 0 or tile < 0 or pad < 0:
        raise ValueError(f"bad tile plan request: {height}x{width}, tile {tile}, pad {pad}")
    if height % m or width % m:
        raise ValueError(f"image {height}x{width} is not a multiple of {m}; pad it first")
    if tile == 0 or (tile >= height and tile >= width):
        core = Region(0, 0, height, width)
        return TilePlan(height, width, max(height, width), 0, (height, width), m, (Tile(0, core, core),))
    t = max(m, tile // m * m)
    p = _round_up(pad, m)
    ty, tx = _balanced(height, t, m), _balanced(width, t, m)
    win = (min(ty + 2 * p, height), min(tx + 2 * p, width))
    tiles = []
    for cy0, cy1, wy in _axis(height, ty, p, win[0]):
        for cx0, cx1, wx in _axis(width, tx, p, win[1]):
            tiles.append(Tile(len(tiles), Region(wy, wx, wy + win[0], wx + win[1]), Region(cy0, cx0, cy1, cx1)))
    return TilePlan(height, width, max(ty, tx), p, win, m, tuple(tiles))


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
    h, w = img.shape[:2]
    m = max(1, size_multiple)
    ph = _round_up(h + pre_pad, m) - h
    pw = _round_up(w + pre_pad, m) - w
    if ph == 0 and pw == 0:
        return img
    return np.pad(img, ((0, ph), (0, pw)) + ((0, 0),) * (img.ndim - 2), mode="reflect")


class _Notify:
    """Say each distinct message once."""

    def __init__(self, sink: Callable[[str], None] | None) -> None:
        self.sink = sink or LOG.warning
        self.seen: set[str] = set()

    def __call__(self, msg: str) -> None:
        if msg not in self.seen:
            self.seen.add(msg)
            self.sink(msg)


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


def _paste(out: np.ndarray, y: np.ndarray, tile: Tile, scale: int, top: float) -> None:
    """Write the tile's core from model output ``y`` (C, h, w) float32 into the HWC canvas ``out``."""
    dst = tile.dst(scale).clip(out.shape[0], out.shape[1])
    if dst.height == 0 or dst.width == 0:
        return
    crop = tile.crop(scale)
    ys, xs = crop.y0, crop.x0
    part = y[:, ys:ys + dst.height, xs:xs + dst.width].transpose(1, 2, 0)
    if out.dtype.kind == "f":
        out[dst.slices()] = np.clip(part, 0.0, 1.0)
    else:
        v = np.clip(part, 0.0, 1.0) * np.float32(top)
        np.rint(v, out=v)
        out[dst.slices()] = v


def run_tiled(
    img: np.ndarray,
    fn: ModelFn,
    *,
    scale: int,
    tile: int,
    pad: int,
    batch: int = 1,
    pre_pad: int = 0,
    size_multiple: int = 1,
    out_dtype: np.dtype | type | None = None,
    fallback: ModelFn | None = None,
    pad_to_tile: bool = False,
    min_tile: int = MIN_TILE,
    progress: Callable[[int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Upscale ``img`` with ``fn`` tile by tile, several tiles per call.

    Args:
        img: ``(H, W, C)`` uint8 (0..255), uint16 (0..65535) or float32 in [0, 1]; channels in the order
            ``fn`` expects (pass ``img[..., ::-1]`` for a BGR image and an RGB model: views are fine).
        fn: float32 ``(N, C, h, w)`` in [0, 1] -> ``(N, C_out, h*scale, w*scale)`` (not necessarily clamped).
        scale: the model's scale factor.
        tile: core size in input pixels; ``0`` runs the whole (padded) image at once.
        pad: context around each core (upstream ``tile_pad``).
        batch: tiles per ``fn`` call.
        pre_pad: reflect padding added at the bottom/right before tiling and cropped afterwards.
        size_multiple: the model's input size multiple (mod-padding for pixel-unshuffle models).
        out_dtype: canvas dtype (default: ``img.dtype``); integer canvases get ``round(clip(y) * max)``.
        fallback: an fp32 ``fn`` used to redo tiles whose output holds NaN/Inf (fp16 overflow); without one
            such output is an error.
        pad_to_tile: edge-pad windows to ``tile + 2*pad`` when the image is smaller (a static engine);
            exactness at the padded border is then not guaranteed.
        min_tile: floor of the out-of-memory retry (the tile is halved, after the batch, down to this).
        progress: ``progress(done_tiles, total_tiles)`` after each call.
        notify: where one-time messages go (fp32 redo, smaller tile); default the ``sr_runtime`` logger.
        out: a preallocated ``(H*scale, W*scale, C_out)`` canvas to write into (may be a strided view, e.g.
            the BGR channels of a BGRA canvas in reverse order); its dtype wins over ``out_dtype``.

    Returns:
        ``(H*scale, W*scale, C_out)`` array of ``out_dtype``.

    Raises:
        OutOfMemory: still out of memory at ``min_tile`` and batch 1.
        SrError: non-finite output without a ``fallback``, or a wrong output shape from ``fn``.
        ValueError: bad arguments (not HWC, unsupported dtype).
    """
    if img.ndim != 3:
        raise ValueError(f"run_tiled takes an (H, W, C) array, got shape {img.shape}")
    if scale < 1 or batch < 1:
        raise ValueError(f"scale and batch must be >= 1 (got {scale}, {batch})")
    h0, w0 = img.shape[:2]
    top_in = _dtype_max(img.dtype)
    odt = np.dtype(out_dtype) if out_dtype is not None else img.dtype
    if out is not None:
        if out.ndim != 3 or out.shape[:2] != (h0 * scale, w0 * scale):
            raise ValueError(f"out has shape {out.shape}, expected ({h0 * scale}, {w0 * scale}, C)")
        odt = out.dtype
    top_out = _dtype_max(odt)
    src = pad_input(img, pre_pad, size_multiple)
    say = _Notify(notify)
    cur_tile, cur_batch = tile, batch
    while True:
        plan = plan_tiles(src.shape[0], src.shape[1], tile=cur_tile, pad=pad, size_multiple=size_multiple)
        try:
            out = _run_plan(src, plan, fn, scale, cur_batch, top_in, odt, top_out, (h0, w0), fallback,
                            pad_to_tile, cur_tile, pad, progress, say, out)
            return out
        except OutOfMemory as exc:
            if cur_batch > 1:
                cur_batch = max(1, cur_batch // 2)
            else:
                base = cur_tile if cur_tile > 0 else max(src.shape[:2])
                nxt = base // 2 // max(1, size_multiple) * max(1, size_multiple)
                if nxt < max(min_tile, size_multiple):
                    raise OutOfMemory(
                        f"out of memory even at tile {base} and batch 1 ({exc.message})",
                        "Use a smaller model, the CPU backend (--backend ort), or free memory.",
                        exc.path,
                    ) from None
                cur_tile = nxt
            say(f"out of memory: retrying with tile {cur_tile or 'whole image'} and batch {cur_batch}")


def _run_plan(src, plan, fn, scale, batch, top_in, odt, top_out, out_hw, fallback, pad_to_tile, tile, pad,
              progress, say, out):
    h0, w0 = out_hw
    window = None
    if pad_to_tile and tile > 0:
        full = _round_up(tile + 2 * _round_up(pad, plan.size_multiple), plan.size_multiple)
        if plan.window != (full, full):
            window = (max(full, plan.window[0]), max(full, plan.window[1]))
    tiles = list(plan.tiles)
    total, done = len(tiles), 0
    for i in range(0, total, batch):
        group = tiles[i:i + batch]
        x = _to_batch(src, group, top_in, window)
        y = fn(x)
        expect_hw = (x.shape[2] * scale, x.shape[3] * scale)
        if y.ndim != 4 or y.shape[0] != len(group) or tuple(y.shape[2:]) != expect_hw:
            raise SrError(f"the model returned shape {tuple(y.shape)} for input {tuple(x.shape)}",
                          f"Expected (N, C, {expect_hw[0]}, {expect_hw[1]}); is the model's scale {scale}?")
        if out is None:
            out = np.empty((h0 * scale, w0 * scale, y.shape[1]), odt)
        elif out.shape[2] != y.shape[1]:
            raise SrError(f"the model returned {y.shape[1]} channels, the output canvas has {out.shape[2]}")
        bad = ~np.isfinite(y).reshape(len(group), -1).all(axis=1)
        if bad.any():
            if fallback is None:
                raise SrError("the model produced NaN/Inf values",
                              "Run it in fp32 (--fp32); fp16 overflows in some models.")
            say("non-finite (NaN/Inf) tile output in reduced precision: those tiles were re-run in fp32")
            redo = fallback(x[bad])
            if not np.all(np.isfinite(redo)):
                raise SrError("the model produced NaN/Inf values even in fp32", "The model or input is broken.")
            y = y.copy() if not y.flags.writeable else y
            y[bad] = redo
        for t, yt in zip(group, y):
            _paste(out, yt, t, scale, top_out)
        done += len(group)
        if progress is not None:
            progress(done, total)
    return out


def tiled_shape(height: int, width: int, tile: int, pad: int, pre_pad: int = 0, size_multiple: int = 1) -> tuple[int, int]:
    """The window shape ``(h, w)`` every tile of this image will have (for sizing engines and memory)."""
    m = max(1, size_multiple)
    ph, pw = _round_up(height + pre_pad, m), _round_up(width + pre_pad, m)
    return plan_tiles(ph, pw, tile=tile, pad=pad, size_multiple=m).window

