"""TensorRT / TensorRT-RTX backend: a serialized engine plus its JSON sidecar, run with name-based I/O.

Before the engine is deserialised, its sidecar is checked against what is running: TensorRT flavour and exact
version, and the GPU's compute capability against the engine's targets. A mismatch is an
:class:`~sr_runtime.errors.EngineMismatchError` telling the user to rebuild with sr-export, never a crash
inside TensorRT. Device memory and the stream come from cuda-python (``cuda.bindings``), or pycuda when
cuda-python is missing; host buffers are pinned and sized once for the profile's largest shapes.

TensorRT-RTX compiles kernels for the GPU at first run (JIT); they are kept in a runtime cache file next to
the engine (``<engine>.sm<cc>.rtcache``), loaded on open and saved on close.
"""

from __future__ import annotations

import ctypes
import math
import threading
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sr_runtime.backends.base import check_batch, is_oom_message
from sr_runtime.errors import EngineMismatchError, MissingExtraError, ModelFileError, OutOfMemory, SrError
from sr_runtime.info import ModelInfo
from sr_runtime.trt_build import (
    GpuInfo,
    ShapeProfile,
    TrtFlavor,
    TrtMissingError,
    current_gpu,
    load_flavor,
    read_sidecar,
)

REBUILD = "Rebuild it for this machine with sr-export --trt (or let sr-run build one from the .onnx)."


# --------------------------------------------------------------------------------------------- CUDA
class _Cuda:
    """The few CUDA calls the backend needs, over cuda-python (``cuda.bindings``) or pycuda."""

    def __init__(self, device: int) -> None:
        self.kind: Literal["cuda-python", "pycuda"]
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            cudart = None
        if cudart is not None:
            self.kind, self.rt = "cuda-python", cudart
            self._check(cudart.cudaSetDevice(device), "cudaSetDevice")
            self.stream = self._check(cudart.cudaStreamCreate(), "cudaStreamCreate")
            return
        try:
            import pycuda.driver as drv
        except ImportError:
            raise MissingExtraError("cuda-python", "trt", "running TensorRT engines") from None
        self.kind, self.drv = "pycuda", drv
        drv.init()
        self._ctx = drv.Device(device).retain_primary_context()
        self._ctx.push()
        self.stream = drv.Stream()
        self._keep: dict[int, Any] = {}

    def _check(self, ret: Any, what: str) -> Any:
        err = ret[0] if isinstance(ret, tuple) else ret
        if int(err) != 0:
            name = getattr(err, "name", str(err))
            if int(err) == int(self.rt.cudaError_t.cudaErrorMemoryAllocation):
                raise OutOfMemory(f"CUDA out of memory in {what}", "Use a smaller --tile or --batch.")
            raise SrError(f"CUDA error {name} in {what}", "Check the NVIDIA driver (nvidia-smi).")
        return ret[1] if isinstance(ret, tuple) and len(ret) > 1 else None

    @property
    def stream_handle(self) -> int:
        return int(self.stream) if self.kind == "cuda-python" else int(self.stream.handle)

    def malloc(self, nbytes: int) -> int:
        if self.kind == "cuda-python":
            return int(self._check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))
        try:
            buf = self.drv.mem_alloc(nbytes)
        except self.drv.MemoryError:
            raise OutOfMemory("CUDA out of memory allocating buffers", "Use a smaller --tile or --batch.") from None
        self._keep[int(buf)] = buf
        return int(buf)

    def malloc_host(self, nbytes: int) -> tuple[int, np.ndarray]:
        """Pinned host memory as (address, uint8 array view)."""
        if self.kind == "cuda-python":
            ptr = int(self._check(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
            arr = np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))
            return ptr, arr
        arr = self.drv.pagelocked_empty(nbytes, np.uint8)
        ptr = int(arr.ctypes.data)
        self._keep[ptr] = arr
        return ptr, arr

    def htod(self, dst: int, src: int, nbytes: int) -> None:
        if self.kind == "cuda-python":
            kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, self.stream), "cudaMemcpyAsync")
        else:
            self.drv.memcpy_htod_async(dst, self._keep[src][:nbytes], self.stream)

    def dtoh(self, dst: int, src: int, nbytes: int) -> None:
        if self.kind == "cuda-python":
            kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
            self._check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, self.stream), "cudaMemcpyAsync")
        else:
            self.drv.memcpy_dtoh_async(self._keep[dst][:nbytes], src, self.stream)

    def sync(self) -> None:
        if self.kind == "cuda-python":
            self._check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        else:
            self.stream.synchronize()

    def free(self, ptr: int, host: bool = False) -> None:
        if self.kind == "cuda-python":
            (self.rt.cudaFreeHost if host else self.rt.cudaFree)(ptr)
        else:
            buf = self._keep.pop(ptr, None)
            if buf is not None and not host:
                buf.free()

    def close(self) -> None:
        if self.kind == "cuda-python":
            self.rt.cudaStreamDestroy(self.stream)
        else:
            self._ctx.pop()


# --------------------------------------------------------------------------------------------- checks
def check_compatible(sidecar: dict[str, Any], fl: TrtFlavor, gpu: GpuInfo | None, source: str | Path) -> GpuInfo:
    """Refuse an engine built for another TensorRT flavour/version or GPU, before TensorRT sees it.

    Returns:
        The GPU, known to match.

    Raises:
        EngineMismatchError: flavour, version or compute capability differ (the fix: rebuild with sr-export).
        SrError: no CUDA device.
    """
    built_label = f"{'TensorRT-RTX' if sidecar['flavor'] == 'rtx' else 'TensorRT'} {sidecar['trt_version']}"
    if sidecar["flavor"] != fl.name or str(sidecar["trt_version"]) != fl.version:
        raise EngineMismatchError(f"the engine was built with {built_label}, this is {fl.label}", REBUILD, source)
    if gpu is None:
        raise SrError("no CUDA device found to run the TensorRT engine",
                      "TensorRT needs an NVIDIA GPU; run the .onnx with --backend ort instead.", source)
    targets = [str(c) for c in sidecar["built_for"].get("compute_capabilities", [])]
    if gpu.compute_capability not in targets:
        raise EngineMismatchError(
            f"the engine was built for compute capability {', '.join(targets) or '?'}; "
            f"this GPU ({gpu.name}) is {gpu.compute_capability}", REBUILD, source)
    return gpu


def _load_module(flavor: str) -> TrtFlavor:
    try:
        return load_flavor(flavor)  # type: ignore[arg-type]
    except TrtMissingError:
        extra = "trt-rtx" if flavor == "rtx" else "trt"
        raise MissingExtraError("tensorrt_rtx" if flavor == "rtx" else "tensorrt", extra,
                                "running this TensorRT engine") from None


# --------------------------------------------------------------------------------------------- backend
class TrtBackend:
    """A TensorRT or TensorRT-RTX engine written by sr-export (``.engine`` + ``.engine.json``).

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
        self.path = Path(path)
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
        self._cuda = _Cuda(device)
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
                text = " ".join(str(exc).split())
                if is_oom_message(text):
                    raise OutOfMemory(f"out of memory running a {'x'.join(map(str, x.shape))} batch",
                                      "Use a smaller --tile or --batch.", self.path) from None
                raise SrError(f"TensorRT failed ({text[:300]})", "Re-run with --debug.", self.path) from None
            y = self._h_out_arr[:out_bytes].view(self._out_dtype).reshape(out_shape)
            return y.astype(np.float32, copy=True)  # a new, caller-owned array

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

    def __enter__(self) -> TrtBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass

    def __repr__(self) -> str:
        return f"TrtBackend({str(self.path)!r}, provider={self.provider!r}, arch={self.info.arch}, x{self.info.scale})"
