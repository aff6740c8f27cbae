"""TrtBackend's run path on the CPU: real TensorRT-RTX engines (built here), the real backend code, a fake
CUDA runtime with cuda-bindings' signatures and a fake TensorRT runtime whose kernels are the ONNX run by
ONNX Runtime (``tests/runtime/fake_cuda.py``). Checks results, buffer lifetimes, shape refusal, the error
paths (the stream is idle before an error leaves ``run``), threads, the runtime cache and TensorRT's
validity diagnostics. What only a GPU can show (real kernels, real timings) is in ``benchmarks/gpu.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import sys
import threading
import types

import numpy as np
import pytest

pytest.importorskip("cuda.bindings", reason="cuda-python (the [trt-rtx] extra) is not installed")
trt = pytest.importorskip("tensorrt_rtx", reason="the [trt-rtx] extra is not installed")

from sr_runtime.backends.trt import ShapeOutsideProfileError, ShapeProfile, TrtBackend, export_engine  # noqa: E402
from sr_runtime.backends.trt import cuda as trt_cuda  # noqa: E402
from sr_runtime.errors import EngineMismatchError, ModelFileError, OutOfMemory, SrError  # noqa: E402
from tests.runtime.conftest import DATA  # noqa: E402
from tests.runtime.fake_cuda import FakeCudart, FakeTrtRuntime  # noqa: E402

ONNX = DATA / "SRVGGNetCompact.onnx"
PROFILE = ShapeProfile.from_tile(16, 2, 2)  # windows up to 20x20, batches up to 2


def _ort_model(onnx_path):
    from sr_runtime.backends.ort import OrtBackend

    be = OrtBackend(onnx_path, "cpu", threads=1)
    return be.run


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Real TensorRT-RTX engines (portable targets) from the committed ONNX: fp32 I/O and fp16 I/O."""
    root = tmp_path_factory.mktemp("engines")
    out = {"float32": (root / "fp32.engine", ONNX)}
    export_engine(ONNX, out["float32"][0], PROFILE, flavor="rtx")
    if importlib.util.find_spec("onnxconverter_common") is not None:
        from sr_export.fp16 import convert_fp16

        fp16 = root / "fp16io.onnx"
        convert_fp16(ONNX, fp16, io_dtype="float16")
        export_engine(fp16, root / "fp16.engine", PROFILE, flavor="rtx")
        out["float16"] = (root / "fp16.engine", fp16)
    return out


@pytest.fixture
def gpu(monkeypatch):
    """A fake RTX 4090 (SM 8.9, a portable TensorRT-RTX target) behind cuda-python and TensorRT-RTX."""
    cudart = FakeCudart()
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: cudart)
    monkeypatch.setattr(FakeTrtRuntime, "trt", trt)
    monkeypatch.setattr(FakeTrtRuntime, "cudart", cudart)
    monkeypatch.setattr(FakeTrtRuntime, "models", {})
    monkeypatch.setattr(FakeTrtRuntime, "validity", None)
    monkeypatch.setattr(FakeTrtRuntime, "instances", [])
    monkeypatch.setattr(trt, "Runtime", FakeTrtRuntime)
    return cudart


@pytest.fixture
def engine(built, tmp_path, gpu):
    """``engine(precision="float32") -> path``: a copy of a built engine (+ sidecar) registered with the fake."""

    def make(precision="float32"):
        if precision not in built:
            pytest.skip("onnxconverter-common not installed: no fp16 engine")
        src, onnx_path = built[precision]
        dst = tmp_path / src.name
        shutil.copy(src, dst)
        shutil.copy(f"{src}.json", f"{dst}.json")
        FakeTrtRuntime.register(dst, _ort_model(onnx_path))
        return dst

    return make


def _batch(n=2, h=20, w=20, seed=0):
    return np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)


def _idle_and_clean(cudart):
    assert cudart.pending() == 0
    assert cudart.violations == []


# --------------------------------------------------------------------------------------------- results
def test_run_matches_the_model_and_returns_caller_owned_arrays(engine, gpu):
    path = engine()
    ref = _ort_model(ONNX)
    with TrtBackend(path) as be:
        assert be.provider.startswith(f"TensorRT-RTX {trt.__version__} on NVIDIA GeForce RTX 4090 (sm 8.9)")
        assert be.max_shape == (2, 3, 20, 20) and be.window_shapes == "same"
        assert be.free_memory() == 20 << 30
        outs = []
        for x in (_batch(), _batch(1, 12, 16, seed=1), _batch(2, 4, 20, seed=2)):
            y = be.run(x)
            assert y.dtype == np.float32 and y.shape == (x.shape[0], 3, x.shape[2] * 4, x.shape[3] * 4)
            np.testing.assert_array_equal(y, ref(x))
            assert not np.shares_memory(y, be._h_out_arr)
            outs.append(y)
            _idle_and_clean(gpu)
        np.testing.assert_array_equal(outs[0], ref(_batch()))  # earlier results untouched by later runs
    assert gpu.calls.count("cudaMemcpyAsync") == 6 and gpu.sync_count >= 3


def test_fp16_io_engine_converts_at_the_boundary(engine, gpu):
    path = engine("float16")
    with TrtBackend(path) as be:
        assert be._in_dtype == np.float16 and be._out_dtype == np.float16
        assert be.reduced_precision
        x = _batch(1)
        y = be.run(x)
        assert y.dtype == np.float32
        want = _ort_model(ONNX)(x)
        assert np.abs(y - want).max() < 2e-2


# --------------------------------------------------------------------------------------------- shapes
def test_shape_outside_profile_is_refused_before_any_cuda_call(engine, gpu):
    with TrtBackend(engine()) as be:
        before = list(gpu.calls)
        with pytest.raises(ShapeOutsideProfileError, match="height 24 is outside the engine's profile"):
            be.run(_batch(1, 24, 20))
        with pytest.raises(ShapeOutsideProfileError, match="batch 3"):
            be.run(_batch(3))
        with pytest.raises(SrError, match="3 channels"):
            be.run(np.zeros((1, 1, 8, 8), np.float32))
        assert gpu.calls == before


def test_shape_rejected_by_tensorrt(engine, gpu, monkeypatch):
    from tests.runtime import fake_cuda

    monkeypatch.setattr(fake_cuda.FakeContext, "set_input_shape", lambda self, name, shape: False)
    with TrtBackend(engine()) as be, pytest.raises(SrError, match="TensorRT rejected input shape") as e:
        be.run(_batch(1))
    assert "sr-export --trt" in e.value.one_line()
    _idle_and_clean(gpu)


def test_unexpected_output_shape(engine, gpu, monkeypatch):
    from tests.runtime import fake_cuda

    monkeypatch.setattr(fake_cuda.FakeContext, "get_tensor_shape", lambda self, name: (2, 3, 999, 999))
    with TrtBackend(engine()) as be, pytest.raises(SrError, match="unexpected output shape"):
        be.run(_batch(1))


# --------------------------------------------------------------------------------------------- errors (#12)
def test_failed_execution_waits_for_the_queued_copy(engine, gpu):
    """execute_async_v3 returns False after the input copy was queued: the stream is synchronised before the
    error leaves run(), so the next run's input cannot overwrite pinned memory a copy still reads."""
    path = engine()
    with TrtBackend(path) as be:
        ctx_engine = FakeTrtRuntime.instances[-1].engines[-1]
        ctx_engine.fail_execute = True
        syncs = gpu.sync_count
        with pytest.raises(SrError, match="TensorRT execution failed") as e:
            be.run(_batch())
        assert "nvidia-smi" in e.value.one_line()
        assert gpu.sync_count == syncs + 1
        _idle_and_clean(gpu)
        ctx_engine.fail_execute = False
        np.testing.assert_array_equal(be.run(_batch(seed=5)), _ort_model(ONNX)(_batch(seed=5)))


@pytest.mark.parametrize(("exc", "want"), [
    (RuntimeError("CUDA error: out of memory"), OutOfMemory),
    (RuntimeError("an illegal memory access was encountered"), SrError),
    (KeyboardInterrupt(), KeyboardInterrupt),
])
def test_exceptions_from_the_enqueue_are_raised_after_sync(engine, gpu, monkeypatch, exc, want):
    from tests.runtime import fake_cuda

    def boom(self, stream):
        raise exc

    with TrtBackend(engine()) as be:
        monkeypatch.setattr(fake_cuda.FakeContext, "execute_async_v3", boom)
        with pytest.raises(want) as e:
            be.run(_batch())
        if want is SrError:
            assert "TensorRT failed (an illegal memory access" in e.value.one_line()
        _idle_and_clean(gpu)


def test_failed_output_copy_and_failed_sync(engine, gpu):
    with TrtBackend(engine()) as be:
        calls = {"n": 0}
        real = gpu.cudaMemcpyAsync

        def second_copy_fails(*a):
            calls["n"] += 1
            return (gpu.cudaError_t.cudaErrorLaunchFailure,) if calls["n"] == 2 else real(*a)

        gpu.cudaMemcpyAsync = second_copy_fails
        with pytest.raises(SrError, match="cudaErrorLaunchFailure in cudaMemcpyAsync"):
            be.run(_batch())
        _idle_and_clean(gpu)
        gpu.cudaMemcpyAsync = real
        gpu.fail["cudaStreamSynchronize"] = gpu.cudaError_t.cudaErrorIllegalAddress
        with pytest.raises(SrError, match="cudaErrorIllegalAddress in cudaStreamSynchronize"):
            be.run(_batch())
        gpu.fail.clear()


def test_out_of_memory_while_opening_frees_what_was_allocated(engine, gpu):
    path = engine()
    real = gpu.cudaMallocHost

    def no_pinned(n):
        gpu.calls.append("cudaMallocHost")
        return (gpu.cudaError_t.cudaErrorMemoryAllocation, None)

    gpu.cudaMallocHost = no_pinned
    with pytest.raises(OutOfMemory, match="CUDA out of memory in cudaMallocHost"):
        TrtBackend(path)
    assert gpu.mem == {} and len(gpu.freed) == 2 and gpu.destroyed and gpu.streams == {}
    gpu.cudaMallocHost = real


def test_no_execution_context_is_out_of_memory(engine, gpu):
    gpu.free_memory = 0
    with pytest.raises(OutOfMemory, match="execution context"):
        TrtBackend(engine())
    assert gpu.mem == {} and gpu.streams == {}


def test_engine_that_does_not_deserialize(engine, gpu, tmp_path):
    path = engine()
    FakeTrtRuntime.models.clear()
    with pytest.raises(ModelFileError, match="could not deserialize the engine"):
        TrtBackend(path)


# --------------------------------------------------------------------------------------------- lifetimes
def test_close_frees_everything_and_is_idempotent(engine, gpu):
    be = TrtBackend(engine())
    be.run(_batch(1))
    assert len(gpu.mem) == 4  # device in/out, pinned in/out
    be.close()
    assert gpu.mem == {} and gpu.streams == {} and len(gpu.freed) == 4
    be.close()
    assert len(gpu.freed) == 4
    assert be.free_memory() is None
    with pytest.raises(SrError, match="closed"):
        be.run(_batch(1))
    _idle_and_clean(gpu)
    be.__del__()  # the finaliser after close is a no-op


def test_runs_from_other_threads_make_the_context_current(engine, gpu):
    ref = _ort_model(ONNX)
    with TrtBackend(engine()) as be:
        results, errors = {}, []

        def work(i):
            try:
                results[i] = be.run(_batch(1, seed=i))
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(gpu.device) >= 2
        for i, y in results.items():
            np.testing.assert_array_equal(y, ref(_batch(1, seed=i)))
    _idle_and_clean(gpu)


def test_without_activation_another_thread_would_fail(engine, gpu, monkeypatch):
    """The fake refuses work from a thread with no current device, as CUDA does for a context not current:
    proof that the test above exercises activate()."""
    be = TrtBackend(engine())
    monkeypatch.setattr(type(be._cuda), "activate", lambda self: contextlib.nullcontext())
    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(SrError, be.run, _batch(1))))
    t.start()
    t.join()
    assert errors and "execution failed" in str(errors[0].value)
    gpu.violations.clear()
    be.close()


# --------------------------------------------------------------------------------------------- runtime cache (#11)
def test_runtime_cache_saved_on_close_and_reused(engine, gpu, caplog):
    path = engine()
    cache = path.with_name(f"{path.name}.sm89.rtcache")
    with TrtBackend(path) as be:
        be.run(_batch(1))
    assert cache.read_bytes() == b"RTCACHE|NVIDIA GeForce RTX 4090-sm89|1"
    with caplog.at_level(logging.WARNING, "sr_runtime.trt"), TrtBackend(path) as be:
        assert be._runtime_cache.loaded is not None
        be.run(_batch(1))
    assert "runtime cache ignored" not in caplog.text
    assert cache.read_bytes().endswith(b"|2")


def test_runtime_cache_from_another_gpu_is_ignored_with_a_warning(engine, gpu, caplog):
    path = engine()
    cache = path.with_name(f"{path.name}.sm89.rtcache")
    cache.write_bytes(b"RTCACHE|NVIDIA GeForce RTX 4080-sm89|7")
    with caplog.at_level(logging.WARNING, "sr_runtime.trt"), TrtBackend(path) as be:
        assert be._runtime_cache.loaded is None
    assert "runtime cache ignored (made for another GPU" in caplog.text
    assert cache.read_bytes() == b"RTCACHE|NVIDIA GeForce RTX 4090-sm89|0"


def test_runtime_cache_options(engine, gpu, tmp_path, caplog, monkeypatch):
    path = engine()
    with TrtBackend(path, runtime_cache=None) as be:
        assert be._runtime_cache is None
    assert not list(tmp_path.glob("*.rtcache"))
    own = tmp_path / "sub" / "my.rtcache"
    from tests.runtime import fake_cuda

    monkeypatch.setattr(fake_cuda.FakeRuntimeCache, "deserialize", lambda self, b: (_ for _ in ()).throw(
        ValueError("bad blob")))
    own.parent.mkdir()
    own.write_bytes(b"junk")
    with caplog.at_level(logging.WARNING, "sr_runtime.trt"), TrtBackend(path, runtime_cache=own):
        pass
    assert "ValueError: bad blob" in caplog.text and own.read_bytes().startswith(b"RTCACHE|")
    caplog.clear()
    monkeypatch.setattr("sr_runtime.backends.trt.runner.atomic_write_bytes",
                        lambda p, b: (_ for _ in ()).throw(PermissionError("read-only")))
    with caplog.at_level(logging.WARNING, "sr_runtime.trt"), TrtBackend(path, runtime_cache=own):
        pass
    assert "runtime cache not saved (read-only)" in caplog.text


# --------------------------------------------------------------------------------------------- validity (#10)
@pytest.mark.parametrize(("flags", "exc", "text"), [
    (["OLD_CUDA_DRIVER"], SrError, "NVIDIA driver is too old"),
    (["OLD_CUDA_RUNTIME"], SrError, "CUDA runtime is older"),
    (["CUDA_ERROR"], SrError, "could not query CUDA"),
    (["INSUFFICIENT_GPU_MEMORY", "OLD_CUDA_DRIVER"], OutOfMemory, "not enough GPU memory"),
    (["MALFORMED_ENGINE"], ModelFileError, "malformed"),
    (["VERSION_MISMATCH", "UNSUPPORTED_CC"], EngineMismatchError, "VERSION_MISMATCH, UNSUPPORTED_CC"),
    ([], EngineMismatchError, "no diagnostics"),
])
def test_engine_validity_diagnostics(engine, gpu, monkeypatch, flags, exc, text):
    diag = 0
    for f in flags:
        diag |= int(trt.EngineInvalidityDiagnostics.__members__[f])
    monkeypatch.setattr(FakeTrtRuntime, "validity", (trt.EngineValidity.INVALID, diag))
    with pytest.raises(exc, match=text) as e:
        TrtBackend(engine())
    rebuild = "sr-export --trt" in e.value.one_line()
    assert rebuild == (exc in (EngineMismatchError, ModelFileError))
    assert gpu.mem == {} and gpu.streams == {}


def test_suboptimal_engine_warns(engine, gpu, monkeypatch, caplog):
    monkeypatch.setattr(FakeTrtRuntime, "validity", (trt.EngineValidity.SUBOPTIMAL, 0))
    with caplog.at_level(logging.WARNING, "sr_runtime.trt"), TrtBackend(engine()):
        pass
    assert "may run slower on this GPU" in caplog.text


def test_validity_check_missing_or_failing_is_skipped(engine, gpu, monkeypatch):
    def broken(self, blob):
        raise TypeError("old binding")

    monkeypatch.setattr(FakeTrtRuntime, "get_engine_validity", broken)
    with TrtBackend(engine()) as be:
        assert be.run(_batch(1)).shape == (1, 3, 80, 80)


# --------------------------------------------------------------------------------------------- drivers (#3, #4)
def test_driver_too_old_for_cuda_python_13(engine, monkeypatch):
    old = FakeCudart(insufficient=True, driver=12040)
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: old)
    probe = trt_cuda.probe_gpu()
    assert probe.gpu is None and "(CUDA 12.4) is too old for cuda-python" in probe.reason
    assert "pip install 'cuda-python<13'" in probe.hint
    path = engine()
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: old)
    with pytest.raises(SrError, match="too old for cuda-python") as e:
        TrtBackend(path)
    assert "cuda-python<13" in e.value.one_line()


def test_probe_reasons(monkeypatch):
    cases = [
        (FakeCudart(insufficient=True, driver=0), "no NVIDIA driver found"),
        (FakeCudart(count=0), "no CUDA device"),
        (FakeCudart(insufficient=True, driver=13000), "older than the CUDA runtime"),
    ]
    for cudart, text in cases:
        monkeypatch.setattr(trt_cuda, "import_cudart", lambda c=cudart: c)
        assert text in trt_cuda.probe_gpu().reason
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: FakeCudart())
    assert "no CUDA device 3 (this machine has 1)" in trt_cuda.probe_gpu(3).reason
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: None)
    assert trt_cuda.probe_gpu().reason == "cuda-python is not installed" and trt_cuda.current_gpu() is None
    broken = types.SimpleNamespace(cudaGetDeviceCount=lambda: (_ for _ in ()).throw(OSError("libcuda.so")))
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: broken)
    assert "CUDA is not usable (OSError: libcuda.so)" in trt_cuda.probe_gpu().reason
    bad_prop = FakeCudart()
    bad_prop.fail["cudaGetDeviceProperties"] = bad_prop.cudaError_t.cudaErrorInvalidDevice
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: bad_prop)
    assert "cannot read CUDA device 0" in trt_cuda.probe_gpu().reason


def test_old_cuda_python_layout_is_used_for_both_probe_and_run(monkeypatch):
    """cuda-python 12.0-12.5 has ``cuda.cudart`` and no ``cuda.bindings``: probe and buffers both use it."""
    fake = FakeCudart(name="NVIDIA RTX A4000", cc=(8, 6))
    monkeypatch.setitem(sys.modules, "cuda.bindings", None)
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    monkeypatch.setitem(sys.modules, "cuda.cudart", fake)
    import cuda

    monkeypatch.setattr(cuda, "cudart", fake, raising=False)
    assert trt_cuda.import_cudart() is fake
    assert trt_cuda.current_gpu() == trt_cuda.GpuInfo("NVIDIA RTX A4000", "8.6", 24 << 30)
    c = trt_cuda.open_cuda(0)
    assert c.kind == "cuda-python" and c.rt is fake
    c.close()


def test_set_device_failure_names_the_call(monkeypatch):
    fake = FakeCudart()
    fake.fail["cudaSetDevice"] = fake.cudaError_t.cudaErrorDevicesUnavailable
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: fake)
    with pytest.raises(SrError, match="cudaErrorDevicesUnavailable in cudaSetDevice"):
        trt_cuda.open_cuda(0)
    old = FakeCudart(insufficient=True, driver=12080)
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: old)
    with pytest.raises(SrError, match="too old for cuda-python"):
        trt_cuda.open_cuda(0)


def test_no_cuda_bindings_at_all_names_the_extra(monkeypatch):
    from sr_runtime.errors import MissingExtraError

    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: None)
    monkeypatch.setitem(sys.modules, "pycuda", None)
    monkeypatch.setitem(sys.modules, "pycuda.driver", None)
    with pytest.raises(MissingExtraError, match=r"sr-deploy\[trt\]"):
        trt_cuda.open_cuda(0)


def test_close_on_a_broken_device_still_frees(engine, gpu):
    be = TrtBackend(engine())
    gpu.fail["cudaSetDevice"] = gpu.cudaError_t.cudaErrorDevicesUnavailable
    assert be.free_memory() is None
    with pytest.raises(SrError, match="cudaErrorDevicesUnavailable in cudaSetDevice"):
        be.run(_batch(1))
    be.close()
    assert gpu.mem == {} and gpu.streams == {}
    gpu.fail.clear()
