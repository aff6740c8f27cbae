"""Signature-faithful fakes of the CUDA runtime bindings and of a TensorRT runtime, for driving
:class:`~sr_runtime.backends.trt.TrtBackend`'s real run path on a machine without a GPU.

:class:`FakeCudart` stands in for ``cuda.bindings.runtime``. Every call is first made on the real bindings
module when there is no driver (``cudaDriverGetVersion() == 0``): the real binding checks the argument types
and answers ``cudaErrorInsufficientDriver`` with the real return arity, which the fake then keeps (same tuple
length, real ``cudaError_t`` members, real ``cudaStream_t`` and ``cudaDeviceProp`` objects). Memory is host RAM
(ctypes buffers with real addresses, so pinned buffers can be viewed through numpy exactly as the backend does);
``cudaMemcpyAsync`` only queues the copy on its stream, and ``cudaStreamSynchronize`` runs the queue, reading
the source at that moment as a GPU would. The fake records contract violations (freeing or overwriting memory
a queued operation still uses, destroying a busy stream, using a device that is not current on the thread).

:class:`FakeTrtRuntime` replaces ``tensorrt_rtx.Runtime`` only; the real module's enums, ``nptype`` and
``ILogger`` stay. It deserialises the real engine bytes written by ``export_engine`` (checked against the
sidecar's sha256) into a :class:`FakeEngine` whose :class:`FakeContext` queues the model (the ONNX run by ONNX
Runtime on the CPU) on the stream, reading and writing the fake device memory.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from cuda.bindings import runtime as REAL

OK = REAL.cudaError_t.cudaSuccess
VALIDATE = int(REAL.cudaDriverGetVersion()[1] or 0) == 0
"""Call the real bindings first (type and arity check) only where no driver could act on the fake pointers."""


class FakeCudart:
    """A fake ``cuda.bindings.runtime`` for one or more devices (see the module docstring).

    Args:
        name: device name.
        cc: compute capability ``(major, minor)``.
        count: number of devices.
        driver: driver CUDA version (``13000``); with ``insufficient=True`` every device call returns
            ``cudaErrorInsufficientDriver`` as cuda-python 13 does on an older driver.
        free_memory: what ``cudaMemGetInfo`` reports free.
    """

    cudaError_t = REAL.cudaError_t
    cudaMemcpyKind = REAL.cudaMemcpyKind
    cudaStream_t = REAL.cudaStream_t

    def __init__(self, name: str = "NVIDIA GeForce RTX 4090", cc: tuple[int, int] = (8, 9), count: int = 1,
                 driver: int = 13000, insufficient: bool = False, free_memory: int = 20 << 30) -> None:
        self.name, self.cc, self.count, self.driver = name, cc, count, driver
        self.insufficient, self.free_memory = insufficient, free_memory
        self.device: dict[int, int] = {}  # thread id -> current device
        self.mem: dict[int, tuple[str, Any, int]] = {}  # address -> (kind, buffer, size)
        self.freed: list[int] = []
        self.streams: dict[int, list[tuple[str, Callable[[], None], tuple[int, ...]]]] = {}
        self.destroyed: list[int] = []
        self.calls: list[str] = []
        self.violations: list[str] = []
        self.fail: dict[str, Any] = {}  # function name -> cudaError_t to return instead of success
        self.sync_count = 0
        self._next_stream = 0x5000

    # -------------------------------------------------------------------- helpers
    def _call(self, fn: str, *args: Any) -> tuple[Any, ...] | None:
        """The real binding's answer (types checked) when validating; an injected or driver error, or None."""
        arity = None
        if VALIDATE:
            ret = getattr(REAL, fn)(*args)
            assert isinstance(ret, tuple) and isinstance(ret[0], REAL.cudaError_t), (fn, ret)
            arity = len(ret)
        self.calls.append(fn)
        err = self.fail.get(fn)
        if err is None and self.insufficient and fn not in ("cudaDriverGetVersion", "cudaRuntimeGetVersion"):
            err = REAL.cudaError_t.cudaErrorInsufficientDriver
        if err is None:
            return None
        n = arity or {"cudaMemGetInfo": 3}.get(fn, 2)
        return (err,) + (None,) * (n - 1)

    def _alloc(self, kind: str, nbytes: int) -> int:
        buf = ctypes.create_string_buffer(max(1, int(nbytes)))
        addr = ctypes.addressof(buf)
        self.mem[addr] = (kind, buf, int(nbytes))
        return addr

    def _region(self, addr: int, nbytes: int, kind: str) -> bool:
        entry = self.mem.get(int(addr))
        return entry is not None and entry[0] == kind and nbytes <= entry[2]

    def pending(self, stream: Any = None) -> int:
        """Operations queued and not yet run (on one stream, or on all)."""
        if stream is not None:
            return len(self.streams.get(int(stream), []))
        return sum(len(q) for q in self.streams.values())

    def busy(self, addr: int) -> bool:
        """True when a queued operation still reads or writes the buffer at ``addr``."""
        return any(int(addr) in used for q in self.streams.values() for _, _, used in q)

    def enqueue(self, stream: int, what: str, op: Callable[[], None], used: tuple[int, ...]) -> bool:
        """Queue ``op`` on a stream (TensorRT's kernels go through here); False for an unknown stream."""
        if int(stream) not in self.streams:
            self.violations.append(f"{what} on unknown stream {stream:#x}")
            return False
        self.streams[int(stream)].append((what, op, used))
        return True

    def read(self, addr: int, nbytes: int) -> bytes:
        """The bytes at ``addr`` (any fake buffer)."""
        return ctypes.string_at(int(addr), int(nbytes))

    def write(self, addr: int, data: bytes) -> None:
        """Write into a fake buffer."""
        ctypes.memmove(int(addr), data, len(data))

    # -------------------------------------------------------------------- device
    def cudaGetDeviceCount(self) -> tuple[Any, ...]:
        return self._call("cudaGetDeviceCount") or (OK, self.count)

    def cudaGetDeviceProperties(self, device: int) -> tuple[Any, ...]:
        err = self._call("cudaGetDeviceProperties", device)
        if err:
            return err
        if device >= self.count:
            return (REAL.cudaError_t.cudaErrorInvalidDevice, None)
        prop = REAL.cudaDeviceProp()
        prop.name = self.name.encode().ljust(256, b"\0")
        prop.major, prop.minor, prop.totalGlobalMem = self.cc[0], self.cc[1], 24 << 30
        return (OK, prop)

    def cudaDriverGetVersion(self) -> tuple[Any, ...]:
        return self._call("cudaDriverGetVersion") or (OK, self.driver)

    def cudaRuntimeGetVersion(self) -> tuple[Any, ...]:
        return self._call("cudaRuntimeGetVersion") or (OK, 13040)

    def cudaSetDevice(self, device: int) -> tuple[Any, ...]:
        err = self._call("cudaSetDevice", device)
        if err:
            return err
        if device >= self.count:
            return (REAL.cudaError_t.cudaErrorInvalidDevice,)
        self.device[threading.get_ident()] = device
        return (OK,)

    def current_device(self) -> int | None:
        """The device made current on the calling thread (None: never set, as on a fresh thread)."""
        return self.device.get(threading.get_ident())

    def cudaMemGetInfo(self) -> tuple[Any, ...]:
        return self._call("cudaMemGetInfo") or (OK, self.free_memory, 24 << 30)

    # -------------------------------------------------------------------- memory
    def cudaMalloc(self, nbytes: int) -> tuple[Any, ...]:
        return self._call("cudaMalloc", nbytes) or (OK, self._alloc("device", nbytes))

    def cudaMallocHost(self, nbytes: int) -> tuple[Any, ...]:
        return self._call("cudaMallocHost", nbytes) or (OK, self._alloc("host", nbytes))

    def _free(self, fn: str, ptr: int, kind: str) -> tuple[Any, ...]:
        err = self._call(fn, ptr)
        if err:
            return err
        if int(ptr) not in self.mem or self.mem[int(ptr)][0] != kind:
            self.violations.append(f"{fn} of {ptr:#x}, not a live {kind} buffer")
            return (REAL.cudaError_t.cudaErrorInvalidValue,)
        if self.busy(ptr):
            self.violations.append(f"{fn} of {ptr:#x} while a queued operation uses it")
        del self.mem[int(ptr)]
        self.freed.append(int(ptr))
        return (OK,)

    def cudaFree(self, ptr: int) -> tuple[Any, ...]:
        return self._free("cudaFree", ptr, "device")

    def cudaFreeHost(self, ptr: int) -> tuple[Any, ...]:
        return self._free("cudaFreeHost", ptr, "host")

    # -------------------------------------------------------------------- streams and copies
    def cudaStreamCreate(self) -> tuple[Any, ...]:
        err = self._call("cudaStreamCreate")
        if err:
            return err
        if self.current_device() is None:
            self.violations.append("cudaStreamCreate without a current device")
        self._next_stream += 0x10
        self.streams[self._next_stream] = []
        return (OK, REAL.cudaStream_t(self._next_stream))

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: Any, stream: Any) -> tuple[Any, ...]:
        err = self._call("cudaMemcpyAsync", dst, src, nbytes, kind, stream)
        if err:
            return err
        spaces = {REAL.cudaMemcpyKind.cudaMemcpyHostToDevice: ("host", "device"),
                  REAL.cudaMemcpyKind.cudaMemcpyDeviceToHost: ("device", "host")}.get(kind)
        if spaces is None or not (self._region(src, nbytes, spaces[0]) and self._region(dst, nbytes, spaces[1])):
            self.violations.append(f"cudaMemcpyAsync {kind} of {nbytes} bytes {src:#x} -> {dst:#x}: bad buffers")
            return (REAL.cudaError_t.cudaErrorInvalidValue,)
        if self.current_device() is None:
            self.violations.append("cudaMemcpyAsync from a thread without a current device")

        def op() -> None:
            ctypes.memmove(int(dst), int(src), int(nbytes))  # reads the source now, as the GPU's copy engine would

        if not self.enqueue(int(stream), "memcpy", op, (int(dst), int(src))):
            return (REAL.cudaError_t.cudaErrorInvalidResourceHandle,)
        return (OK,)

    def cudaStreamSynchronize(self, stream: Any) -> tuple[Any, ...]:
        err = self._call("cudaStreamSynchronize", stream)
        self.sync_count += 1
        q = self.streams.get(int(stream))
        if q is None:
            return (REAL.cudaError_t.cudaErrorInvalidResourceHandle,)
        while q:
            _, op, _ = q.pop(0)
            op()
        return err or (OK,)

    def cudaStreamDestroy(self, stream: Any) -> tuple[Any, ...]:
        err = self._call("cudaStreamDestroy", stream)
        if err:
            return err
        q = self.streams.pop(int(stream), None)
        if q:
            self.violations.append(f"stream {int(stream):#x} destroyed with {len(q)} queued operations")
        self.destroyed.append(int(stream))
        return (OK,)


# ------------------------------------------------------------------------------------------------ TensorRT
class FakeRuntimeCache:
    """``IRuntimeCache``: ``deserialize`` returns a bool (it never raises), as TensorRT-RTX 1.7 documents."""

    def __init__(self, env: str) -> None:
        self.env, self.kernels = env, 0
        self.loaded: bytes | None = None

    def deserialize(self, blob: bytes) -> bool:
        data = bytes(blob)
        if not data.startswith(f"RTCACHE|{self.env}|".encode()):
            return False
        self.loaded, self.kernels = data, int(data.rsplit(b"|", 1)[1])
        return True

    def serialize(self) -> memoryview:
        return memoryview(f"RTCACHE|{self.env}|{self.kernels}".encode())


class FakeRuntimeConfig:
    """``IRuntimeConfig`` with a runtime cache."""

    def __init__(self, env: str) -> None:
        self.env = env
        self.cache: FakeRuntimeCache | None = None

    def create_runtime_cache(self) -> FakeRuntimeCache:
        return FakeRuntimeCache(self.env)

    def set_runtime_cache(self, cache: FakeRuntimeCache) -> bool:
        self.cache = cache
        return True


class FakeContext:
    """``IExecutionContext``: input shape within the profile, tensor addresses, ``execute_async_v3`` that queues
    the model on the stream."""

    def __init__(self, engine: FakeEngine, config: FakeRuntimeConfig | None) -> None:
        self.engine, self.config = engine, config
        self.addr: dict[str, int] = {}
        self.shape: tuple[int, ...] | None = None
        self.executions = 0

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addr[name] = int(ptr)
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        prof = self.engine.sidecar["profile"]
        if name != self.engine.names[0] or len(shape) != 4:
            return False
        if not all(lo <= s <= hi for s, lo, hi in zip(shape, prof["min"], prof["max"])):
            return False  # TensorRT logs an error and returns False
        self.shape = tuple(int(s) for s in shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if self.shape is None:
            return (-1, self.engine.channels[0], -1, -1)
        if name == self.engine.names[0]:
            return self.shape
        n, _, h, w = self.shape
        s = self.engine.scale
        return (n, self.engine.channels[1], h * s, w * s)

    def execute_async_v3(self, stream_handle: int) -> bool:
        eng = self.engine
        cuda = eng.cudart
        if not isinstance(stream_handle, int):
            raise TypeError("execute_async_v3(): incompatible function arguments (stream_handle: int)")
        if eng.fail_execute:
            return False
        if cuda.current_device() is None:
            cuda.violations.append("execute_async_v3 from a thread without a current CUDA context")
            return False
        if self.config is not None and self.config.cache is not None:
            self.config.cache.kernels += 1  # JIT-compiled kernels land in the runtime cache
        shape = self.shape
        assert shape is not None
        in_dt, out_dt = eng.dtypes
        src, dst = self.addr[eng.names[0]], self.addr[eng.names[1]]
        n_in = int(np.prod(shape)) * in_dt.itemsize

        def op() -> None:
            x = np.frombuffer(cuda.read(src, n_in), in_dt).reshape(shape)
            y = eng.model(x.astype(np.float32)).astype(out_dt)
            cuda.write(dst, y.tobytes())

        self.executions += 1
        return cuda.enqueue(stream_handle, "execute", op, (src, dst))


class FakeEngine:
    """``ICudaEngine`` over a real engine file's sidecar: I/O names, modes and dtypes; the model is its ONNX."""

    fail_execute = False

    def __init__(self, trt: Any, sidecar: dict[str, Any], cudart: FakeCudart,
                 model: Callable[[np.ndarray], np.ndarray]) -> None:
        self.trt, self.sidecar, self.cudart, self.model = trt, sidecar, cudart, model
        self.names = (sidecar["input_name"], sidecar["output_name"])
        half = sidecar["io_dtype"] == "float16"
        self.dtypes = (np.dtype(np.float16 if half else np.float32),) * 2
        self._trt_dtype = trt.DataType.HALF if half else trt.DataType.FLOAT
        m = sidecar["model"]
        self.scale = int(m["scale"])
        self.channels = (int(m.get("in_channels", 3)), int(m.get("out_channels", 3)))
        self.num_io_tensors = 2
        self.contexts: list[FakeContext] = []

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> Any:
        return self.trt.TensorIOMode.INPUT if name == self.names[0] else self.trt.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> Any:
        return self._trt_dtype

    def create_runtime_config(self) -> FakeRuntimeConfig:
        return FakeRuntimeConfig(f"{self.cudart.name}-sm{self.cudart.cc[0]}{self.cudart.cc[1]}")

    def create_execution_context(self, config: FakeRuntimeConfig | None = None) -> FakeContext | None:
        if self.cudart.free_memory < 1 << 20:
            return None  # TensorRT returns None when the context's device memory cannot be allocated
        ctx = FakeContext(self, config)
        self.contexts.append(ctx)
        return ctx


class FakeTrtRuntime:
    """``trt.Runtime(logger)``: validity check and deserialisation of real engine bytes into a :class:`FakeEngine`.

    Class attributes (set per test): ``cudart``, ``models`` (engine sha256 -> numpy model), ``validity``
    (``(EngineValidity, diagnostics)`` or None for VALID), ``instances``.
    """

    trt: Any = None
    cudart: FakeCudart | None = None
    models: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    validity: tuple[Any, int] | None = None
    instances: list[FakeTrtRuntime] = []

    def __init__(self, logger: Any) -> None:
        assert isinstance(logger, (self.trt.ILogger, self.trt.Logger)), logger
        self.logger = logger
        self.engines: list[FakeEngine] = []
        FakeTrtRuntime.instances.append(self)

    def get_engine_validity(self, blob: bytes) -> tuple[Any, int]:
        return self.validity or (self.trt.EngineValidity.VALID, 0)

    def deserialize_cuda_engine(self, blob: bytes) -> FakeEngine | None:
        sha = hashlib.sha256(bytes(blob)).hexdigest()
        if sha not in self.models:
            self.logger.log(self.trt.ILogger.Severity.ERROR, "IRuntime::deserializeCudaEngine: malformed engine")
            return None
        sidecar, model = self.models[sha]
        assert self.cudart is not None
        engine = FakeEngine(self.trt, sidecar, self.cudart, model)
        self.engines.append(engine)
        return engine

    @classmethod
    def register(cls, engine_path: Path, model: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
        """Make a real engine file deserialisable; returns its sidecar."""
        sidecar = json.loads(Path(f"{engine_path}.json").read_text())
        sha = hashlib.sha256(Path(engine_path).read_bytes()).hexdigest()
        assert sha == sidecar["engine_sha256"]
        cls.models[sha] = (sidecar, model)
        return sidecar
