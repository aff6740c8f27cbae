"""The JSON sidecar next to each engine (``<engine>.json``): what it was built with, for and from.

It records the flavour and version, the GPU or compute capabilities it was built for, the optimisation
profile, the precision and the model's :class:`~sr_runtime.info.ModelInfo`. The TensorRT backend reads it and
refuses an engine built for another TensorRT or GPU (:func:`check_compatible`) before TensorRT sees it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sr_runtime.backends.trt.cuda import GpuInfo, GpuProbe
from sr_runtime.backends.trt.flavor import LOG, TrtFlavor, flavor_label
from sr_runtime.backends.trt.profile import ShapeProfile
from sr_runtime.errors import EngineMismatchError, ModelFileError, SrError
from sr_runtime.fileio import atomic_write_bytes
from sr_runtime.info import ModelInfo

SIDECAR_FORMAT = "sr-deploy-trt"
"""``format`` value of engine sidecars."""
SIDECAR_VERSION = 1
"""Bumped when the sidecar layout changes incompatibly."""
REBUILD = "Rebuild it for this machine with sr-export --trt (or let sr-run build one from the .onnx)."
"""The fix for an engine that does not fit this machine."""


def sidecar_path(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def make_sidecar(
    fl: TrtFlavor,
    info: ModelInfo,
    profile: ShapeProfile,
    built_for: dict[str, Any],
    io_names: tuple[str, str],
    onnx_bytes: bytes,
    engine: bytes,
    *,
    workspace_mib: int | None,
    seconds: float,
) -> dict[str, Any]:
    """The sidecar of a freshly built engine (JSON-compatible); the model's info carries profile and targets."""
    model = info.replace(extra={**info.extra, "profile": profile.to_dict(), "built_for": built_for})
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "flavor": fl.name,
        "trt_version": fl.version,
        "built_for": built_for,
        "profile": profile.to_dict(),
        "input_name": io_names[0],
        "output_name": io_names[1],
        "precision": info.precision,
        "io_dtype": info.io_dtype,
        "strongly_typed": True,
        "workspace_mib": workspace_mib,
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "engine_sha256": hashlib.sha256(engine).hexdigest(),
        "build_seconds": round(seconds, 3),
        "model": model.to_dict(),
    }


def write_engine(engine: bytes, sidecar: dict[str, Any], path: str | Path) -> Path:
    """Write an engine and its sidecar (``<path>.json``) atomically; the sidecar goes last.

    Returns:
        The engine path.
    """
    path = Path(path)
    atomic_write_bytes(path, engine)
    atomic_write_bytes(sidecar_path(path), (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """Read and validate the sidecar of an engine.

    Raises:
        ModelFileError: missing, not JSON, or not an sr-deploy sidecar.
    """
    side = sidecar_path(engine_path)
    if not side.is_file():
        raise ModelFileError(f"the engine has no sidecar {side.name} (TensorRT version, GPU, profile, scale)",
                             "Rebuild the engine with sr-export --trt.", engine_path)
    try:
        d = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"unreadable sidecar ({exc})", "Rebuild the engine with sr-export --trt.", side) from None
    if not isinstance(d, dict) or d.get("format") != SIDECAR_FORMAT:
        raise ModelFileError("not an sr-deploy engine sidecar", "Rebuild the engine with sr-export --trt.", side)
    if int(d.get("format_version", 0)) > SIDECAR_VERSION:
        raise ModelFileError(f"sidecar format {d.get('format_version')} is newer than this sr-deploy understands",
                             "Upgrade sr-deploy or rebuild the engine.", side)
    for k in ("flavor", "trt_version", "built_for", "profile", "model"):
        if k not in d:
            raise ModelFileError(f"sidecar lacks '{k}'", "Rebuild the engine with sr-export --trt.", side)
    return d


def check_compatible(sidecar: dict[str, Any], fl: TrtFlavor, gpu: GpuInfo | GpuProbe | None,
                     source: str | Path) -> GpuInfo:
    """Refuse an engine built for another TensorRT flavour/version or GPU, before TensorRT sees it.

    An engine of full TensorRT built on another GPU model of the same compute capability (its sidecar names
    the build GPU) is accepted with a warning: TensorRT runs it, possibly slower, and logs the same concern
    (TensorRT-RTX compiles its kernels for the GPU it runs on, so no warning there).

    Args:
        sidecar: the engine's sidecar.
        fl: the TensorRT flavour installed here.
        gpu: this machine's GPU, or the probe that says why there is none.
        source: the engine file, for messages.

    Returns:
        The GPU, known to match.

    Raises:
        EngineMismatchError: flavour, version or compute capability differ (the fix: rebuild with sr-export).
        SrError: no usable CUDA device (the probe's reason: no driver, a driver too old for cuda-python, ...).
    """
    built_label = flavor_label(str(sidecar["flavor"]), str(sidecar["trt_version"]))
    if sidecar["flavor"] != fl.name or str(sidecar["trt_version"]) != fl.version:
        raise EngineMismatchError(f"the engine was built with {built_label}, this is {fl.label}", REBUILD, source)
    probe = gpu if isinstance(gpu, GpuProbe) else GpuProbe(gpu, "no CUDA device found")
    if probe.gpu is None:
        reason = probe.reason or "no CUDA device found"
        hint = probe.hint or "TensorRT needs an NVIDIA GPU; run the .onnx with --backend ort instead."
        raise SrError(f"cannot run the TensorRT engine: {reason}", hint, source)
    gpu = probe.gpu
    targets = [str(c) for c in sidecar["built_for"].get("compute_capabilities", [])]
    if gpu.compute_capability not in targets:
        raise EngineMismatchError(
            f"the engine was built for compute capability {', '.join(targets) or '?'}; "
            f"this GPU ({gpu.name}) is {gpu.compute_capability}", REBUILD, source)
    built_on = sidecar["built_for"].get("gpu")
    if fl.name == "tensorrt" and built_on and built_on != gpu.name:  # TensorRT-RTX compiles for the GPU here
        LOG.warning("%s: the engine was built on %s, this GPU is %s (same compute capability %s): it runs, "
                    "possibly slower; rebuild it here for full speed", source, built_on, gpu.name,
                    gpu.compute_capability)
    return gpu
