"""ONNX -> TensorRT / TensorRT-RTX engine file plus JSON sidecar (the build itself is torch-free and lives in
:mod:`sr_runtime.trt_build`, which sr-run uses too)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sr_runtime.trt_build import (
    Flavor,
    ShapeProfile,
    TrtMissingError,
    build_engine,
    load_flavor,
    sidecar_path,
    write_engine,
)

__all__ = ["TrtMissingError", "build_engine", "export_engine", "load_flavor", "sidecar_path"]


def export_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    profile: ShapeProfile,
    *,
    flavor: Flavor = "auto",
    workspace_mib: int | None = None,
    timing_cache: Path | None = None,
    compute_capabilities: Sequence[str] | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Build an engine from an sr-deploy ONNX and write ``engine_path`` and ``<engine_path>.json`` atomically.

    Args:
        onnx_path: the (fp32 or fp16) ONNX; its precision is the engine's precision.
        engine_path: where to write the engine (``.engine`` or ``.plan``).
        profile: min/opt/max input shapes.
        flavor: ``auto``, ``tensorrt`` or ``rtx``.
        workspace_mib: builder workspace limit.
        timing_cache: TensorRT timing-cache file, read and updated (ignored by TensorRT-RTX).
        compute_capabilities: TensorRT-RTX targets (``["8.6", "8.9"]``; default: Ampere and later).
        verbose: builder log.

    Returns:
        The sidecar dict that was written.

    Raises:
        TrtMissingError: no TensorRT flavour installed; ModelFileError/SrError: see ``build_engine``.
    """
    engine, sidecar = build_engine(onnx_path, profile, flavor=flavor, workspace_mib=workspace_mib,
                                   timing_cache=timing_cache, compute_capabilities=compute_capabilities,
                                   verbose=verbose)
    write_engine(engine, sidecar, engine_path)
    return sidecar
