"""CUDA for TensorRT: which GPU is here (:func:`current_gpu`) and the few runtime calls an engine needs
(:class:`Cuda`: device buffers, pinned host buffers, a stream, copies, free memory).

cuda-python (``cuda.bindings``) is used when installed, pycuda otherwise; both are imported on use only.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from sr_runtime.errors import MissingExtraError, OutOfMemory, SrError


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


class Cuda:
    """The few CUDA calls the TensorRT backend needs, over cuda-python (``cuda.bindings``) or pycuda.

    Args:
        device: CUDA device index, made current (a stream is created on it).

    Raises:
        MissingExtraError: neither cuda-python nor pycuda is installed.
        SrError: the device cannot be selected.
    """

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

    def mem_get_info(self) -> tuple[int, int]:
        """``(free, total)`` bytes of the current device (``cudaMemGetInfo``)."""
        if self.kind == "cuda-python":
            ret = self.rt.cudaMemGetInfo()  # (err, free, total)
            self._check(ret[0], "cudaMemGetInfo")
            return int(ret[1]), int(ret[2])
        free, total = self.drv.mem_get_info()
        return int(free), int(total)

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
