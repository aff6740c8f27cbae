"""TensorRT and TensorRT-RTX, in one package (laid out like Polygraphy's ``backend/trt``).

=============  ======================================================================================
``profile``    :class:`ShapeProfile`: the input range an engine takes, from ``--tile/--tile-pad/--max-batch``
``flavor``     :class:`TrtFlavor`: one adapter over ``tensorrt`` and ``tensorrt_rtx``; :func:`load_flavor`
``cuda``       :func:`probe_gpu`/:func:`current_gpu` and :func:`~sr_runtime.backends.trt.cuda.open_cuda`
``build``      :func:`build_engine` (ONNX -> engine bytes + sidecar) and :func:`export_engine` (to files)
``sidecar``    the engine's JSON sidecar: written, read and checked against this machine
``cache``      :func:`cached_engine`: sr-run's engine cache for ``--backend trt`` with an ``.onnx``
``runner``     :class:`TrtBackend`: runs an engine (the :class:`~sr_runtime.backends.base.Backend` protocol)
=============  ======================================================================================

Nothing here imports ``tensorrt``, ``tensorrt_rtx`` or CUDA bindings at import time; :func:`load_flavor`
and the backend do, when called. No torch anywhere.
"""

from __future__ import annotations

from sr_runtime.backends.trt.build import build_engine, export_engine
from sr_runtime.backends.trt.cache import (
    ENGINE_SUFFIX,
    cached_engine,
    default_cache_dir,
    engine_cache_key,
    timing_cache_path,
)
from sr_runtime.backends.trt.cuda import GpuInfo, GpuProbe, current_gpu, probe_gpu
from sr_runtime.backends.trt.flavor import Flavor, TrtFlavor, TrtMissingError, load_flavor
from sr_runtime.backends.trt.profile import ShapeOutsideProfileError, ShapeProfile, profile_for
from sr_runtime.backends.trt.runner import TrtBackend
from sr_runtime.backends.trt.sidecar import check_compatible, read_sidecar, sidecar_path, write_engine

__all__ = [
    "ENGINE_SUFFIX",
    "Flavor",
    "GpuInfo",
    "GpuProbe",
    "ShapeOutsideProfileError",
    "ShapeProfile",
    "TrtBackend",
    "TrtFlavor",
    "TrtMissingError",
    "build_engine",
    "cached_engine",
    "check_compatible",
    "current_gpu",
    "default_cache_dir",
    "engine_cache_key",
    "export_engine",
    "load_flavor",
    "probe_gpu",
    "profile_for",
    "read_sidecar",
    "sidecar_path",
    "timing_cache_path",
    "write_engine",
]
