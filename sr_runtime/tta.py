"""Test-time augmentation (``sr-run --tta``, realesrgan-ncnn-vulkan's ``-x``): the model runs on the 8 flips and
rotations of its input and the 8 outputs, turned back, are averaged.

It wraps a :data:`~sr_runtime.tiling.ModelFn`, so it works per tile window: a convolutional model's output at a
pixel depends on the same neighbourhood in every orientation, hence tiled TTA equals whole-image TTA whenever
the tile pad covers the receptive radius, as without TTA. It costs 8 model runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sr_runtime.tiling import ModelFn

Transform = tuple[bool, bool, bool]
"""``(transpose, flip vertically, flip horizontally)`` of an ``(N, C, h, w)`` batch."""
TRANSFORMS: tuple[Transform, ...] = tuple((t, v, h) for t in (False, True) for v in (False, True)
                                          for h in (False, True))
"""The 8 elements of the square's symmetry group (identity first)."""


def apply(x: np.ndarray, t: Transform) -> np.ndarray:
    """``x`` (``(N, C, h, w)``) transposed then flipped as ``t`` says (a view)."""
    transpose, flip_v, flip_h = t
    if transpose:
        x = x.transpose(0, 1, 3, 2)
    return x[..., ::-1 if flip_v else 1, ::-1 if flip_h else 1]


def undo(y: np.ndarray, t: Transform) -> np.ndarray:
    """The inverse of :func:`apply`: the flips first, then the transpose (a view)."""
    transpose, flip_v, flip_h = t
    y = y[..., ::-1 if flip_v else 1, ::-1 if flip_h else 1]
    return y.transpose(0, 1, 3, 2) if transpose else y


def with_tta(fn: ModelFn | None) -> ModelFn | None:
    """``fn`` averaged over :data:`TRANSFORMS` (None stays None).

    Args:
        fn: float32 ``(N, C, h, w)`` -> ``(N, C_out, h*s, w*s)``; it must take ``(N, C, w, h)`` windows too.

    Returns:
        A model function of the same contract whose output is the float32 mean of the 8 turned-back outputs.
    """
    if fn is None:
        return None
    run: Callable[[np.ndarray], np.ndarray] = fn

    def one(x: np.ndarray, t: Transform) -> np.ndarray:
        return undo(np.asarray(run(np.ascontiguousarray(apply(x, t)))), t)

    def tta(x: np.ndarray) -> np.ndarray:
        total = one(x, TRANSFORMS[0]).astype(np.float32, copy=True)
        for t in TRANSFORMS[1:]:
            total += one(x, t)
        return total / np.float32(len(TRANSFORMS))

    return tta
