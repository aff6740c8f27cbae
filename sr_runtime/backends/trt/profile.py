"""Optimisation profiles: the ``(N, C, H, W)`` input range an engine is built for, from the tiling flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr_runtime.errors import ModelFileError, SrError
from sr_runtime.info import ModelInfo
from sr_runtime.tiling import window_side

Shape = tuple[int, int, int, int]


class ShapeOutsideProfileError(SrError):
    """An input shape that the engine's optimisation profile does not cover."""


@dataclass(frozen=True)
class ShapeProfile:
    """A TensorRT optimisation profile for the ``(N, C, H, W)`` input.

    Every dimension of ``min <= opt <= max`` elementwise; C is fixed.
    """

    min: Shape
    """Smallest input shape the engine accepts."""
    opt: Shape
    """Shape the kernels are tuned for."""
    max: Shape
    """Largest input shape the engine accepts."""

    def __post_init__(self) -> None:
        for name in ("min", "opt", "max"):
            v = getattr(self, name)
            if not (isinstance(v, tuple) and len(v) == 4 and all(isinstance(d, int) and d >= 1 for d in v)):
                raise SrError(
                    f"shape profile {name}={v!r} is not four positive integers (N, C, H, W)",
                    "Pass --tile, --tile-pad and --max-batch as positive numbers.",
                )
        for i, axis in enumerate("NCHW"):
            if not self.min[i] <= self.opt[i] <= self.max[i]:
                raise SrError(
                    f"shape profile axis {axis}: min {self.min[i]} <= opt {self.opt[i]} <= max {self.max[i]} does not hold",
                    "Order the profile shapes from smallest to largest.",
                )
        if not self.min[1] == self.opt[1] == self.max[1]:
            raise SrError("shape profile: the channel count must be fixed", "Use one channel count.")

    @classmethod
    def from_tile(
        cls, tile: int, pad: int, max_batch: int, channels: int = 3, size_multiple: int = 1
    ) -> ShapeProfile:
        """The profile that covers a tiled run.

        A window is at most :func:`~sr_runtime.tiling.window_side` ``(tile, pad, size_multiple)`` pixels per side
        (the tile rounded down and the pad rounded up to ``size_multiple``); windows of small images are smaller,
        down to ``size_multiple``. The engine is tuned for full windows in full batches (``opt == max``), the
        common case of a tiled run.

        Args:
            tile: tile size in input pixels (> 0).
            pad: context pixels added on each side of a tile (>= 0).
            max_batch: most tiles per call (>= 1).
            channels: input channels.
            size_multiple: H and W must be multiples of this (RRDBNet scale 2 -> 2, scale 1 -> 4).

        Raises:
            SrError: a value is out of range (names the flag).
        """
        for flag, value, low in (("--tile", tile, 1), ("--tile-pad", pad, 0), ("--max-batch", max_batch, 1),
                                 ("channels", channels, 1), ("size_multiple", size_multiple, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SrError(f"{flag} must be an integer >= {low}, got {value!r}",
                              "A TensorRT engine needs a tile size; try --tile 256 --tile-pad 10 --max-batch 4.")
        side = window_side(tile, pad, size_multiple)
        return cls((1, channels, size_multiple, size_multiple), (max_batch, channels, side, side),
                   (max_batch, channels, side, side))

    def contains(self, shape: Sequence[int]) -> bool:
        """True when ``shape`` (N, C, H, W) lies within ``min``..``max`` on every axis."""
        return len(shape) == 4 and all(lo <= int(s) <= hi for s, lo, hi in zip(shape, self.min, self.max))

    def check(self, shape: Sequence[int], source: str | Path | None = None) -> None:
        """Raise unless ``shape`` is inside the profile.

        Raises:
            ShapeOutsideProfileError: names the first axis outside, the allowed range and the fix.
        """
        shape = tuple(int(s) for s in shape)
        if len(shape) != 4:
            raise ShapeOutsideProfileError(f"input shape {shape} is not (N, C, H, W)", "", source)
        for i, axis in enumerate(("batch", "channels", "height", "width")):
            if not self.min[i] <= shape[i] <= self.max[i]:
                raise ShapeOutsideProfileError(
                    f"input {'x'.join(map(str, shape))}: {axis} {shape[i]} is outside the engine's profile "
                    f"[{self.min[i]}, {self.max[i]}]",
                    f"Use a tile (plus padding) of at most {self.max[2]} pixels and at most {self.max[0]} tiles "
                    "per batch, or rebuild the engine with sr-export --trt --tile/--tile-pad/--max-batch.",
                    source,
                )

    def key(self) -> str:
        """Short text form, e.g. ``1x3x1x1-4x3x276x276-4x3x276x276`` (used in cache keys)."""
        return "-".join("x".join(map(str, s)) for s in (self.min, self.opt, self.max))

    def to_dict(self) -> dict[str, list[int]]:
        """Return ``{"min": [...], "opt": [...], "max": [...]}``."""
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | Path | None = None) -> ShapeProfile:
        """Inverse of :meth:`to_dict`.

        Raises:
            ModelFileError: missing or malformed entries.
        """
        try:
            return cls(*(tuple(int(x) for x in d[k]) for k in ("min", "opt", "max")))  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"bad shape profile in the engine sidecar ({exc})",
                                 "Rebuild the engine with sr-export --trt.", source) from None


def profile_for(info: ModelInfo, tile: int, pad: int, max_batch: int) -> ShapeProfile:
    """The profile that covers sr-run's tiles for this model (its channels and size multiple).

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
