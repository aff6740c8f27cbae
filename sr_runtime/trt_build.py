"""Build TensorRT / TensorRT-RTX engines from an sr-deploy ONNX file, without torch.

Shared by ``sr-export --trt`` and by ``sr-run`` (which builds an engine on first use and caches it). Two
flavours of the same API sit behind one small adapter (:class:`TrtFlavor`):

- ``tensorrt`` (10.x/11.x, data-centre and workstation GPUs): the builder autotunes on the GPU it runs on,
  so an engine is tied to that GPU's compute capability and to the exact TensorRT version.
- ``rtx`` (``tensorrt_rtx``, consumer RTX GPUs): ahead-of-time build that needs no GPU (it runs on a
  CPU-only machine) for a list of compute-capability targets; kernels are JIT-compiled at first run and kept
  in a runtime cache. Networks are always strongly typed; the timing cache is a no-op.

Precision comes from the ONNX itself (strongly typed networks): an fp16 ONNX gives an fp16 engine. This is
the only way in TensorRT 11.x and TensorRT-RTX, and the way we use TensorRT 10.x too.

The JSON sidecar next to each engine (``<engine>.json``, see :func:`sidecar_path`) records the flavour and
version, the GPU or compute capabilities it was built for, the optimisation profile, the precision and the
model's :class:`~sr_runtime.info.ModelInfo`; the TensorRT backend checks it before deserialising.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sr_runtime.errors import MissingExtraError, ModelFileError, SrError
from sr_runtime.fileio import atomic_write_bytes

Flavor = Literal["auto", "tensorrt", "rtx"]
Shape = tuple[int, int, int, int]

SIDECAR_FORMAT = "sr-deploy-trt"
"""``format`` value of engine sidecars."""
SIDECAR_VERSION = 1
"""Bumped when the sidecar layout changes incompatibly."""
ENGINE_SUFFIX = ".engine"
"""Suffix of engine files written by sr-export and the engine cache."""


class TrtMissingError(MissingExtraError):
    """Neither ``tensorrt`` nor ``tensorrt_rtx`` (or not the requested one) can be imported.

    Prints as exactly ``--trt needs the [trt] or [trt-rtx] extra`` (the extras are the fix).
    """

    def __init__(self, flavor: Flavor = "auto", detail: str = "") -> None:
        extra = {"auto": "[trt] or [trt-rtx]", "tensorrt": "[trt]", "rtx": "[trt-rtx]"}[flavor]
        module = {"auto": "tensorrt", "tensorrt": "tensorrt", "rtx": "tensorrt_rtx"}[flavor]
        super().__init__(module, "trt" if flavor != "rtx" else "trt-rtx")
        self.message = f"--trt needs the {extra} extra"
        self.hint = ""
        self.detail = detail

    def one_line(self) -> str:
        """Return the fixed one-line message (no file, no trailing period)."""
        return self.message


class ShapeOutsideProfileError(SrError):
    """An input shape that the engine's optimisation profile does not cover."""


# --------------------------------------------------------------------------------------------- profiles
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

        A padded tile is at most ``tile + 2 * pad`` pixels per side (rounded up to ``size_multiple``); tiles at
        the image border are smaller, down to ``size_multiple``. The engine is tuned for full tiles in full
        batches (``opt == max``), the common case of a tiled run.

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
        side = tile + 2 * pad
        side = -(-side // size_multiple) * size_multiple
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


# --------------------------------------------------------------------------------------------- flavours
@dataclass(frozen=True)
class TrtFlavor:
    """The adapter over ``tensorrt`` and ``tensorrt_rtx``: the same build code serves both."""

    name: Literal["tensorrt", "rtx"]
    """``tensorrt`` or ``rtx``."""
    trt: Any
    """The imported module."""

    @property
    def version(self) -> str:
        """Module version, e.g. ``10.13.0.35`` or ``1.7.1.116``."""
        return str(self.trt.__version__)

    @property
    def major(self) -> int:
        """Major version number."""
        return int(self.version.split(".")[0])

    @property
    def label(self) -> str:
        """Human-readable ``TensorRT 10.13.0.35`` / ``TensorRT-RTX 1.7.1.116``."""
        return f"{'TensorRT-RTX' if self.name == 'rtx' else 'TensorRT'} {self.version}"

    def logger(self, verbose: bool = False) -> Any:
        """A logger printing warnings and errors (or everything with ``verbose``)."""
        lg = self.trt.Logger
        return lg(lg.VERBOSE if verbose else lg.ERROR)

    def network_flags(self) -> int:
        """Creation flags for a strongly typed network.

        TensorRT-RTX and TensorRT 10.x take ``STRONGLY_TYPED``; in TensorRT 11.x strong typing is always on
        and the flag is deprecated (ignored), so it is not passed. ``EXPLICIT_BATCH`` is never needed (10+).
        """
        flag = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is None or (self.name == "tensorrt" and self.major >= 11):
            return 0
        return 1 << int(flag)


def load_flavor(flavor: Flavor = "auto") -> TrtFlavor:
    """Import the TensorRT flavour to use.

    ``auto`` prefers ``tensorrt`` and falls back to ``tensorrt_rtx``.

    Raises:
        TrtMissingError: the requested module (or, for ``auto``, both) cannot be imported.
        SrError: an unknown flavour name.
    """
    if flavor not in ("auto", "tensorrt", "rtx"):
        raise SrError(f"unknown TensorRT flavour {flavor!r}", "Use auto, tensorrt or rtx.")
    order: list[Literal["tensorrt", "rtx"]] = ["tensorrt", "rtx"] if flavor == "auto" else [flavor]  # type: ignore[list-item]
    errors = []
    for name in order:
        module = "tensorrt" if name == "tensorrt" else "tensorrt_rtx"
        try:
            import importlib

            return TrtFlavor(name, importlib.import_module(module))
        except Exception as exc:  # noqa: BLE001 - ImportError, or OSError from a missing libnvinfer
            errors.append(f"{module}: {type(exc).__name__}: {exc}")
    raise TrtMissingError(flavor, "; ".join(errors))


# --------------------------------------------------------------------------------------------- GPU query
@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device an engine is built for or runs on."""

    name: str
    """Device name, e.g. ``NVIDIA GeForce RTX 4090``."""
    compute_capability: str
    """``major.minor``, e.g. ``8.9``."""
    total_memory: int = 0
    """Device memory in bytes."""


def current_gpu(device: int = 0) -> GpuInfo | None:
    """Describe CUDA device ``device`` through cuda-python, or return None (no cuda-python, driver or GPU)."""
    try:
        from cuda.bindings import runtime as cudart
    except Exception:  # noqa: BLE001
        try:
            from cuda import cudart  # type: ignore[no-redef]  # cuda-python < 12.6 layout
        except Exception:  # noqa: BLE001
            return None
    try:
        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0 or device >= count:
            return None
        err, prop = cudart.cudaGetDeviceProperties(device)
        if int(err) != 0:
            return None
    except Exception:  # noqa: BLE001 - a broken driver install reads as "no GPU"
        return None
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return GpuInfo(name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}", int(prop.totalGlobalMem))


def rtx_default_targets(trt: Any) -> list[str]:
    """Compute-capability targets of a portable TensorRT-RTX engine: every ``SMxy`` the module knows from
    Ampere on (Turing needs its own engine, as the TensorRT-RTX support matrix says)."""
    names = [n for n in trt.ComputeCapability.__members__ if n.startswith("SM")]
    return [n for n in names if int(n[2:]) >= 80]


def _sm_to_cc(sm: str) -> str:
    digits = sm[2:]
    return f"{digits[:-1]}.{digits[-1]}"


def _cc_to_sm(cc: str) -> str:
    major, _, minor = cc.partition(".")
    return f"SM{major}{minor or '0'}"


def onnx_info(path: str | Path) -> Any:
    """The :class:`~sr_runtime.info.ModelInfo` stored in an sr-deploy ONNX (read without onnx/onnxruntime)."""
    from sr_runtime.backends.ort import read_onnx_info

    return read_onnx_info(path)


# --------------------------------------------------------------------------------------------- build
def sidecar_path(engine_path: str | Path) -> Path:
    """``model.engine`` -> ``model.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def _file_bytes(path: Path) -> bytes:
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
        compute_capabilities: RTX targets such as ``["8.6", "8.9"]`` or ``["current"]``; default: every
            target from Ampere on. Ignored by TensorRT, which builds for the GPU it runs on.
        verbose: log everything the builder says.

    Returns:
        ``(engine_bytes, sidecar)``; the sidecar is JSON-compatible.

    Raises:
        TrtMissingError: no TensorRT flavour is installed.
        ModelFileError: the ONNX is missing, unparsable or carries no sr-deploy metadata.
        SrError: the input is not ``(N, C, H, W)`` with C matching the profile, or the build failed.
    """
    onnx_path = Path(onnx_path)
    data = _file_bytes(onnx_path)
    info = onnx_info(onnx_path)
    fl = load_flavor(flavor)
    trt = fl.trt
    if profile.min[1] != info.in_channels:
        raise SrError(f"the profile has {profile.min[1]} channels, the model takes {info.in_channels}",
                      "Build the profile with channels=info.in_channels.", onnx_path)

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

    config = builder.create_builder_config()
    opt_profile = builder.create_optimization_profile()
    opt_profile.set_shape(inp.name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(opt_profile)
    if workspace_mib is not None:
        if workspace_mib < 1:
            raise SrError(f"workspace {workspace_mib} MiB is not positive", "Pass --workspace as MiB >= 1.")
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)

    built_for: dict[str, Any]
    if fl.name == "rtx":
        targets = list(compute_capabilities or [])
        if not targets:
            sms = rtx_default_targets(trt)
        elif [t.lower() for t in targets] == ["current"]:
            sms = ["CURRENT"]
        else:
            sms = [_cc_to_sm(t) for t in targets]
        members = trt.ComputeCapability.__members__
        unknown = [s for s in sms if s not in members]
        if unknown:
            raise SrError(f"{fl.label} knows no compute capability {unknown[0]}",
                          f"Known: {', '.join(_sm_to_cc(s) for s in members if s.startswith('SM'))}.")
        config.num_compute_capabilities = len(sms)
        for i, sm in enumerate(sms):
            config.set_compute_capability(members[sm], i)
        if sms == ["CURRENT"]:
            gpu = current_gpu()
            if gpu is None:
                raise SrError("compute capability 'current' needs a CUDA device", "Name the targets instead.")
            built_for = {"compute_capabilities": [gpu.compute_capability], "gpu": gpu.name}
        else:
            built_for = {"compute_capabilities": [_sm_to_cc(s) for s in sms], "gpu": None}
        cache = None
    else:
        gpu = current_gpu()
        if gpu is None:
            raise SrError(f"{fl.label} builds engines on the GPU that will run them, and no CUDA device was found",
                          "Build on the target machine, or use --trt-flavor rtx (builds without a GPU).")
        built_for = {"compute_capabilities": [gpu.compute_capability], "gpu": gpu.name}
        cache = _load_timing_cache(config, timing_cache)

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - t0
    if serialized is None:
        raise SrError(f"{fl.label} failed to build the engine for profile {profile.key()}",
                      "Re-run with --debug for the builder log; check the profile against the model's size multiple.",
                      onnx_path)
    if cache is not None and timing_cache is not None:
        _save_timing_cache(config, timing_cache)
    engine = bytes(serialized)

    model = info.replace(extra={**info.extra, "profile": profile.to_dict(), "built_for": built_for})
    sidecar = {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "flavor": fl.name,
        "trt_version": fl.version,
        "built_for": built_for,
        "profile": profile.to_dict(),
        "input_name": inp.name,
        "output_name": network.get_output(0).name,
        "precision": info.precision,
        "io_dtype": info.io_dtype,
        "strongly_typed": True,
        "workspace_mib": workspace_mib,
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
        "engine_sha256": hashlib.sha256(engine).hexdigest(),
        "build_seconds": round(seconds, 3),
        "model": model.to_dict(),
    }
    return engine, sidecar


def _load_timing_cache(config: Any, path: Path | None) -> Any:
    blob = b""
    if path is not None and Path(path).is_file():
        blob = Path(path).read_bytes()
    cache = config.create_timing_cache(blob)
    config.set_timing_cache(cache, ignore_mismatch=True)
    return cache


def _save_timing_cache(config: Any, path: Path) -> None:
    blob = bytes(config.get_timing_cache().serialize())
    atomic_write_bytes(Path(path), blob)


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


# --------------------------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """``$SR_DEPLOY_CACHE``, else ``$XDG_CACHE_HOME/sr-deploy/engines``, else ``~/.cache/sr-deploy/engines``."""
    env = os.environ.get("SR_DEPLOY_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sr-deploy" / "engines"


def engine_cache_key(onnx_sha256: str, profile: ShapeProfile, fl: TrtFlavor, gpu: GpuInfo | None) -> str:
    """Cache key (after vs-mlrt's engine names): ONNX hash, profile, flavour + version and the GPU.

    TensorRT engines are specific to the GPU model; TensorRT-RTX engines built without a GPU are portable
    (``portable``), with a GPU they target its compute capability only.
    """
    if gpu is None:
        where = "portable"
    else:
        where = f"{gpu.name}-sm{gpu.compute_capability.replace('.', '')}"
    where = "".join(c if c.isalnum() or c in "-." else "_" for c in where)
    return f"{onnx_sha256[:16]}_{profile.key()}_{fl.name}-{fl.version}_{where}"


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
    timing cache ``timing-<flavour>-<version>.cache`` in the same folder is reused across builds.

    Raises:
        TrtMissingError, ModelFileError, SrError: as :func:`build_engine`; OSError if the cache folder
        cannot be written.
    """
    onnx_path = Path(onnx_path)
    data = _file_bytes(onnx_path)
    fl = load_flavor(flavor)
    gpu = current_gpu()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = engine_cache_key(hashlib.sha256(data).hexdigest(), profile, fl, gpu)
    path = cache / f"{key}{ENGINE_SUFFIX}"
    if path.is_file() and sidecar_path(path).is_file():
        return path
    targets = ["current"] if (fl.name == "rtx" and gpu is not None) else None
    engine, sidecar = build_engine(onnx_path, profile, flavor=fl.name, workspace_mib=workspace_mib,
                                   timing_cache=cache / f"timing-{fl.name}-{fl.version}.cache",
                                   compute_capabilities=targets)
    return write_engine(engine, sidecar, path)
