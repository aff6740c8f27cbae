"""CUDA for TensorRT: which GPU is here (:func:`probe_gpu`, :func:`current_gpu`) and the few runtime calls an
engine needs (:func:`open_cuda`: device buffers, pinned host buffers, a stream, copies, free memory).

cuda-python is used when installed (``cuda.bindings.runtime``, or the ``cuda.cudart`` layout of cuda-python
< 12.6: both have the same functions, returning ``(cudaError_t, value...)`` tuples), pycuda otherwise; both are
imported on use only.

Thread model: a :class:`CudaRuntime`/:class:`PyCuda` object owns one stream on one device. Its caller (the
TensorRT backend) serialises every use with a lock and wraps each one in :meth:`~CudaRuntime.activate`, which
makes the device's primary context current on the calling thread (``cudaSetDevice`` is per thread; pycuda
keeps a context stack per thread). So one backend may be used from any thread, one call at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sr_runtime.errors import MissingExtraError, OutOfMemory, SrError

CUDA_SUCCESS = 0
INSUFFICIENT_DRIVER = 35
"""``cudaErrorInsufficientDriver``: the driver is older than the CUDA runtime (or there is no driver)."""
CUDA13_DRIVER = 580
"""Oldest Linux driver branch for CUDA 13.x (CUDA minor-version compatibility table); 525 for CUDA 12.x."""
NVIDIA_SMI_HINT = "Check the NVIDIA driver and the GPU with nvidia-smi."


@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device an engine is built for or runs on."""

    name: str
    """Device name, e.g. ``NVIDIA GeForce RTX 4090``."""
    compute_capability: str
    """``major.minor``, e.g. ``8.9``."""
    total_memory: int = 0
    """Device memory in bytes."""


@dataclass(frozen=True)
class GpuProbe:
    """What :func:`probe_gpu` found: the GPU, or why there is none and what to do."""

    gpu: GpuInfo | None
    """The device, or None."""
    reason: str = ""
    """Why ``gpu`` is None (empty when found), e.g. ``no CUDA device``."""
    hint: str = ""
    """The fix for ``reason``."""


def import_cudart() -> Any | None:
    """The CUDA runtime bindings of cuda-python: ``cuda.bindings.runtime`` (>= 12.6) or ``cuda.cudart``
    (12.0-12.5); None when neither imports."""
    try:
        from cuda.bindings import runtime

        return runtime
    except Exception:  # noqa: BLE001 - ImportError, or a broken install
        pass
    try:
        from cuda import cudart  # type: ignore[attr-defined]  # cuda-python < 12.6 layout

        return cudart
    except Exception:  # noqa: BLE001
        return None


def _cuda_version(v: int) -> str:
    """``12040`` -> ``12.4``."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("cuda-python")
    except Exception:  # noqa: BLE001 - only used in a message
        return "?"


def driver_problem(cudart: Any) -> GpuProbe:
    """Explain ``cudaErrorInsufficientDriver``: no driver at all, or one older than the bindings' runtime.

    cuda-python 13 links the CUDA 13 runtime, which needs a driver of the 580 branch or later; on an older
    driver every call returns error 35 and the GPU would look absent.
    """
    try:
        driver = int(cudart.cudaDriverGetVersion()[1] or 0)
        runtime = int(cudart.cudaRuntimeGetVersion()[1] or 0)
    except Exception:  # noqa: BLE001 - the message degrades, the probe does not fail
        driver, runtime = 0, 0
    if driver == 0:
        return GpuProbe(None, "no NVIDIA driver found (no CUDA device)",
                        "TensorRT needs an NVIDIA GPU and its driver; run the .onnx with --backend ort instead.")
    pkg = _package_version()
    if runtime // 1000 >= 13 > driver // 1000:
        return GpuProbe(
            None,
            f"the NVIDIA driver (CUDA {_cuda_version(driver)}) is too old for cuda-python {pkg} "
            f"(CUDA {_cuda_version(runtime)} needs driver >= {CUDA13_DRIVER})",
            "Install the CUDA 12 builds: pip install 'cuda-python<13' tensorrt-cu12 (or tensorrt-rtx-cu12), "
            f"or update the driver to {CUDA13_DRIVER} or later.")
    return GpuProbe(
        None,
        f"the NVIDIA driver (CUDA {_cuda_version(driver)}) is older than the CUDA runtime of cuda-python {pkg} "
        f"(CUDA {_cuda_version(runtime)})",
        "Update the NVIDIA driver, or install a cuda-python matching it (pip install 'cuda-python<13' for CUDA 12).")


def probe_gpu(device: int = 0) -> GpuProbe:
    """Describe CUDA device ``device`` through cuda-python, or say why there is none.

    Never raises: a missing cuda-python, driver or device, or a broken install, is a :class:`GpuProbe` with
    ``gpu=None`` and a reason.
    """
    cudart = import_cudart()
    if cudart is None:
        return GpuProbe(None, "cuda-python is not installed", "pip install 'sr-deploy[trt]' (or [trt-rtx]).")
    try:
        err, count = cudart.cudaGetDeviceCount()
        if int(err) == INSUFFICIENT_DRIVER:
            return driver_problem(cudart)
        if int(err) != CUDA_SUCCESS or not count:
            return GpuProbe(None, f"no CUDA device ({getattr(err, 'name', err)})", NVIDIA_SMI_HINT)
        if device >= count:
            return GpuProbe(None, f"no CUDA device {device} (this machine has {count})", "Pick another --gpu-id.")
        err, prop = cudart.cudaGetDeviceProperties(device)
        if int(err) != CUDA_SUCCESS:
            return GpuProbe(None, f"cannot read CUDA device {device} ({getattr(err, 'name', err)})", NVIDIA_SMI_HINT)
    except Exception as exc:  # noqa: BLE001 - a broken driver install reads as "no GPU", with the reason
        return GpuProbe(None, f"CUDA is not usable ({type(exc).__name__}: {exc})", NVIDIA_SMI_HINT)
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    return GpuProbe(GpuInfo(name.rstrip("\x00").strip(), f"{prop.major}.{prop.minor}", int(prop.totalGlobalMem)))


def current_gpu(device: int = 0) -> GpuInfo | None:
    """CUDA device ``device`` through cuda-python, or None (see :func:`probe_gpu` for the reason)."""
    return probe_gpu(device).gpu


def open_cuda(device: int) -> CudaRuntime | PyCuda:
    """The CUDA calls for one device and stream: cuda-python when installed, else pycuda.

    Raises:
        MissingExtraError: neither cuda-python nor pycuda is installed.
        SrError: the device cannot be selected (the message explains an old driver).
        OutOfMemory: no memory for the stream.
    """
    cudart = import_cudart()
    if cudart is not None:
        return CudaRuntime(cudart, device)
    try:
        import pycuda.driver as drv
    except ImportError:
        raise MissingExtraError("cuda-python", "trt", "running TensorRT engines") from None
    return PyCuda(drv, device)


class CudaRuntime:
    """The CUDA runtime API through cuda-python (the ``cuda.bindings.runtime`` or ``cuda.cudart`` module).

    Every call returns ``(cudaError_t, value...)``; :meth:`check` turns an error into an
    :class:`~sr_runtime.errors.SrError` (:class:`~sr_runtime.errors.OutOfMemory` for allocation failures).

    Args:
        rt: the bindings module.
        device: CUDA device index, made current on each :meth:`activate`; the stream is created on it.
    """

    kind = "cuda-python"

    def __init__(self, rt: Any, device: int) -> None:
        self.rt, self.device = rt, device
        ret = rt.cudaSetDevice(device)
        if int(ret[0]) == INSUFFICIENT_DRIVER:
            p = driver_problem(rt)
            raise SrError(p.reason, p.hint)
        self.check(ret, "cudaSetDevice")
        self.stream = self.check(rt.cudaStreamCreate(), "cudaStreamCreate")

    def check(self, ret: tuple[Any, ...], what: str) -> Any:
        """The value of a ``(err, value)`` (or ``(err,)``) return, or an error naming the call.

        Raises:
            OutOfMemory: ``cudaErrorMemoryAllocation``.
            SrError: any other error code.
        """
        err = ret[0]
        if int(err) != CUDA_SUCCESS:
            if int(err) == int(self.rt.cudaError_t.cudaErrorMemoryAllocation):
                raise OutOfMemory(f"CUDA out of memory in {what}", "Use a smaller --tile or --batch.")
            raise SrError(f"CUDA error {getattr(err, 'name', err)} in {what}", NVIDIA_SMI_HINT)
        return ret[1] if len(ret) > 1 else None

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Make the device current on this thread (cheap: the primary context already exists)."""
        self.check(self.rt.cudaSetDevice(self.device), "cudaSetDevice")
        yield

    @property
    def stream_handle(self) -> int:
        """The stream as the integer TensorRT's ``execute_async_v3`` takes."""
        return int(self.stream)

    def malloc(self, nbytes: int) -> int:
        """Device memory of ``nbytes``; its address."""
        return int(self.check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))

    def malloc_host(self, nbytes: int) -> tuple[int, np.ndarray]:
        """Pinned host memory as ``(address, uint8 array view)``; the view is valid until :meth:`free`."""
        ptr = int(self.check(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        return ptr, np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))

    def htod(self, dst: int, src: int, nbytes: int) -> None:
        """Queue a pinned-host to device copy on the stream (returns before it runs)."""
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, self.stream), "cudaMemcpyAsync")

    def dtoh(self, dst: int, src: int, nbytes: int) -> None:
        """Queue a device to pinned-host copy on the stream (returns before it runs)."""
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, self.stream), "cudaMemcpyAsync")

    def sync(self) -> None:
        """Wait until everything queued on the stream has run."""
        self.check(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def mem_get_info(self) -> tuple[int, int]:
        """``(free, total)`` bytes of the current device (``cudaMemGetInfo``)."""
        ret = self.rt.cudaMemGetInfo()  # (err, free, total)
        self.check(ret[:1], "cudaMemGetInfo")
        return int(ret[1]), int(ret[2])

    def free(self, ptr: int, host: bool = False) -> None:
        """Free device (or pinned host) memory; errors are ignored (teardown)."""
        (self.rt.cudaFreeHost if host else self.rt.cudaFree)(ptr)

    def close(self) -> None:
        """Destroy the stream (after :meth:`sync`)."""
        self.rt.cudaStreamDestroy(self.stream)


class PyCuda:
    """The same calls through pycuda, on the device's primary context (pushed and popped per use).

    Args:
        drv: ``pycuda.driver``.
        device: CUDA device index.
    """

    kind = "pycuda"

    def __init__(self, drv: Any, device: int) -> None:
        self.drv, self.device = drv, device
        drv.init()
        self._ctx = drv.Device(device).retain_primary_context()
        self._keep: dict[int, Any] = {}
        with self.activate():
            self.stream = drv.Stream()

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Push the primary context on this thread's context stack for the duration of a call."""
        self._ctx.push()
        try:
            yield
        finally:
            self.drv.Context.pop()

    @property
    def stream_handle(self) -> int:
        """The stream as the integer TensorRT's ``execute_async_v3`` takes."""
        return int(self.stream.handle)

    def malloc(self, nbytes: int) -> int:
        """Device memory of ``nbytes``; its address (the allocation is kept until :meth:`free`)."""
        try:
            buf = self.drv.mem_alloc(nbytes)
        except self.drv.MemoryError:
            raise OutOfMemory("CUDA out of memory allocating buffers", "Use a smaller --tile or --batch.") from None
        self._keep[int(buf)] = buf
        return int(buf)

    def malloc_host(self, nbytes: int) -> tuple[int, np.ndarray]:
        """Pinned host memory as ``(address, uint8 array)``."""
        arr = self.drv.pagelocked_empty(nbytes, np.uint8)
        ptr = int(arr.ctypes.data)
        self._keep[ptr] = arr
        return ptr, arr

    def htod(self, dst: int, src: int, nbytes: int) -> None:
        """Queue a pinned-host to device copy on the stream."""
        self.drv.memcpy_htod_async(dst, self._keep[src][:nbytes], self.stream)

    def dtoh(self, dst: int, src: int, nbytes: int) -> None:
        """Queue a device to pinned-host copy on the stream."""
        self.drv.memcpy_dtoh_async(self._keep[dst][:nbytes], src, self.stream)

    def sync(self) -> None:
        """Wait until everything queued on the stream has run."""
        self.stream.synchronize()

    def mem_get_info(self) -> tuple[int, int]:
        """``(free, total)`` bytes of the device."""
        free, total = self.drv.mem_get_info()
        return int(free), int(total)

    def free(self, ptr: int, host: bool = False) -> None:
        """Free a buffer from :meth:`malloc`/:meth:`malloc_host`."""
        buf = self._keep.pop(ptr, None)
        if buf is not None and not host:
            buf.free()

    def close(self) -> None:
        """Drop the stream and the buffers (after :meth:`free`); pycuda releases the primary context when its
        last reference goes."""
        self.stream = None
        self._keep.clear()
