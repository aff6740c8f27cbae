"""Optimisation profiles for TensorRT engines, from the tiling flags (``--tile``, ``--tile-pad``, ``--max-batch``).

:class:`ShapeProfile` lives in :mod:`sr_runtime.trt_build` because sr-run builds engines too (without torch);
this module re-exports it and adds the export-side helper.
"""

from __future__ import annotations

from sr_runtime.info import ModelInfo
from sr_runtime.trt_build import ShapeOutsideProfileError, ShapeProfile

__all__ = ["ShapeOutsideProfileError", "ShapeProfile", "profile_for"]


def profile_for(info: ModelInfo, tile: int, pad: int, max_batch: int) -> ShapeProfile:
    """The profile that covers sr-run's tiles for this model.

    Args:
        info: the model's metadata (channels, size multiple).
        tile: tile size in input pixels.
        pad: context pixels on each side of a tile.
        max_batch: most tiles per call.

    Raises:
        SrError: a value is out of range (names the flag).
    """
    return ShapeProfile.from_tile(tile, pad, max_batch, channels=info.in_channels,
                                  size_multiple=max(1, info.size_multiple))
