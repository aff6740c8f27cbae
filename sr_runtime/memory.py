"""``--tile auto``: the largest tile whose estimated activation memory fits a budget.

The estimate is deliberately simple: peak bytes per *input* pixel of a tile window =
``bytes_per_value x (ACTIVATION_MAPS x num_feat x res + 2 x (in_channels + out_channels x scale^2))``, where
``res`` is how many pixels the widest feature maps have per input pixel (1 for SRVGGNetCompact, whose features
stay at input resolution; ``scale^2`` for RRDBNet, whose last convs run on ``num_feat`` channels at output
resolution, and for a model of unknown architecture, a probed ONNX without metadata). ``ACTIVATION_MAPS`` (live feature maps at the peak, engine arena slack included) was calibrated
against ONNX Runtime 1.32 CPU's peak RSS growth for one batch (num_feat 64, tiles 128-192, batch 1-2):
SRVGGNetCompact x4 measured 1015-1346 B/px (estimate 1624), RRDBNet x4 13597-16192 (18832),
RRDBNet x2 3518-4335 (4744). See docs/runtime.md.
"""

from __future__ import annotations

import os
import re

from sr_runtime.errors import SrError
from sr_runtime.info import ModelInfo

ACTIVATION_MAPS = 4.5
"""Feature maps of ``num_feat`` channels alive at the peak (calibrated, with slack)."""
DEFAULT_FRACTION = 0.25
"""Default budget: this fraction of the available RAM (or free GPU memory)."""
FALLBACK_BUDGET = 2 << 30
"""Budget when the available memory cannot be determined."""
TILE_STEP = 16
"""Auto tiles are multiples of this (and of the model's size multiple)."""


def bytes_per_pixel(info: ModelInfo) -> float:
    """Estimated peak inference memory per input pixel of a tile window, in bytes."""
    hp = info.hparams or {}
    feat = float(hp.get("num_feat", 64))
    s2 = float(info.scale * info.scale)
    res = s2 if info.arch in ("RRDBNet", "unknown") else 1.0  # unknown (a probed ONNX): assume the larger
    width = 2.0 if info.precision == "float16" else 4.0
    return width * (ACTIVATION_MAPS * feat * res) + 4.0 * 2.0 * (info.in_channels + info.out_channels * s2)


def available_memory() -> int | None:
    """Bytes of RAM available to a new allocation (``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def default_budget(device_free: int | None = None) -> int:
    """``DEFAULT_FRACTION`` of free device memory when given, else of available RAM."""
    total = device_free if device_free else available_memory()
    return int(total * DEFAULT_FRACTION) if total else FALLBACK_BUDGET


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_memory(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1.5g"``, ``"800MiB"``, ``"1000000"`` -> bytes.

    Raises:
        SrError: unparseable or non-positive.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgtKMGT]?)(i?[bB])?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise SrError(f"bad memory size '{text}'", "Use a number with an optional unit, e.g. 4G or 512M.")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def auto_tile(info: ModelInfo, height: int, width: int, *, pad: int, batch: int = 1, budget: int,
              min_tile: int = 32, max_tile: int | None = None, row_bytes: int = 0) -> int:
    """The largest tile whose ``batch`` windows fit ``budget``; 0 (no tiling) when the whole image fits.

    Args:
        info: the model's metadata (scale, num_feat, precision).
        height, width: the image (after pre-padding) in input pixels.
        pad: tile_pad.
        batch: tiles per call.
        budget: bytes for activations.
        min_tile: never below this (the out-of-memory retry can still go lower).
        max_tile: an engine's largest tile, if any.
        row_bytes: memory per input row of a window that grows with the image's width (the output bands of a
            streamed image): charged ``window rows x row_bytes`` on top of the activations.

    Returns:
        A tile size (multiple of ``TILE_STEP`` and the size multiple), or 0 for the whole image.
    """
    bpp = bytes_per_pixel(info)
    if max_tile is None and height * (width * bpp + row_bytes) <= budget:
        return 0
    m = max(1, info.size_multiple)
    step = TILE_STEP if TILE_STEP % m == 0 else TILE_STEP * m
    t = -(-max(min_tile, step) // step) * step
    limit = max(height, width) if max_tile is None else min(max(height, width), max_tile)
    while t + step <= limit and (t + step + 2 * pad) * (batch * (t + step + 2 * pad) * bpp + row_bytes) <= budget:
        t += step
    if max_tile is None and t >= max(height, width):
        return 0
    return t
