"""The engine cache of ``sr-run --backend trt`` given an ``.onnx``: one engine per ONNX, profile, flavour and GPU
(after vs-mlrt's engine names), built on the first miss."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sr_runtime.backends.trt.build import build_engine, onnx_bytes
from sr_runtime.backends.trt.cuda import GpuInfo, current_gpu
from sr_runtime.backends.trt.flavor import Flavor, TrtFlavor, load_flavor
from sr_runtime.backends.trt.profile import ShapeProfile
from sr_runtime.backends.trt.sidecar import sidecar_path, write_engine

ENGINE_SUFFIX = ".engine"
"""Suffix of engine files written by sr-export and the engine cache."""


def default_cache_dir() -> Path:
    """``$SR_DEPLOY_CACHE``, else ``$XDG_CACHE_HOME/sr-deploy/engines``, else ``~/.cache/sr-deploy/engines``."""
    env = os.environ.get("SR_DEPLOY_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sr-deploy" / "engines"


def _gpu_slug(gpu: GpuInfo | None) -> str:
    where = "portable" if gpu is None else f"{gpu.name}-sm{gpu.compute_capability.replace('.', '')}"
    return "".join(c if c.isalnum() or c in "-." else "_" for c in where)


def engine_cache_key(onnx_sha256: str, profile: ShapeProfile, fl: TrtFlavor, gpu: GpuInfo | None,
                     workspace_mib: int | None = None) -> str:
    """Cache key (after vs-mlrt's engine names): ONNX hash, profile, flavour + version, workspace limit and GPU.

    TensorRT engines are specific to the GPU model; TensorRT-RTX engines built without a GPU are portable
    (``portable``), with a GPU they target its compute capability only. The workspace limit changes which
    tactics the builder may pick, so engines built with another limit are other engines (``wsdef``: the
    library default).
    """
    ws = "wsdef" if workspace_mib is None else f"ws{int(workspace_mib)}"
    return f"{onnx_sha256[:16]}_{profile.key()}_{fl.name}-{fl.version}_{ws}_{_gpu_slug(gpu)}"


def timing_cache_path(cache_dir: str | Path, fl: TrtFlavor, gpu: GpuInfo | None) -> Path:
    """TensorRT's timing cache for this flavour, version and GPU model: ``timing-<flavour>-<version>-<gpu>.cache``.

    Timings are specific to the device, CUDA and TensorRT version (TensorRT's builder-performance guide), so
    each GPU model gets its own file, and :func:`~sr_runtime.backends.trt.build.build_engine` loads it strictly.
    """
    return Path(cache_dir) / f"timing-{fl.name}-{fl.version}-{_gpu_slug(gpu)}.cache"


def cached_engine(
    onnx_path: str | Path,
    profile: ShapeProfile,
    *,
    flavor: Flavor = "auto",
    cache_dir: str | Path | None = None,
    workspace_mib: int | None = None,
) -> Path:
    """Return an engine for ``onnx_path`` and ``profile`` from the cache, building it on a miss.

    The file is ``<cache_dir>/<key>.engine`` (+ sidecar), ``key`` from :func:`engine_cache_key`; the TensorRT
    timing cache of this GPU model (:func:`timing_cache_path`) in the same folder is reused across builds.

    Raises:
        TrtMissingError, ModelFileError, SrError: as :func:`~sr_runtime.backends.trt.build.build_engine`;
        OSError if the cache folder cannot be written.
    """
    onnx_path = Path(onnx_path)
    data = onnx_bytes(onnx_path)
    fl = load_flavor(flavor)
    gpu = current_gpu()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = engine_cache_key(hashlib.sha256(data).hexdigest(), profile, fl, gpu, workspace_mib)
    path = cache / f"{key}{ENGINE_SUFFIX}"
    if path.is_file() and sidecar_path(path).is_file():
        return path
    targets = ["current"] if (fl.name == "rtx" and gpu is not None) else None
    engine, sidecar = build_engine(onnx_path, profile, flavor=fl.name, workspace_mib=workspace_mib,
                                   timing_cache=timing_cache_path(cache, fl, gpu),
                                   compute_capabilities=targets)
    return write_engine(engine, sidecar, path)
