"""TensorRT / TensorRT-RTX backend: a serialized engine plus its JSON sidecar, run with name-based I/O.

Before the engine is deserialised, its sidecar is checked against what is running: TensorRT flavour and exact
version, and the GPU's compute capability against the engine's targets
(:func:`~sr_runtime.backends.trt.sidecar.check_compatible`); then TensorRT's own validity check
(``get_engine_validity``, where the bindings have it) names what else is wrong (old driver or CUDA runtime, no
memory, a malformed file). A mismatch is an :class:`~sr_runtime.errors.EngineMismatchError` telling the user
to rebuild with sr-export, never a crash inside TensorRT. Device memory and the stream come from
:func:`~sr_runtime.backends.trt.cuda.open_cuda`; host buffers are pinned and sized once for the profile's
largest shapes.

TensorRT-RTX compiles kernels for the GPU at first run (JIT); they are kept in a runtime cache file next to
the engine (``<engine>.sm<cc>.rtcache``), loaded on open (a cache from another GPU, driver or version is
refused by TensorRT-RTX and rebuilt) and saved on close.
"""

from __future__ import annotations

import contextlib
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from sr_runtime.backends.base import BackendBase, Shape, check_batch, run_error
from sr_runtime.backends.trt.cuda import CudaRuntime, PyCuda, open_cuda, probe_gpu
from sr_runtime.backends.trt.flavor import LOG, TrtFlavor, TrtMissingError, load_flavor
from sr_runtime.backends.trt.profile import ShapeProfile
from sr_runtime.backends.trt.sidecar import REBUILD, check_compatible, read_sidecar
from sr_runtime.errors import EngineMismatchError, MissingExtraError, ModelFileError, OutOfMemory, SrError
from sr_runtime.fileio import atomic_write_bytes
from sr_runtime.info import ModelInfo
from sr_runtime.tiling import WindowShapes

EXEC_FAILED = "Re-run with --debug; check the GPU with nvidia-smi."


def _load_module(flavor: str) -> TrtFlavor:
    try:
        return load_flavor(flavor)  # type: ignore[arg-type]
    except TrtMissingError:
        extra = "trt-rtx" if flavor == "rtx" else "trt"
        raise MissingExtraError("tensorrt_rtx" if flavor == "rtx" else "tensorrt", extra,
                                "running this TensorRT engine") from None


def validity_error(flags: list[str], label: str, source: Path) -> SrError:
    """The error for ``get_engine_validity() == INVALID`` from its diagnostics (``EngineInvalidityDiagnostics``
    member names): each cause gets its own fix, and only a mismatch says "rebuild".
    """
    if "INSUFFICIENT_GPU_MEMORY" in flags:
        return OutOfMemory("not enough GPU memory for the engine", "Close other GPU programs.", source)
    if "OLD_CUDA_DRIVER" in flags:
        return SrError(f"the NVIDIA driver is too old for this {label} engine", "Update the NVIDIA driver.", source)
    if "OLD_CUDA_RUNTIME" in flags:
        return SrError(f"the CUDA runtime is older than the one this {label} engine needs",
                       "Upgrade the CUDA runtime (pip install -U the TensorRT and cuda-python wheels).", source)
    if "CUDA_ERROR" in flags:
        return SrError(f"{label} could not query CUDA to check the engine (driver or runtime install)",
                       "Check the NVIDIA driver and CUDA with nvidia-smi.", source)
    if "MALFORMED_ENGINE" in flags:
        return ModelFileError(f"{label} finds the engine file malformed (truncated or not an engine)", REBUILD, source)
    what = ", ".join(flags) or "no diagnostics"
    return EngineMismatchError(f"{label} reports the engine invalid on this machine ({what})", REBUILD, source)


# --------------------------------------------------------------------------------------------- backend
class TrtBackend(BackendBase):
    """A TensorRT or TensorRT-RTX engine written by sr-export (``.engine`` + ``.engine.json``).

    A :class:`~sr_runtime.backends.base.Backend` whose largest input is its profile's ``max``, that is given one
    window shape per run (``same``: the engine is tuned for full windows) and reports free GPU memory.

    Threads: one execution context, one stream and one set of pinned buffers per backend, so :meth:`run` calls
    are serialised by a lock; each call (and :meth:`close`) first makes the device's CUDA context current on
    the calling thread, so any thread may use the backend. For GPU work in parallel, open one backend per thread.

    Args:
        path: the engine file.
        device: CUDA device index.
        runtime_cache: TensorRT-RTX runtime-cache file; ``"auto"`` = ``<engine>.sm<cc>.rtcache``; None: none.

    Raises:
        ModelFileError: missing engine or sidecar, or an engine TensorRT cannot load.
        MissingExtraError: the engine's TensorRT flavour or cuda-python is not installed.
        EngineMismatchError: built for another TensorRT version or GPU.
        OutOfMemory: not enough device memory for the engine or its buffers.
        SrError: no CUDA device (with the reason: no driver, a driver too old for cuda-python 13, ...).
    """

    def __init__(self, path: str | Path, device: int = 0, runtime_cache: str | Path | None = "auto") -> None:
        self.path: Path = Path(path)
        self._closed = True
        self._lock = threading.Lock()
        self._cuda: CudaRuntime | PyCuda | None = None
        self._bufs: list[tuple[int, bool]] = []
        self._runtime_cache: Any = None
        self._runtime_cache_path: Path | None = None
        if not self.path.is_file():
            raise ModelFileError("engine file not found", "Check the path.", self.path)
        self.sidecar = read_sidecar(self.path)
        self.info: ModelInfo = ModelInfo.from_dict(self.sidecar["model"], self.path)
        self.profile = ShapeProfile.from_dict(self.sidecar["profile"], self.path)
        self._fl = _load_module(str(self.sidecar["flavor"]))
        gpu = self.gpu = check_compatible(self.sidecar, self._fl, probe_gpu(device), self.path)
        self.provider: str = f"{self._fl.label} on {gpu.name} (sm {gpu.compute_capability})"
        self._cuda = open_cuda(device)
        self._closed = False
        try:
            with self._cuda.activate():
                self._open_engine(self._fl.trt, runtime_cache)
                self._alloc()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _open_engine(self, trt: Any, runtime_cache: str | Path | None) -> None:
        blob = self.path.read_bytes()
        self._logger = self._fl.logger()
        self._runtime = trt.Runtime(self._logger)
        self._check_validity(trt, blob)
        self._engine = self._runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            raise ModelFileError(f"{self._fl.label} could not deserialize the engine", REBUILD, self.path)
        if self._fl.name == "rtx":
            self._runtime_config = self._make_runtime_config(runtime_cache)
            self._context = self._engine.create_execution_context(self._runtime_config)
        else:
            self._context = self._engine.create_execution_context()
        if self._context is None:
            raise OutOfMemory("could not create the TensorRT execution context (device memory)",
                              "Close other GPU programs or rebuild with a smaller --tile/--max-batch.", self.path)
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        mode = trt.TensorIOMode
        ins = [n for n in names if self._engine.get_tensor_mode(n) == mode.INPUT]
        outs = [n for n in names if self._engine.get_tensor_mode(n) == mode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise ModelFileError(f"expected one input and one output, got {ins} and {outs}", REBUILD, self.path)
        self._in, self._out = ins[0], outs[0]
        self._in_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._in)))
        self._out_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._out)))

    def _check_validity(self, trt: Any, blob: bytes) -> None:
        """TensorRT's own check of the engine against this machine (TensorRT-RTX, TensorRT >= 10.x where bound).

        Raises:
            SrError: see :func:`validity_error`.
        """
        if not hasattr(self._runtime, "get_engine_validity"):
            return
        try:
            validity, diag = self._runtime.get_engine_validity(blob)
        except Exception:  # noqa: BLE001 - an older binding: skip the early check, deserialisation still checks
            return
        if validity == trt.EngineValidity.SUBOPTIMAL:
            LOG.warning("%s: %s says the engine may run slower on this GPU (%s); rebuild it here for full speed",
                        self.path, self._fl.label, self.gpu.name)
        elif validity == trt.EngineValidity.INVALID:
            flags = [n for n, v in trt.EngineInvalidityDiagnostics.__members__.items() if int(diag) & int(v)]
            raise validity_error(flags, self._fl.label, self.path)

    def _make_runtime_config(self, runtime_cache: str | Path | None) -> Any:
        """TensorRT-RTX's runtime config, with the runtime cache (JIT kernels) loaded when there is one.

        ``IRuntimeCache.deserialize`` returns False (it does not raise) for a cache from another GPU, driver or
        TensorRT-RTX version, or a corrupt one: it is then left empty, rebuilt and overwritten on close.
        """
        cfg = self._engine.create_runtime_config()
        if runtime_cache is None:
            return cfg
        cc = self.gpu.compute_capability.replace(".", "")
        path = self.path.with_name(f"{self.path.name}.sm{cc}.rtcache") if runtime_cache == "auto" else Path(runtime_cache)
        cache = cfg.create_runtime_cache()
        if path.is_file():
            try:
                loaded = bool(cache.deserialize(path.read_bytes()))
                why = "made for another GPU, driver or TensorRT-RTX version, or corrupt"
            except Exception as exc:  # noqa: BLE001 - a stale cache only costs JIT time
                loaded, why = False, f"{type(exc).__name__}: {exc}"
            if not loaded:
                LOG.warning("%s: runtime cache ignored (%s); kernels are compiled again and the cache rewritten",
                            path, why)
        cfg.set_runtime_cache(cache)
        self._runtime_cache, self._runtime_cache_path = cache, path
        return cfg

    def _alloc(self) -> None:
        assert self._cuda is not None
        n, c, h, w = self.profile.max
        s = self.info.scale
        self._in_bytes = n * c * h * w * self._in_dtype.itemsize
        self._out_bytes = n * self.info.out_channels * (h * s) * (w * s) * self._out_dtype.itemsize
        self._d_in = self._track(self._cuda.malloc(self._in_bytes), False)
        self._d_out = self._track(self._cuda.malloc(self._out_bytes), False)
        self._h_in, self._h_in_arr = self._cuda.malloc_host(self._in_bytes)
        self._track(self._h_in, True)
        self._h_out, self._h_out_arr = self._cuda.malloc_host(self._out_bytes)
        self._track(self._h_out, True)
        self._context.set_tensor_address(self._in, self._d_in)
        self._context.set_tensor_address(self._out, self._d_out)

    def _track(self, ptr: int, host: bool) -> int:
        self._bufs.append((ptr, host))
        return ptr

    # ------------------------------------------------------------------ run
    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a float32 ``(N, C, h, w)`` RGB batch in [0, 1] (inside the engine's profile).

        Returns:
            A new float32 ``(N, C_out, h*scale, w*scale)`` array.

        Raises:
            ShapeOutsideProfileError: the batch is outside the engine's profile (names the limit and the fix).
            OutOfMemory: the GPU ran out of memory.
            SrError: the backend is closed, a bad batch, or TensorRT failed.
        """
        x = check_batch(batch, self.info, str(self.path))
        self.profile.check(x.shape, self.path)
        x = np.ascontiguousarray(x, dtype=self._in_dtype)
        with self._lock:
            if self._closed or self._cuda is None:
                raise SrError("the backend is closed", "", self.path)
            with self._cuda.activate():
                out_shape, out_bytes = self._set_shape(x.shape)
                self._h_in_arr[: x.nbytes] = x.reshape(-1).view(np.uint8)
                self._enqueue_and_wait(x.nbytes, out_bytes, x.shape)
                y = self._h_out_arr[:out_bytes].view(self._out_dtype).reshape(out_shape)
                return y.astype(np.float32, copy=True)  # a new, caller-owned array

    def _set_shape(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
        """Set the input shape; the output shape and its byte size (checked against the output buffer)."""
        if not self._context.set_input_shape(self._in, tuple(shape)):
            raise SrError(f"TensorRT rejected input shape {shape}", REBUILD, self.path)
        out_shape = tuple(int(d) for d in self._context.get_tensor_shape(self._out))
        out_bytes = math.prod(out_shape) * self._out_dtype.itemsize
        if any(d < 0 for d in out_shape) or out_bytes > self._out_bytes:
            raise SrError(f"unexpected output shape {out_shape}", REBUILD, self.path)
        return out_shape, out_bytes

    def _enqueue_and_wait(self, in_bytes: int, out_bytes: int, shape: tuple[int, ...]) -> None:
        """Queue input copy, inference and output copy on the stream, then wait for the stream.

        The stream is synchronised also when a step fails (or is interrupted) after the input copy was queued:
        that copy reads the pinned input buffer, which the next run overwrites.

        Raises:
            OutOfMemory, SrError: the first failure (binding exceptions become :func:`run_error`).
        """
        cuda = self._cuda
        assert cuda is not None
        first: BaseException | None = None
        try:
            cuda.htod(self._d_in, self._h_in, in_bytes)
            if not self._context.execute_async_v3(cuda.stream_handle):
                raise SrError("TensorRT execution failed", EXEC_FAILED, self.path)
            cuda.dtoh(self._h_out, self._d_out, out_bytes)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the stream is idle
            first = exc
        try:
            cuda.sync()
        except Exception as exc:  # noqa: BLE001
            first = first or exc
        if first is None:
            return
        if isinstance(first, SrError) or not isinstance(first, Exception):
            raise first
        raise run_error(first, "TensorRT", shape, self.path) from None

    # ------------------------------------------------------------------ protocol
    @property
    def max_shape(self) -> Shape:
        """The profile's largest ``(N, C, H, W)``."""
        return self.profile.max

    @property
    def window_shapes(self) -> WindowShapes:
        """``same``: the engine is tuned for one full window shape (``opt == max``)."""
        return "same"

    def free_memory(self) -> int | None:
        """Free bytes on the engine's GPU (``cudaMemGetInfo``); None when closed or the query fails."""
        with self._lock:
            if self._cuda is None or self._closed:
                return None
            try:
                with self._cuda.activate():
                    return self._cuda.mem_get_info()[0]
            except SrError:
                return None

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        """Wait for the stream, save the runtime cache (TensorRT-RTX), free buffers, stream, context and engine.

        Idempotent, and safe from any thread (it takes the run lock and makes the context current).
        """
        with self._lock:
            cuda, self._cuda = self._cuda, None
            self._closed = True
            if cuda is None:
                return
            with contextlib.ExitStack() as active:
                with contextlib.suppress(SrError):  # a broken device: free what can be freed anyway
                    active.enter_context(cuda.activate())
                with contextlib.suppress(SrError):
                    cuda.sync()
                self._save_runtime_cache()
                for ptr, host in self._bufs:
                    cuda.free(ptr, host)
                self._bufs = []
                for attr in ("_context", "_runtime_config", "_runtime_cache", "_engine", "_runtime"):
                    if hasattr(self, attr):
                        setattr(self, attr, None)
                cuda.close()

    def _save_runtime_cache(self) -> None:
        cache, path = self._runtime_cache, self._runtime_cache_path
        if cache is None or path is None:
            return
        try:
            atomic_write_bytes(path, bytes(cache.serialize()))
        except OSError as exc:
            LOG.warning("%s: runtime cache not saved (%s)", path, exc)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass
