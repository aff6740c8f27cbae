"""Build TensorRT / TensorRT-RTX engines from an sr-deploy ONNX file, without torch.

Shared by ``sr-export --trt`` (:func:`export_engine`) and by ``sr-run``, which builds an engine on first use
and caches it (:mod:`sr_runtime.backends.trt.cache`). Precision comes from the ONNX itself (strongly typed
networks): an fp16 ONNX gives an fp16 engine. This is the only way in TensorRT 11.x and TensorRT-RTX, and the
way we use TensorRT 10.x too.

:func:`build_engine` runs these steps in order: read the ONNX and its metadata, parse it into a network,
configure the optimisation profile and workspace, choose the targets (TensorRT-RTX compute capabilities, or
the GPU here plus the timing cache for TensorRT), build, and describe the engine in its sidecar
(:mod:`sr_runtime.backends.trt.sidecar`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sr_runtime.backends.trt.cuda import current_gpu, probe_gpu
from sr_runtime.backends.trt.flavor import (
    LOG,
    Flavor,
    TrtFlavor,
    cc_to_sm,
    load_flavor,
    rtx_default_targets,
    sm_to_cc,
)
from sr_runtime.backends.trt.profile import ShapeProfile
from sr_runtime.backends.trt.sidecar import make_sidecar, write_engine
from sr_runtime.errors import ModelFileError, SrError
from sr_runtime.fileio import atomic_write_bytes
from sr_runtime.info import read_onnx_info


def onnx_bytes(path: Path) -> bytes:
    """The ONNX file's bytes.

    Raises:
        ModelFileError: missing, or not a file.
    """
    if not path.is_file():
        raise ModelFileError("file not found" if not path.exists() else "is not a file", "Check the path.", path)
    return path.read_bytes()


def build_engine(
    onnx_path: str | Path,
    profile: ShapeProfile,
    *,
    flavor: Flavor = "auto",
    workspace_mib: int | None = None,
    timing_cache: Path | None = None,
    compute_capabilities: Sequence[str] | None = None,
    verbose: bool = False,
) -> tuple[bytes, dict[str, Any]]:
    """Parse an sr-deploy ONNX and build a serialized engine for one optimisation profile.

    Args:
        onnx_path: ONNX written by sr-export (its metadata becomes the sidecar's ``model``); fp16 weights and
            compute give an fp16 engine (strongly typed network).
        profile: min/opt/max input shapes.
        flavor: ``tensorrt``, ``rtx`` or ``auto`` (tensorrt if importable, else rtx).
        workspace_mib: builder workspace limit in MiB (None: the library default).
        timing_cache: a timing-cache file read before and rewritten after the build (TensorRT only;
            TensorRT-RTX keeps its tuning in the runtime cache instead, see the TensorRT backend).
        compute_capabilities: RTX targets such as ``["8.6", "8.9"]`` or ``["current"]``; default: the support
            matrix's portable set (8.6, 8.9, 12.0, 12.1; see ``RTX_PORTABLE_TARGETS``). Ignored by TensorRT,
            which builds for the GPU it runs on.
        verbose: log everything the builder says.

    Returns:
        ``(engine_bytes, sidecar)``; the sidecar is JSON-compatible.

    Raises:
        TrtMissingError: no TensorRT flavour is installed.
        ModelFileError: the ONNX is missing, unparsable or carries no sr-deploy metadata.
        SrError: the input is not ``(N, C, H, W)`` with C matching the profile, or the build failed.
    """
    onnx_path = Path(onnx_path)
    data = onnx_bytes(onnx_path)
    info = read_onnx_info(onnx_path)
    fl = load_flavor(flavor)
    if profile.min[1] != info.in_channels:
        raise SrError(f"the profile has {profile.min[1]} channels, the model takes {info.in_channels}",
                      "Build the profile with channels=info.in_channels.", onnx_path)
    builder, network, _parser = _parse(fl, data, onnx_path, verbose)  # the parser must outlive the build
    config = _configure(fl, builder, network, profile, workspace_mib)
    built_for = _choose_targets(fl, config, compute_capabilities, timing_cache)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if serialized is None:
        raise SrError(f"{fl.label} failed to build the engine for profile {profile.key()}",
                      "Re-run with --debug for the builder log; check the profile against the model's size multiple.",
                      onnx_path)
    if fl.name == "tensorrt" and timing_cache is not None:
        _save_timing_cache(config, timing_cache)
    engine = bytes(serialized)
    io_names = (network.get_input(0).name, network.get_output(0).name)
    sidecar = make_sidecar(fl, info, profile, built_for, io_names, data, engine, workspace_mib=workspace_mib,
                           seconds=seconds)
    return engine, sidecar


def _parse(fl: TrtFlavor, data: bytes, onnx_path: Path, verbose: bool) -> tuple[Any, Any, Any]:
    """``(builder, network, parser)`` for the ONNX bytes (strongly typed network, one NCHW input).

    Raises:
        ModelFileError: the parser rejects the ONNX.
        SrError: not exactly one 4-D input.
    """
    trt = fl.trt
    logger = fl.logger(verbose)
    builder = trt.Builder(logger)
    network = builder.create_network(fl.network_flags())
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(data, str(onnx_path)):  # the path lets external weights resolve
        errs = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors)) or "no details"
        raise ModelFileError(f"{fl.label} cannot parse the ONNX ({errs})",
                             "Re-export it with sr-export (opset 17-18).", onnx_path)
    inp = network.get_input(0)
    if network.num_inputs != 1 or len(inp.shape) != 4:
        raise SrError(f"expected one (N, C, H, W) input, got {network.num_inputs} inputs", "", onnx_path)
    return builder, network, parser


def _configure(fl: TrtFlavor, builder: Any, network: Any, profile: ShapeProfile, workspace_mib: int | None) -> Any:
    """A builder config with the optimisation profile on the input and the workspace limit.

    Raises:
        SrError: a workspace below 1 MiB.
    """
    config = builder.create_builder_config()
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(network.get_input(0).name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)
    if workspace_mib is not None:
        if workspace_mib < 1:
            raise SrError(f"workspace {workspace_mib} MiB is not positive", "Pass --workspace as MiB >= 1.")
        config.set_memory_pool_limit(fl.trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    return config


def _choose_targets(fl: TrtFlavor, config: Any, compute_capabilities: Sequence[str] | None,
                    timing_cache: Path | None) -> dict[str, Any]:
    """Set what the engine is built for and return the sidecar's ``built_for``.

    TensorRT-RTX: the compute-capability targets. TensorRT: the GPU here (it autotunes on it), with the
    timing cache loaded.

    Raises:
        SrError: an unknown RTX target, ``current`` without a GPU, or TensorRT without a GPU.
    """
    if fl.name == "rtx":
        return _rtx_targets(fl, config, compute_capabilities)
    gpu = current_gpu()
    if gpu is None:
        raise SrError(f"{fl.label} builds engines on the GPU that will run them, and no CUDA device was found "
                      f"({probe_gpu().reason or 'none'})",
                      "Build on the target machine, or use --trt-flavor rtx (builds without a GPU).")
    _load_timing_cache(config, timing_cache)
    return {"compute_capabilities": [gpu.compute_capability], "gpu": gpu.name}


def _rtx_targets(fl: TrtFlavor, config: Any, compute_capabilities: Sequence[str] | None) -> dict[str, Any]:
    trt = fl.trt
    targets = list(compute_capabilities or [])
    if not targets:
        sms = rtx_default_targets(trt)
    elif [t.lower() for t in targets] == ["current"]:
        sms = ["CURRENT"]
    else:
        sms = [cc_to_sm(t) for t in targets]
    members = trt.ComputeCapability.__members__
    unknown = [s for s in sms if s not in members]
    if unknown:
        raise SrError(f"{fl.label} knows no compute capability {unknown[0]}",
                      f"Known: {', '.join(sm_to_cc(s) for s in members if s.startswith('SM'))}.")
    config.num_compute_capabilities = len(sms)
    for i, sm in enumerate(sms):
        config.set_compute_capability(members[sm], i)
    if sms != ["CURRENT"]:
        return {"compute_capabilities": [sm_to_cc(s) for s in sms], "gpu": None}
    gpu = current_gpu()
    if gpu is None:
        raise SrError("compute capability 'current' needs a CUDA device", "Name the targets instead.")
    return {"compute_capabilities": [gpu.compute_capability], "gpu": gpu.name}


def _load_timing_cache(config: Any, path: Path | None) -> Any:
    """Attach the timing cache in ``path`` (or an empty one) to the builder config.

    Loaded strictly (``ignore_mismatch=False``): TensorRT refuses a cache recorded on another device, and
    then an empty cache is used, so timings of another GPU model are never reused.
    """
    blob = b""
    if path is not None and Path(path).is_file():
        blob = Path(path).read_bytes()
    cache = config.create_timing_cache(blob)
    if not config.set_timing_cache(cache, ignore_mismatch=False) and blob:
        LOG.warning("%s: timing cache from another GPU or TensorRT ignored; a new one is recorded", path)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _save_timing_cache(config: Any, path: Path) -> None:
    blob = bytes(config.get_timing_cache().serialize())
    atomic_write_bytes(Path(path), blob)


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
        compute_capabilities: TensorRT-RTX targets (``["8.6", "8.9"]``; default: 8.6, 8.9, 12.0, 12.1).
        verbose: builder log.

    Returns:
        The sidecar dict that was written.

    Raises:
        TrtMissingError: no TensorRT flavour installed; ModelFileError/SrError: see :func:`build_engine`.
    """
    engine, sidecar = build_engine(onnx_path, profile, flavor=flavor, workspace_mib=workspace_mib,
                                   timing_cache=timing_cache, compute_capabilities=compute_capabilities,
                                   verbose=verbose)
    write_engine(engine, sidecar, engine_path)
    return sidecar
