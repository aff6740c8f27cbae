"""TensorRT caches and checks around the run path, on the CPU: the engine-cache key (workspace, GPU), the
timing cache per GPU model loaded strictly, TensorRT-RTX's default targets, the warning for another GPU model
of the same SM, TensorRT's log reaching Python logging, and the pycuda fallback's context handling."""

from __future__ import annotations

import logging
import sys
import threading
import types

import numpy as np
import pytest

trt = pytest.importorskip("tensorrt_rtx", reason="the [trt-rtx] extra is not installed")

from sr_runtime.backends.trt import (  # noqa: E402
    GpuInfo,
    GpuProbe,
    ShapeProfile,
    TrtFlavor,
    build_engine,
    cached_engine,
    check_compatible,
    engine_cache_key,
    timing_cache_path,
)
from sr_runtime.backends.trt import build as trt_build  # noqa: E402
from sr_runtime.backends.trt import cuda as trt_cuda  # noqa: E402
from sr_runtime.backends.trt.flavor import RTX_PORTABLE_TARGETS, rtx_default_targets, rtx_supports  # noqa: E402
from sr_runtime.errors import EngineMismatchError  # noqa: E402
from tests.runtime.conftest import DATA  # noqa: E402

ONNX = DATA / "SRVGGNetCompact.onnx"
A100_SXM = GpuInfo("NVIDIA A100-SXM4-40GB", "8.0", 40 << 30)
A100_PCIE = GpuInfo("NVIDIA A100-PCIE-40GB", "8.0", 40 << 30)


def _full_trt() -> TrtFlavor:
    """Full TensorRT stood in for by the TensorRT-RTX module: the builder/config calls are the same API."""
    return TrtFlavor("tensorrt", trt)


# --------------------------------------------------------------------------------------------- #2 targets
def test_rtx_default_targets_are_the_support_matrix():
    assert rtx_default_targets(trt) == [s for s in trt.ComputeCapability.__members__ if s in RTX_PORTABLE_TARGETS]
    assert "SM80" not in rtx_default_targets(trt) and "SM86" in rtx_default_targets(trt)
    assert rtx_supports(trt, "8.9") and rtx_supports(trt, "8.0") and not rtx_supports(trt, "9.0")


def test_explicit_sm80_target_is_still_possible():
    _, side = build_engine(ONNX, ShapeProfile.from_tile(16, 0, 1), flavor="rtx", compute_capabilities=["8.0"])
    assert side["built_for"]["compute_capabilities"] == ["8.0"]


# --------------------------------------------------------------------------------------------- #14, #9 keys
def test_engine_cache_key_has_workspace_and_gpu():
    fl, p = TrtFlavor("rtx", trt), ShapeProfile.from_tile(16, 2, 1)
    keys = {engine_cache_key("ab" * 32, p, fl, None), engine_cache_key("ab" * 32, p, fl, None, 256),
            engine_cache_key("ab" * 32, p, fl, None, 512), engine_cache_key("ab" * 32, p, fl, A100_SXM, 256)}
    assert len(keys) == 4
    assert engine_cache_key("ab" * 32, p, fl, A100_SXM, 256).endswith("_ws256_NVIDIA_A100-SXM4-40GB-sm80")
    assert "_wsdef_portable" in engine_cache_key("ab" * 32, p, fl, None)


def test_cached_engine_rebuilds_for_another_workspace(tmp_path, monkeypatch):
    import sr_runtime.backends.trt.cache as tc

    p = ShapeProfile.from_tile(16, 2, 1)
    first = cached_engine(ONNX, p, flavor="rtx", cache_dir=tmp_path, workspace_mib=64)
    assert "_ws64_" in first.name
    built = []
    real = tc.build_engine
    monkeypatch.setattr(tc, "build_engine", lambda *a, **k: built.append(k) or real(*a, **k))
    assert cached_engine(ONNX, p, flavor="rtx", cache_dir=tmp_path, workspace_mib=64) == first and built == []
    second = cached_engine(ONNX, p, flavor="rtx", cache_dir=tmp_path, workspace_mib=128)
    assert second != first and "_ws128_" in second.name and built[0]["workspace_mib"] == 128


def test_timing_cache_is_per_gpu_model(tmp_path):
    fl = _full_trt()
    a, b = timing_cache_path(tmp_path, fl, A100_SXM), timing_cache_path(tmp_path, fl, A100_PCIE)
    assert a != b and a.name == f"timing-tensorrt-{trt.__version__}-NVIDIA_A100-SXM4-40GB-sm80.cache"


@pytest.mark.filterwarnings("ignore:.*Timing cache operations are no-ops:DeprecationWarning")
def test_full_tensorrt_build_saves_and_reloads_the_timing_cache(tmp_path, monkeypatch, caplog):
    """The TensorRT (non-RTX) build path end to end: GPU here, timing cache loaded strictly, saved after."""
    import sr_runtime.backends.trt.build as tb

    monkeypatch.setattr(tb, "load_flavor", lambda name: _full_trt())
    monkeypatch.setattr(tb, "current_gpu", lambda device=0: A100_SXM)
    tcache = timing_cache_path(tmp_path, _full_trt(), A100_SXM)
    _, side = build_engine(ONNX, ShapeProfile.from_tile(16, 0, 1), flavor="tensorrt", timing_cache=tcache)
    assert side["built_for"] == {"compute_capabilities": ["8.0"], "gpu": A100_SXM.name}
    assert tcache.is_file() and tcache.stat().st_size > 0
    with caplog.at_level(logging.WARNING, "sr_runtime.trt"):
        build_engine(ONNX, ShapeProfile.from_tile(16, 0, 1), flavor="tensorrt", timing_cache=tcache)
    assert "timing cache from another GPU" not in caplog.text


def test_timing_cache_from_another_device_is_not_used(tmp_path, caplog):
    """``set_timing_cache(cache, ignore_mismatch=False)`` returns False for another device's cache: then an
    empty cache is attached instead, never the foreign timings."""
    (tmp_path / "t.cache").write_bytes(b"timings of another GPU")
    attached = []

    class Config:
        def create_timing_cache(self, blob):
            return types.SimpleNamespace(blob=bytes(blob))

        def set_timing_cache(self, cache, ignore_mismatch):
            assert ignore_mismatch is False
            attached.append(cache.blob)
            return cache.blob == b""

    with caplog.at_level(logging.WARNING, "sr_runtime.trt"):
        cache = trt_build._load_timing_cache(Config(), tmp_path / "t.cache")
    assert attached == [b"timings of another GPU", b""] and cache.blob == b""
    assert "timing cache from another GPU or TensorRT ignored" in caplog.text


# --------------------------------------------------------------------------------------------- #8 compat
def _sidecar(flavor="tensorrt", gpu=A100_SXM):
    return {"flavor": flavor, "trt_version": trt.__version__,
            "built_for": {"compute_capabilities": [gpu.compute_capability], "gpu": gpu.name}}


def test_another_gpu_model_of_the_same_sm_warns(caplog):
    with caplog.at_level(logging.WARNING, "sr_runtime.trt"):
        assert check_compatible(_sidecar(), _full_trt(), A100_PCIE, "m.engine") == A100_PCIE
    assert "built on NVIDIA A100-SXM4-40GB, this GPU is NVIDIA A100-PCIE-40GB" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, "sr_runtime.trt"):
        check_compatible(_sidecar(), _full_trt(), GpuProbe(A100_SXM), "m.engine")
        check_compatible(_sidecar("rtx"), TrtFlavor("rtx", trt), A100_PCIE, "m.engine")  # RTX JITs here
    assert caplog.text == ""
    with pytest.raises(EngineMismatchError, match="compute capability 8.0; this GPU"):
        check_compatible(_sidecar(), _full_trt(), GpuInfo("NVIDIA H200", "9.0"), "m.engine")


def test_tensorrt_warnings_reach_python_logging(caplog):
    lg = TrtFlavor("rtx", trt).logger()
    assert isinstance(lg, trt.ILogger)
    with caplog.at_level(logging.DEBUG, "sr_runtime.trt"):
        lg.log(trt.ILogger.Severity.WARNING, "Using an engine plan file across different models of devices")
        lg.log(trt.ILogger.Severity.ERROR, "boom")
        lg.log(trt.ILogger.Severity.INFO, "chatter")
        lg.log(trt.ILogger.Severity.VERBOSE, "more chatter")
    assert [(r.levelno, r.getMessage().split(": ", 1)[1]) for r in caplog.records] == [
        (logging.WARNING, "Using an engine plan file across different models of devices"), (logging.ERROR, "boom")]
    assert isinstance(TrtFlavor("rtx", trt).logger(verbose=True), trt.Logger)


def test_runtime_logger_surfaces_deserialisation_warnings(caplog):
    """A real TensorRT-RTX runtime with the Python logger: its errors without a GPU reach logging."""
    if trt_cuda.current_gpu() is not None:
        pytest.skip("needs a machine without a GPU (the runtime's CUDA error is the message under test)")
    rt = trt.Runtime(TrtFlavor("rtx", trt).logger())
    with caplog.at_level(logging.WARNING, "sr_runtime.trt"):
        assert rt.deserialize_cuda_engine(b"not an engine") is None
    assert "TensorRT-RTX" in caplog.text


# --------------------------------------------------------------------------------------------- pycuda (#13)
class _FakePycuda:
    """``pycuda.driver``: a context stack per thread, as pycuda keeps it."""

    class MemoryError(Exception):
        pass

    def __init__(self):
        self.stacks: dict[int, list] = {}
        self.log: list[tuple] = []
        drv = self

        class Ctx:
            def push(self):
                drv.stacks.setdefault(threading.get_ident(), []).append(self)

        class Context:
            @staticmethod
            def pop():
                drv.stacks[threading.get_ident()].pop()

        class Stream:
            handle = 0xABC

            def synchronize(self):
                drv.log.append(("sync", drv.current()))

        class Buf:
            def __init__(self, n):
                self.n = n

            def __int__(self):
                return 0x1000 + self.n

            def free(self):
                drv.log.append(("free", int(self), drv.current()))

        self.Context, self.Stream, self.Buf = Context, Stream, Buf
        self._ctx = Ctx()
        self.Device = lambda d: types.SimpleNamespace(retain_primary_context=lambda: self._ctx)

    def current(self):
        s = self.stacks.get(threading.get_ident(), [])
        return s[-1] if s else None

    def init(self):
        self.log.append(("init",))

    def mem_alloc(self, n):
        if n > 1 << 40:
            raise self.MemoryError
        return self.Buf(n)

    def pagelocked_empty(self, n, dtype):
        return np.zeros(n, dtype)

    def memcpy_htod_async(self, dst, src, stream):
        self.log.append(("htod", dst, len(src), self.current()))

    def memcpy_dtoh_async(self, dst, src, stream):
        self.log.append(("dtoh", src, len(dst), self.current()))

    def mem_get_info(self):
        return (5, 10)


def test_pycuda_fallback_pushes_the_context_per_call_on_any_thread(monkeypatch):
    drv = _FakePycuda()
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: None)
    monkeypatch.setitem(sys.modules, "pycuda", types.SimpleNamespace(driver=drv))
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
    c = trt_cuda.open_cuda(0)
    assert c.kind == "pycuda" and drv.current() is None  # nothing left pushed on the constructing thread
    d = c.malloc(64)
    h, arr = c.malloc_host(64)
    assert arr.nbytes == 64 and c.stream_handle == 0xABC

    def work():
        with c.activate():
            c.htod(d, h, 16)
            c.dtoh(h, d, 16)
            c.sync()
            assert c.mem_get_info() == (5, 10)
        assert drv.current() is None

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert [e[0] for e in drv.log] == ["init", "htod", "dtoh", "sync"]
    assert all(e[-1] is drv._ctx for e in drv.log[1:])  # every call ran with the context current
    with pytest.raises(Exception, match="out of memory"):
        c.malloc(1 << 41)
    with c.activate():
        c.free(d)
        c.free(h, host=True)
        c.close()
    assert drv.log[-1][0] == "free" and drv.log[-1][2] is drv._ctx
