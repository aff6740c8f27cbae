"""The TensorRT backend's CUDA code against a real driver, without TensorRT (for ``benchmarks/gpu.py``).

A GPU machine without TensorRT can still run everything in :class:`~sr_runtime.backends.trt.TrtBackend` except
TensorRT itself: cuda-python's device and pinned buffers, the async copies, the stream, the per-call context
activation, the error-path synchronisation and the teardown. Here TensorRT is replaced by :class:`TorchTrt`, a
stand-in module whose execution context runs the torch model *on the backend's own stream*
(``torch.cuda.ExternalStream``) reading and writing the backend's ``cudaMalloc`` buffers (wrapped through
``__cuda_array_interface__``). Its engine file is a few marker bytes with a real sidecar.

Checks (each returns a dict with ``status`` PASS/FAIL/SKIP, figures and a note):
- :func:`check_cuda`: pinned round trip host->device->host through :func:`~sr_runtime.backends.trt.cuda.open_cuda`,
  copy bandwidth, torch- and cupy-allocated device buffers through the same copies, a second thread, and 200
  alloc/free cycles (device memory drift).
- :func:`check_runpath`: ``TrtBackend.run`` against the torch model (max abs, PSNR), 4 threads at once, and
  memory over 200 runs (device free memory, torch allocations, process RSS).
"""

from __future__ import annotations

import enum
import hashlib
import resource
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

MIB = 1 << 20


def status(ok: bool, **fields: Any) -> dict[str, Any]:
    """A check result: ``{"status": "PASS"|"FAIL", **fields}``."""
    return {"status": "PASS" if ok else "FAIL", **fields}


def skipped(reason: object) -> dict[str, Any]:
    """A skipped check, with its reason on one line."""
    return {"status": "SKIP", "note": " ".join(str(reason).split())[:300]}


def rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _CudaArray:
    """A device pointer with ``__cuda_array_interface__`` (v3), so torch/cupy can view it without copying."""

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.__cuda_array_interface__ = {"shape": tuple(shape), "typestr": np.dtype(dtype).str,
                                         "data": (int(ptr), False), "version": 3, "strides": None}


# ------------------------------------------------------------------------------------------ TensorRT stand-in
class TorchTrt:
    """A stand-in for the ``tensorrt`` module: the names the backend uses, with a torch model as the engine."""

    __version__ = "0.0.0-torch-standin"
    model: Any = None
    """The torch module on CUDA run by every context (set by :func:`check_runpath`)."""

    class TensorIOMode(enum.Enum):
        INPUT = 1
        OUTPUT = 2

    class DataType(enum.Enum):
        FLOAT = 0
        HALF = 1

    class ILogger:
        class Severity(enum.Enum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        def __init__(self) -> None:
            pass

    class Logger(ILogger):
        VERBOSE = 4

        def __init__(self, level: int = 2) -> None:
            pass

    @staticmethod
    def nptype(dt: Any) -> type:
        return np.float16 if dt == TorchTrt.DataType.HALF else np.float32

    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, blob: bytes) -> Any:
            return _TorchEngine() if bytes(blob).startswith(b"torch-standin") else None


class _TorchEngine:
    num_io_tensors = 2
    names = ("input", "output")

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> Any:
        return TorchTrt.TensorIOMode.INPUT if name == "input" else TorchTrt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> Any:
        return TorchTrt.DataType.FLOAT

    def create_execution_context(self) -> _TorchContext:
        return _TorchContext()


class _TorchContext:
    def __init__(self) -> None:
        self.addr: dict[str, int] = {}
        self.shape: tuple[int, ...] | None = None

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addr[name] = int(ptr)
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shape = tuple(int(s) for s in shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        assert self.shape is not None
        n, c, h, w = self.shape
        return self.shape if name == "input" else (n, 3, h * 4, w * 4)

    def execute_async_v3(self, stream_handle: int) -> bool:
        import torch

        assert self.shape is not None
        stream = torch.cuda.ExternalStream(stream_handle)
        with torch.cuda.stream(stream), torch.no_grad():
            x = torch.as_tensor(_CudaArray(self.addr["input"], self.shape, np.float32), device="cuda")
            out = torch.as_tensor(_CudaArray(self.addr["output"], self.get_tensor_shape("output"), np.float32),
                                  device="cuda")
            out.copy_(TorchTrt.model(x))
        return True


def standin_engine(folder: Path, gpu: Any, max_shape: tuple[int, int, int, int]) -> Path:
    """Write a stand-in engine file and its real sidecar (flavour ``tensorrt``, this GPU, the profile)."""
    from sr_runtime.backends.trt.sidecar import write_engine
    from sr_runtime.info import ModelInfo

    blob = b"torch-standin engine"
    profile = {"min": [1, 3, 4, 4], "opt": list(max_shape), "max": list(max_shape)}
    info = ModelInfo(arch="SRVGGNetCompact", scale=4, hparams={"num_feat": 64, "num_conv": 16})
    sidecar = {"format": "sr-deploy-trt", "format_version": 1, "flavor": "tensorrt",
               "trt_version": TorchTrt.__version__,
               "built_for": {"compute_capabilities": [gpu.compute_capability], "gpu": gpu.name},
               "profile": profile, "input_name": "input", "output_name": "output", "precision": "float32",
               "io_dtype": "float32", "workspace_mib": None, "onnx_sha256": "",
               "engine_sha256": hashlib.sha256(blob).hexdigest(), "model": info.to_dict()}
    return write_engine(blob, sidecar, folder / "standin.engine")


def open_standin(engine: Path) -> Any:
    """A real ``TrtBackend`` over the stand-in flavour (the one place the real module would be imported)."""
    from sr_runtime.backends.trt import runner
    from sr_runtime.backends.trt.flavor import TrtFlavor

    real = runner._load_module
    runner._load_module = lambda name: TrtFlavor("tensorrt", TorchTrt)  # type: ignore[assignment]
    try:
        return runner.TrtBackend(engine)
    finally:
        runner._load_module = real  # type: ignore[assignment]


# ------------------------------------------------------------------------------------------ checks
def _roundtrip(cuda: Any, nbytes: int) -> tuple[bool, float]:
    """Pinned -> device -> pinned of random bytes on the stream; (equal, GB/s of both copies)."""
    d = cuda.malloc(nbytes)
    h_in, a_in = cuda.malloc_host(nbytes)
    h_out, a_out = cuda.malloc_host(nbytes)
    try:
        a_in[:] = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
        a_out[:] = 0
        t0 = time.perf_counter()
        cuda.htod(d, h_in, nbytes)
        cuda.dtoh(h_out, d, nbytes)
        cuda.sync()
        dt = time.perf_counter() - t0
        return bool(np.array_equal(a_in, a_out)), 2 * nbytes / dt / 1e9
    finally:
        for p, host in ((d, False), (h_in, True), (h_out, True)):
            cuda.free(p, host)


def _foreign_buffer(cuda: Any, lib: str, nbytes: int) -> bool:
    """Copies between our pinned buffers and a device buffer allocated by torch or cupy, on our stream."""
    h, arr = cuda.malloc_host(nbytes)
    try:
        arr[:] = np.arange(nbytes, dtype=np.uint8)
        if lib == "torch":
            import torch

            if not torch.cuda.is_available():
                raise ImportError("torch has no CUDA")
            dev = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
            ptr = dev.data_ptr()
        else:
            import cupy

            dev = cupy.empty(nbytes, dtype=cupy.uint8)
            ptr = dev.data.ptr
        cuda.htod(ptr, h, nbytes)
        cuda.sync()
        seen = dev.cpu().numpy() if lib == "torch" else dev.get()
        dev += 1
        if lib == "torch":
            torch.cuda.synchronize()
        else:
            cupy.cuda.Device().synchronize()
        cuda.dtoh(h, ptr, nbytes)
        cuda.sync()
        return bool(np.array_equal(seen, np.arange(nbytes, dtype=np.uint8))
                    and np.array_equal(arr, (np.arange(nbytes, dtype=np.uint16) + 1).astype(np.uint8)))
    finally:
        cuda.free(h, True)


def check_cuda(cycles: int = 200) -> dict[str, Any]:
    """Our ``CudaRuntime`` (cuda-python) against the real driver; see the module docstring."""
    from sr_runtime.backends.trt.cuda import import_cudart, open_cuda

    if import_cudart() is None:
        return skipped("cuda-python (cuda.bindings) is not installed")
    cuda = open_cuda(0)
    out: dict[str, Any] = {"kind": cuda.kind}
    try:
        with cuda.activate():
            ok, gbps = _roundtrip(cuda, 64 * MIB)
            out.update(roundtrip_64mib=ok, copy_gb_s=round(gbps, 2))
            for lib in ("torch", "cupy"):
                try:
                    out[f"{lib}_buffers"] = _foreign_buffer(cuda, lib, 4 * MIB)
                except ImportError as exc:
                    out[f"{lib}_buffers"] = f"skipped ({exc})"
        box: list[bool] = []
        t = threading.Thread(target=lambda: box.append(_threaded_roundtrip(cuda)))
        t.start()
        t.join()
        out["other_thread"] = bool(box and box[0])
        out.update(_alloc_cycles(cuda, cycles))
    finally:
        cuda.sync()
        cuda.close()
    ok = all(v is True or str(v).startswith("skipped") for k, v in out.items()
             if k in ("roundtrip_64mib", "torch_buffers", "cupy_buffers", "other_thread"))
    return status(ok and out["device_drift_mib"] <= 2, **out)


def _threaded_roundtrip(cuda: Any) -> bool:
    with cuda.activate():
        return _roundtrip(cuda, MIB)[0]


def _alloc_cycles(cuda: Any, cycles: int) -> dict[str, Any]:
    with cuda.activate():
        _roundtrip(cuda, 8 * MIB)
        before = cuda.mem_get_info()[0]
        for _ in range(cycles):
            _roundtrip(cuda, 8 * MIB)
        after = cuda.mem_get_info()[0]
    return {"cycles": cycles, "device_drift_mib": round((before - after) / MIB, 2)}


def check_runpath(model: Any, runs: int = 200, side: int = 64) -> dict[str, Any]:
    """``TrtBackend.run`` (real CUDA, TensorRT stood in by torch on the backend's stream) against the model."""
    import tempfile

    import torch

    from sr_runtime.backends.trt.cuda import probe_gpu
    from sr_runtime.compare import max_abs, psnr

    probe = probe_gpu(0)
    if probe.gpu is None:
        return skipped(f"cuda-python finds no GPU: {probe.reason}")
    TorchTrt.model = model
    x = np.random.default_rng(0).random((2, 3, side, side), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x).cuda()).float().cpu().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        be = open_standin(standin_engine(Path(tmp), probe.gpu, (2, 3, side, side)))
        try:
            y = be.run(x)
            out = {"max_abs": max_abs(y, ref), "psnr": round(psnr(y, ref), 2), "provider": be.provider}
            out["threads_equal"] = _threads(be, x, ref)
            out.update(_memory(be, x, runs))
        finally:
            be.close()
    ok = out["max_abs"] <= 1e-5 and out["threads_equal"] and out["device_drift_mib"] <= 2
    return status(ok and out["torch_allocated_drift_mib"] <= 1, **out)


def _threads(be: Any, x: np.ndarray, ref: np.ndarray, n: int = 4, runs: int = 5) -> bool:
    from sr_runtime.compare import max_abs

    results: list[float] = []

    def work() -> None:
        for _ in range(runs):
            results.append(max_abs(be.run(x), ref))

    threads = [threading.Thread(target=work) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(results) == n * runs and max(results) <= 1e-5


def _memory(be: Any, x: np.ndarray, runs: int) -> dict[str, Any]:
    """Device free memory, torch's allocated bytes and process RSS after 10 warm-up runs and after ``runs``."""
    import torch

    for _ in range(10):
        be.run(x)
    torch.cuda.synchronize()
    free0, alloc0, rss0 = be.free_memory(), torch.cuda.memory_allocated(), rss_mib()
    t0 = time.perf_counter()
    for _ in range(runs):
        be.run(x)
    dt = time.perf_counter() - t0
    torch.cuda.synchronize()
    free1, alloc1, rss1 = be.free_memory(), torch.cuda.memory_allocated(), rss_mib()
    return {"runs": runs, "ms_per_run": round(1000 * dt / runs, 3),
            "device_drift_mib": round((free0 - free1) / MIB, 2),
            "torch_allocated_drift_mib": round((alloc1 - alloc0) / MIB, 2), "rss_growth_mib": round(rss1 - rss0, 1)}
