"""Backends: ``open_backend(path, backend)`` picks one by file suffix and request, importing only that one."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sr_runtime.backends.base import Backend, BackendBase
from sr_runtime.errors import ModelFileError, SrError
from sr_runtime.info import MODEL_SUFFIXES_TORCH, export_first_error, read_onnx_info
from sr_runtime.tiling import default_pad

BackendName = Literal["auto", "ort", "openvino", "ort-cuda", "trt"]
BACKENDS: tuple[str, ...] = ("auto", "ort", "openvino", "ort-cuda", "trt")
"""Accepted ``backend`` values (the CLI's ``--backend`` choices)."""
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
"""Serialized TensorRT engines (each with a JSON sidecar written by sr-export)."""

__all__ = ["BACKENDS", "ENGINE_SUFFIXES", "Backend", "BackendBase", "BackendName", "auto_choice", "open_backend"]


def _ort_has_cuda() -> bool:
    """True when the installed onnxruntime offers CUDA. The CPU wheel (distribution ``onnxruntime``) never
    does, so then onnxruntime is not imported at all (a cold sr-run on OpenVINO saves its import)."""
    from importlib import metadata

    from sr_runtime.backends.ort import available_providers

    try:
        metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        return "CUDAExecutionProvider" in available_providers()
    return False


def auto_choice() -> str:
    """What ``--backend auto`` tries first for an ``.onnx`` here: ``ort-cuda``, ``openvino`` or ``ort``."""
    from sr_runtime.backends import openvino

    if _ort_has_cuda():
        return "ort-cuda"
    return "openvino" if openvino.available() else "ort"


def open_backend(
    path: str | Path,
    backend: BackendName = "auto",
    threads: int | None = None,
    fp16: bool = False,
    *,
    tile: int = 256,
    tile_pad: int | None = 10,
    batch: int = 1,
    cache_dir: str | Path | None = None,
    scale: int | None = None,
) -> Backend:
    """Open an exported model with the requested backend.

    ``auto``: a ``.engine``/``.plan`` runs on TensorRT; an ``.onnx`` on ONNX Runtime with CUDA when the
    installed onnxruntime can use a GPU, else on the CPU with the fastest installed backend: OpenVINO (faster
    than ONNX Runtime on the same ONNX for 3 of 4 model sizes measured, docs/benchmarks.md), else ONNX Runtime. ``ort``: ONNX Runtime
    on the CPU. ``openvino``: OpenVINO on the CPU (bf16 with ``fp16`` where the CPU reports BF16). ``ort-cuda``:
    ONNX Runtime's CUDA provider (an error if it is unavailable). ``trt``: a TensorRT engine; given an
    ``.onnx`` the engine is built on first use into a cache (see :mod:`sr_runtime.backends.trt.cache`) for
    windows of :func:`~sr_runtime.tiling.window_side` ``(tile, tile_pad)`` pixels and up to ``batch`` tiles per
    call.

    Args:
        path: ``.onnx`` or ``.engine``/``.plan`` file written by sr-export.
        backend: one of :data:`BACKENDS`.
        threads: CPU threads for ONNX Runtime and OpenVINO (None: their default, all cores).
        fp16: build/run fp16 where the backend decides precision (TensorRT; OpenVINO: bf16/f16 where the CPU
            reports it); an fp16 ONNX file is fp16 anyway.
        tile, tile_pad, batch: the shape profile of an engine built from an ``.onnx`` (``trt`` only); ``tile_pad``
            None: :func:`~sr_runtime.tiling.default_pad` of the model.
        cache_dir: engine cache folder (``trt`` only; None: the default cache).
        scale: the scale the caller expects (``--scale``); needed by nothing with sr-deploy metadata, it checks
            a probed ONNX without metadata (see :mod:`sr_runtime.probe`).

    Raises:
        ModelFileError: missing/corrupt file, a training checkpoint, or an unknown suffix.
        MissingExtraError: the backend's package is not installed.
        SrError: an unknown backend name or a GPU provider that is not available.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if backend not in BACKENDS:
        raise SrError(f"unknown backend '{backend}'", f"Use one of: {', '.join(BACKENDS)}.")
    if suffix in MODEL_SUFFIXES_TORCH:
        raise export_first_error(p)
    if not p.is_file():
        raise ModelFileError("model file not found", "Check the path given to --model.", p)
    if suffix in ENGINE_SUFFIXES:
        if backend in ("ort", "ort-cuda", "openvino"):
            raise SrError(f"--backend {backend} runs .onnx files, this is a TensorRT engine",
                          "Use --backend trt (or auto), or pass the .onnx model.", p)
        from sr_runtime.backends.trt import TrtBackend

        return TrtBackend(p)
    if suffix != ".onnx":
        raise ModelFileError(f"unknown model file type '{suffix or '(none)'}'",
                             "sr-run runs .onnx models and .engine/.plan TensorRT engines from sr-export.", p)
    if backend == "trt":
        from sr_runtime.backends.trt import TrtBackend, cached_engine, profile_for

        info = read_onnx_info(p)
        profile = profile_for(info, tile, default_pad(info) if tile_pad is None else tile_pad, batch)
        engine = cached_engine(p, profile, flavor="auto", cache_dir=cache_dir)
        return TrtBackend(engine)

    if backend == "openvino":
        from sr_runtime.backends.openvino import OpenVinoBackend

        return OpenVinoBackend(p, threads, fp16, scale=scale)
    from sr_runtime.backends.ort import OrtBackend

    if backend == "ort":
        return OrtBackend(p, "cpu", threads, scale=scale)
    if backend == "ort-cuda":
        return OrtBackend(p, "cuda", threads, fp16, scale=scale)
    if _ort_has_cuda():
        try:
            return OrtBackend(p, "cuda", threads, fp16, scale=scale)
        except ModelFileError:
            raise
        except SrError:
            pass  # the GPU build without a usable GPU: auto means the CPU is fine
    return _fastest_cpu(p, threads, fp16, scale)


def _fastest_cpu(path: Path, threads: int | None, fp16: bool, scale: int | None) -> Backend:
    """``auto`` on the CPU: OpenVINO when installed (faster than ONNX Runtime on the same ONNX for 3 of 4 model
    sizes on an AMD EPYC, docs/benchmarks.md), else ONNX Runtime; a model OpenVINO cannot load runs on ONNX Runtime."""
    from sr_runtime.backends import openvino
    from sr_runtime.backends.ort import OrtBackend

    if openvino.available():
        try:
            return openvino.OpenVinoBackend(path, threads, fp16, scale=scale)
        except openvino.NotLoadable:
            pass
    return OrtBackend(path, "cpu", threads, scale=scale)
