"""TensorRT / TensorRT-RTX backend: a serialized engine plus its JSON sidecar, run with name-based I/O.

Before the engine is deserialised, its sidecar is checked against what is running: TensorRT flavour and exact
version, and the GPU's compute capability against the engine's targets
(:func:`~sr_runtime.backends.trt.sidecar.check_compatible`). A mismatch is an
:class:`~sr_runtime.errors.EngineMismatchError` telling the user to rebuild with sr-export, never a crash
inside TensorRT. Device memory and the stream come from :class:`~sr_runtime.backends.trt.cuda.Cuda`; host
buffers are pinned and sized once for the profile's largest shapes.

TensorRT-RTX compiles kernels for the GPU at first run (JIT); they are kept in a runtime cache file next to
the engine (``<engine>.sm<cc>.rtcache``), loaded on open and saved on close.
"""

from __future__ import annotations

import math
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from sr_runtime.backends.base import BackendBase, Shape, check_batch, run_error
from sr_runtime.backends.trt.cuda import Cuda, current_gpu
from sr_runtime.backends.trt.flavor import TrtFlavor, TrtMissingError, load_flavor
from sr_runtime.backends.trt.profile import ShapeProfile
from sr_runtime.backends.trt.sidecar import REBUILD, check_compatible, read_sidecar
from sr_runtime.errors import EngineMismatchError, MissingExtraError, ModelFileError, OutOfMemory, SrError
from sr_runtime.info import ModelInfo
from sr_runtime.tiling import WindowShapes


def _load_module(flavor: str) -> TrtFlavor:
    try:
        return load_flavor(flavor)  # type: ignore[arg-type]
    except TrtMissingError:
        extra = "trt-rtx" if flavor == "rtx" else "trt"
        raise MissingExtraError("tensorrt_rtx" if flavor == "rtx" else "tensorrt", extra,
                                "running this TensorRT engine") from None


# --------------------------------------------------------------------------------------------- backend
class TrtBackend(BackendBase):
    """A TensorRT or TensorRT-RTX engine written by sr-export (``.engine`` + ``.engine.json``).

    A :class:`~sr_runtime.backends.base.Backend` whose largest input is its profile's ``max``, that is given one
    window shape per run (``same``: the engine is tuned for full windows) and reports free GPU memory.

    Args:
        path: the engine file.
        device: CUDA device index.
        runtime_cache: TensorRT-RTX runtime-cache file; ``"auto"`` = ``<engine>.sm<cc>.rtcache``; None: none.

    Raises:
        ModelFileError: missing engine or sidecar, or an engine TensorRT cannot load.
        MissingExtraError: the engine's TensorRT flavour or cuda-python is not installed.
        EngineMismatchError: built for another TensorRT version or GPU.
        OutOfMemory: not enough device memory for the engine or its buffers.
        SrError: no CUDA device.
    """

    def __init__(self, path: str | Path, device: int = 0, runtime_cache: str | Path | None = "auto") -> None:
        self.path: Path = Path(path)
        self._closed = True
        if not self.path.is_file():
            raise ModelFileError("engine file not found", "Check the path.", self.path)
        self.sidecar = read_sidecar(self.path)
        self.info: ModelInfo = ModelInfo.from_dict(self.sidecar["model"], self.path)
        self.profile = ShapeProfile.from_dict(self.sidecar["profile"], self.path)
        self._fl = _load_module(str(self.sidecar["flavor"]))
        gpu = self.gpu = check_compatible(self.sidecar, self._fl, current_gpu(device), self.path)
        self.provider: str = f"{self._fl.label} on {gpu.name} (sm {gpu.compute_capability})"
        trt = self._fl.trt
        self._lock = threading.Lock()
        self._cuda: Cuda | None = Cuda(device)
        self._bufs: list[tuple[int, bool]] = []
        self._closed = False
        try:
            self._open_engine(trt, runtime_cache)
            self._alloc()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _open_engine(self, trt: Any, runtime_cache: str | Path | None) -> None:
        blob = self.path.read_bytes()
        self._logger = self._fl.logger()
        self._runtime = trt.Runtime(self._logger)
        if hasattr(self._runtime, "get_engine_validity"):
            try:
                validity, diag = self._runtime.get_engine_validity(blob)
            except Exception:  # noqa: BLE001 - an older binding: skip the early check
                validity = None
            if validity is not None and validity == trt.EngineValidity.INVALID:
                flags = [n for n, v in trt.EngineInvalidityDiagnostics.__members__.items() if int(diag) & int(v)]
                if "INSUFFICIENT_GPU_MEMORY" in flags:
                    raise OutOfMemory("not enough GPU memory for the engine", "Close other GPU programs.", self.path)
                raise EngineMismatchError(f"{self._fl.label} reports the engine invalid ({', '.join(flags) or diag})",
                                          REBUILD, self.path)
        self._engine = self._runtime.deserialize_cuda_engine(blob)
        if self._engine is None:
            raise ModelFileError(f"{self._fl.label} could not deserialize the engine", REBUILD, self.path)
        self._runtime_cache_path: Path | None = None
        self._runtime_cache = None
        if self._fl.name == "rtx":
            cfg = self._engine.create_runtime_config()
            if runtime_cache is not None:
                cache_path = (self.path.with_name(f"{self.path.name}.sm{self.gpu.compute_capability.replace('.', '')}.rtcache")
                              if runtime_cache == "auto" else Path(runtime_cache))
                cache = cfg.create_runtime_cache()
                if cache_path.is_file():
                    try:
                        cache.deserialize(cache_path.read_bytes())
                    except Exception as exc:  # noqa: BLE001 - a stale cache only costs JIT time
                        warnings.warn(f"{cache_path}: runtime cache ignored ({exc})", stacklevel=2)
                cfg.set_runtime_cache(cache)
                self._runtime_cache, self._runtime_cache_path = cache, cache_path
            self._runtime_config = cfg
            self._context = self._engine.create_execution_context(cfg)
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

    def _alloc(self) -> None:
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
        if self._closed:
            raise SrError("the backend is closed", "", self.path)
        x = check_batch(batch, self.info, str(self.path))
        self.profile.check(x.shape, self.path)
        x = np.ascontiguousarray(x, dtype=self._in_dtype)
        with self._lock:
            if not self._context.set_input_shape(self._in, tuple(x.shape)):
                raise SrError(f"TensorRT rejected input shape {x.shape}", REBUILD, self.path)
            out_shape = tuple(int(d) for d in self._context.get_tensor_shape(self._out))
            out_bytes = math.prod(out_shape) * self._out_dtype.itemsize
            if any(d < 0 for d in out_shape) or out_bytes > self._out_bytes:
                raise SrError(f"unexpected output shape {out_shape}", REBUILD, self.path)
            self._h_in_arr[: x.nbytes] = x.reshape(-1).view(np.uint8)
            try:
                self._cuda.htod(self._d_in, self._h_in, x.nbytes)
                if not self._context.execute_async_v3(self._cuda.stream_handle):
                    raise SrError("TensorRT execution failed", "Re-run with --debug; check the GPU with nvidia-smi.",
                                  self.path)
                self._cuda.dtoh(self._h_out, self._d_out, out_bytes)
                self._cuda.sync()
            except SrError:
                raise
            except Exception as exc:  # noqa: BLE001 - binding errors carry the CUDA message
                raise run_error(exc, "TensorRT", x.shape, self.path) from None
            y = self._h_out_arr[:out_bytes].view(self._out_dtype).reshape(out_shape)
            return y.astype(np.float32, copy=True)  # a new, caller-owned array

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
        if self._cuda is None or self._closed:
            return None
        try:
            return self._cuda.mem_get_info()[0]
        except SrError:
            return None

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        """Save the runtime cache (TensorRT-RTX), free buffers, stream, context and engine. Idempotent."""
        if self._closed and not getattr(self, "_bufs", None):
            return
        self._closed = True
        cache, cache_path = getattr(self, "_runtime_cache", None), getattr(self, "_runtime_cache_path", None)
        if cache is not None and cache_path is not None:
            try:
                from sr_runtime.fileio import atomic_write_bytes

                atomic_write_bytes(cache_path, bytes(cache.serialize()))
            except OSError as exc:
                warnings.warn(f"{cache_path}: runtime cache not saved ({exc})", stacklevel=2)
        cuda = getattr(self, "_cuda", None)
        if cuda is not None:
            try:
                cuda.sync()
            except SrError:
                pass
            for ptr, host in self._bufs:
                cuda.free(ptr, host)
        self._bufs = []
        for attr in ("_context", "_runtime_config", "_runtime_cache", "_engine", "_runtime"):
            if hasattr(self, attr):
                setattr(self, attr, None)
        if cuda is not None:
            cuda.close()
            self._cuda = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass
