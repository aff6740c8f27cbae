"""The Backend protocol: one small interface over ONNX Runtime and TensorRT (after Polygraphy's runners).

A backend maps a float32 ``(N, C, h, w)`` RGB batch in [0, 1] to ``(N, C, h*scale, w*scale)``; it knows
nothing about tiles or images. Arrays it returns are new and owned by the caller (no reused buffers).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from sr_runtime.info import ModelInfo

MODEL_SUFFIXES_TORCH = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")
"""Checkpoint suffixes that sr-run does not run (they must be exported first)."""

_OOM_MARKERS = (
    "failed to allocate memory",
    "out of memory",
    "bad_alloc",
    "cudaerrormemoryallocation",
    "cuda_error_out_of_memory",
    "cudnn_status_alloc_failed",
    "cublas_status_alloc_failed",
)


@runtime_checkable
class Backend(Protocol):
    """What the tiler and the API need from an inference engine."""

    info: ModelInfo
    """Metadata read from the model file (scale, channels, radius, size multiple, io dtype)."""
    provider: str
    """What actually runs, human readable (e.g. ``CPUExecutionProvider``, ``TensorRT 10.x on NVIDIA H100``)."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run the network.

        Args:
            batch: float32 ``(N, C, h, w)`` RGB in [0, 1], C == ``info.in_channels``, h and w multiples of
                ``info.size_multiple``.

        Returns:
            A new float32 ``(N, C_out, h*scale, w*scale)`` array (not clamped). Conversion to and from the
            model's ``info.io_dtype`` happens inside.

        Raises:
            OutOfMemory: the batch did not fit into (device) memory.
        """
        ...

    def close(self) -> None:
        """Release the session/engine; further ``run`` calls are an error."""
        ...

    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> None: ...


def is_oom_message(text: str) -> bool:
    """True when an engine's error message reports an allocation failure."""
    low = text.lower()
    return any(m in low for m in _OOM_MARKERS)


def check_batch(batch: np.ndarray, info: ModelInfo, source: str | None = None) -> np.ndarray:
    """Validate a batch against the model's metadata and return it as C-contiguous float32.

    Raises:
        SrError: wrong rank, channel count or a size that is not a multiple of ``info.size_multiple``.
    """
    from sr_runtime.errors import SrError

    if batch.ndim != 4:
        raise SrError(f"expected an (N, C, H, W) batch, got shape {batch.shape}", "", source)
    n, c, h, w = batch.shape
    if c != info.in_channels:
        raise SrError(f"the model takes {info.in_channels} channels, the batch has {c}", "", source)
    m = max(1, info.size_multiple)
    if h % m or w % m or h == 0 or w == 0 or n == 0:
        raise SrError(
            f"batch {n}x{c}x{h}x{w}: height and width must be non-zero multiples of {m}",
            "Pad the input (the tiler does this for you).",
            source,
        )
    return np.ascontiguousarray(batch, dtype=np.float32)
