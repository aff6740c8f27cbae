"""The Backend protocol: one small interface over ONNX Runtime and TensorRT (after Polygraphy's runners).

A backend maps a float32 ``(N, C, h, w)`` RGB batch in [0, 1] to ``(N, C, h*scale, w*scale)``; it knows
nothing about tiles or images. Arrays it returns are new and owned by the caller (no reused buffers).

Everything :class:`~sr_runtime.api.Upscaler` asks of a backend is in :class:`Backend`: the model's
:class:`~sr_runtime.info.ModelInfo`, what runs it, whether it computes in reduced precision (then NaN/Inf
tiles are redone in fp32), the largest input it takes (a TensorRT profile caps tile and batch), the free
memory ``--tile auto`` sizes against, and which window shapes it accepts (the tile plan is chosen by that
declaration, never by backend name). :class:`BackendBase` holds the defaults and the context-manager and
``repr`` boilerplate: a new backend (OpenVINO, ...) subclasses it, sets ``info``, ``provider`` and ``path``,
implements ``run`` and ``close``, and overrides the properties where it differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from sr_runtime.errors import OutOfMemory, SrError
from sr_runtime.info import ModelInfo
from sr_runtime.probe import (
    NotSuperResolution,
    Run,
    TensorSpec,
    check_graph,
    check_scale,
    has_metadata,
    probe_model,
)
from sr_runtime.tiling import WindowShapes

Shape = tuple[int, int, int, int]
"""An ``(N, C, H, W)`` input shape."""

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

    @property
    def reduced_precision(self) -> bool:
        """True when the backend computes below fp32 (fp16 weights or I/O, or an fp16 engine build): the
        caller then redoes non-finite tiles with an fp32 model."""
        ...

    @property
    def max_shape(self) -> Shape | None:
        """The largest ``(N, C, H, W)`` one ``run`` call takes (a TensorRT profile's ``max``); None: no limit.

        The caller caps batch and tile so that windows fit (see :func:`sr_runtime.tiling.max_core`).
        """
        ...

    @property
    def window_shapes(self) -> WindowShapes:
        """Which window shapes ``run`` accepts: ``any`` (dynamic shapes), ``same`` (one shape per run is what
        it is built for) or ``fixed`` (one shape only; small images are padded up). See
        :data:`sr_runtime.tiling.WindowShapes`."""
        ...

    def free_memory(self) -> int | None:
        """Free bytes on the device the model runs on, for ``--tile auto``; None: it runs in host RAM (the
        caller then sizes against available RAM)."""
        ...

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

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc: object) -> None: ...


class BackendBase:
    """Defaults for :class:`Backend` plus the context-manager and ``repr`` boilerplate.

    Subclasses set ``info``, ``provider`` and ``path`` and implement ``run`` and ``close``; the defaults are a
    host-memory backend without shape limits that runs in the file's own precision and is given one window
    shape per run (``same``, what every engine handles).
    """

    info: ModelInfo
    provider: str
    path: Path | None = None

    @property
    def reduced_precision(self) -> bool:
        """The file's precision: fp16 weights or fp16 input/output."""
        return self.info.precision == "float16" or self.info.io_dtype == "float16"

    @property
    def max_shape(self) -> Shape | None:
        """No limit."""
        return None

    @property
    def window_shapes(self) -> WindowShapes:
        """``same``: one window shape per run."""
        return "same"

    def free_memory(self) -> int | None:
        """None: the model runs in host RAM."""
        return None

    def run(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def _engine_input(self, batch: np.ndarray, is_open: bool, dtype: type = np.float32) -> np.ndarray:
        """``batch`` checked against the model (:func:`check_batch`) and cast to the graph's input ``dtype``.

        Raises:
            SrError: the backend is closed (``is_open`` false) or the batch has a bad shape.
        """
        if not is_open:
            raise SrError("the backend is closed", "", self.path)
        x = check_batch(batch, self.info, str(self.path))
        return x if dtype is np.float32 else x.astype(dtype)

    def close(self) -> None:  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def __enter__(self) -> BackendBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"{str(self.path)!r}, " if self.path is not None else ""
        return f"{type(self).__name__}({where}provider={self.provider!r}, arch={self.info.arch}, x{self.info.scale})"


def is_oom_message(text: str) -> bool:
    """True when an engine's error message reports an allocation failure."""
    low = text.lower()
    return any(m in low for m in _OOM_MARKERS)


def run_error(exc: BaseException, engine: str, shape: tuple[int, ...], source: str | Path | None) -> SrError:
    """The one-line error for an exception from an engine's inference call.

    Args:
        exc: what the engine (or its bindings) raised.
        engine: the engine's name for the message (``ONNX Runtime``, ``TensorRT``).
        shape: the batch's shape.
        source: the model file.

    Returns:
        :class:`~sr_runtime.errors.OutOfMemory` for a ``MemoryError`` or an allocation-failure message (the
        tiler then halves batch and tile), else an :class:`~sr_runtime.errors.SrError` quoting the message.
    """
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError) or is_oom_message(text):
        return OutOfMemory(f"out of memory running a {'x'.join(map(str, shape))} batch",
                           "Use a smaller --tile or --batch.", source)
    return SrError(f"{engine} failed ({text[:300]})", "Re-run with --debug.", source)


def check_batch(batch: np.ndarray, info: ModelInfo, source: str | None = None) -> np.ndarray:
    """Validate a batch against the model's metadata and return it as C-contiguous float32.

    Raises:
        SrError: wrong rank, channel count or a size that is not a multiple of ``info.size_multiple``.
    """
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


def resolve_info(props: Mapping[str, str], inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                 run_on: Callable[[TensorSpec, TensorSpec], Run], path: Path, scale: int | None) -> ModelInfo:
    """The :class:`ModelInfo` of an opened ONNX model: its sr-deploy metadata checked against the graph and one
    tiny run, or, without metadata, what a probe run finds (:func:`~sr_runtime.probe.probe_model`).

    Args:
        props: the model's metadata properties as the engine parsed them (no second read of the file).
        inputs, outputs: the graph's inputs and outputs.
        run_on: ``run_on(input, output)`` -> a function running the model on one array.
        path: the model file (messages).
        scale: the scale the caller expects (``--scale``), or None.

    Raises:
        NotSuperResolution: not an image SR model, or metadata that contradicts the graph.
        ModelFileError: malformed metadata.
        SrError: ``scale`` contradicts the metadata or the probe.
    """
    if not has_metadata(props):
        if len(inputs) != 1:
            raise NotSuperResolution(f"the model takes {len(inputs)} inputs, not one image",
                                     "sr-run runs models with one image input.", path)
        return probe_model(run_on(inputs[0], outputs[0]), inputs[0], outputs[0], path, scale)
    info = ModelInfo.from_metadata_props(dict(props), path)
    names_in, names_out = [i.name for i in inputs], [o.name for o in outputs]
    inp = inputs[names_in.index(info.input_name) if info.input_name in names_in else 0]
    out = outputs[names_out.index(info.output_name) if info.output_name in names_out else 0]
    check_graph(inp, out, info, path)
    check_scale(run_on(inp, out), inp, info, path)
    if scale is not None and int(scale) != info.scale:
        raise SrError(f"--scale {scale} was given, but the model's metadata says x{info.scale}",
                      f"Drop --scale or pass --scale {info.scale}.", path)
    return info.replace(input_name=inp.name, output_name=out.name)
