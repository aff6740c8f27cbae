"""TrtBackend: sidecar checks before deserialising (run here, without a GPU) and engine runs (``gpu``).

The compatibility checks run before TensorRT sees the engine, so they are tested on the CPU with a real
TensorRT-RTX engine and a faked GPU. The ``gpu`` tests build an engine for the GPU present, run it through the
backend and compare with torch.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from sr_runtime.backends.trt import (
    GpuInfo,
    ShapeOutsideProfileError,
    ShapeProfile,
    export_engine,
    sidecar_path,
)
from sr_runtime.compare import Tol, compare
from sr_runtime.errors import EngineMismatchError, MissingExtraError, ModelFileError, SrError
from tests.conftest import trt_target_or_skip

TOL = {
    # NOT measured: this task had no GPU. TF32 (fp32 engines) and fp16 both keep a 10-bit mantissa; the bound
    # is the CLI's (sr_export.parity.TOL). Replace with measured figures from a GPU run.
    "float32": Tol(max_abs=1e-2, min_psnr=55.0),
    "float16": Tol(max_abs=1e-2, min_psnr=55.0),
}


def _export(tmp_path, case="SRVGGNetCompact", fp16=False):
    from sr_export.fp16 import convert_fp16
    from sr_export.onnx import export_onnx
    from tests.export.conftest import build_tiny

    model, spec, hp = build_tiny(case)
    path = tmp_path / f"{case}.onnx"
    export_onnx(model, spec, hp, path)
    if fp16:
        convert_fp16(path, tmp_path / f"{case}_fp16.onnx")
        path = tmp_path / f"{case}_fp16.onnx"
    return model, path


@pytest.fixture
def rtx_engine(tmp_path):
    """A real TensorRT-RTX engine built on the CPU (portable targets) and its sidecar."""
    pytest.importorskip("tensorrt_rtx", reason="the [trt-rtx] extra is not installed")

    _, onnx_path = _export(tmp_path)
    engine = tmp_path / "m.engine"
    export_engine(onnx_path, engine, ShapeProfile.from_tile(16, 2, 2), flavor="rtx")
    return engine


def _no_deserialize(monkeypatch):
    import tensorrt_rtx

    def refuse(*a, **k):
        raise AssertionError("the engine was deserialised before the compatibility check")

    monkeypatch.setattr(tensorrt_rtx, "Runtime", refuse)


def _fake_gpu(monkeypatch, cc="8.6"):
    import sr_runtime.backends.trt.runner as bt
    from sr_runtime.backends.trt import GpuProbe

    gpu = GpuInfo("NVIDIA GeForce RTX 3090", cc, 24 << 30)
    monkeypatch.setattr(bt, "probe_gpu", lambda device=0: GpuProbe(gpu))


def test_missing_engine_and_sidecar(tmp_path, rtx_engine):
    from sr_runtime.backends.trt import TrtBackend

    with pytest.raises(ModelFileError, match="engine file not found"):
        TrtBackend(tmp_path / "nope.engine")
    sidecar_path(rtx_engine).unlink()
    with pytest.raises(ModelFileError, match="no sidecar") as e:
        TrtBackend(rtx_engine)
    assert "sr-export --trt" in e.value.one_line()


def test_version_mismatch_is_refused_before_deserialising(rtx_engine, monkeypatch):
    from sr_runtime.backends.trt import TrtBackend

    side = json.loads(sidecar_path(rtx_engine).read_text())
    side["trt_version"] = "1.0.0.21"
    sidecar_path(rtx_engine).write_text(json.dumps(side))
    _fake_gpu(monkeypatch)
    _no_deserialize(monkeypatch)
    with pytest.raises(EngineMismatchError) as e:
        TrtBackend(rtx_engine)
    text = e.value.one_line()
    assert "built with TensorRT-RTX 1.0.0.21" in text and "rebuild" in text.lower() and "sr-export" in text


def test_compute_capability_mismatch_is_refused(rtx_engine, monkeypatch):
    from sr_runtime.backends.trt import TrtBackend

    for cc in ("7.5", "8.0", "9.0"):  # Turing, A100, H100/H200: not portable TensorRT-RTX targets
        _fake_gpu(monkeypatch, cc=cc)
        _no_deserialize(monkeypatch)
        with pytest.raises(EngineMismatchError, match=rf"compute capability 8\.6, 8\.9, 12\.0, 12\.1.*is {cc}"):
            TrtBackend(rtx_engine)


def test_flavour_mismatch_is_refused(rtx_engine, monkeypatch):
    from sr_runtime.backends.trt import TrtBackend

    side = json.loads(sidecar_path(rtx_engine).read_text())
    side["flavor"] = "tensorrt"
    sidecar_path(rtx_engine).write_text(json.dumps(side))
    import sr_runtime.backends.trt.runner as bt
    from sr_runtime.backends.trt import TrtFlavor

    monkeypatch.setattr(bt, "load_flavor", lambda name: TrtFlavor("rtx", sys.modules["tensorrt_rtx"]))
    _fake_gpu(monkeypatch)
    _no_deserialize(monkeypatch)
    with pytest.raises(EngineMismatchError, match="built with TensorRT .* this is TensorRT-RTX"):
        TrtBackend(rtx_engine)


def test_no_gpu_is_a_clear_error(rtx_engine, monkeypatch):
    import sr_runtime.backends.trt.runner as bt
    from sr_runtime.backends.trt import GpuProbe, TrtBackend

    monkeypatch.setattr(bt, "probe_gpu", lambda device=0: GpuProbe(None))
    with pytest.raises(SrError, match="no CUDA device") as e:
        TrtBackend(rtx_engine)
    assert "--backend ort" in e.value.one_line()
    monkeypatch.setattr(bt, "probe_gpu", lambda device=0: GpuProbe(None, "no NVIDIA driver found", "Install one."))
    with pytest.raises(SrError, match="cannot run the TensorRT engine: no NVIDIA driver found. Install one"):
        TrtBackend(rtx_engine)


def test_missing_flavour_names_the_extra(rtx_engine, monkeypatch):
    from sr_runtime.backends.trt import TrtBackend

    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    with pytest.raises(MissingExtraError) as e:
        TrtBackend(rtx_engine)
    assert "sr-deploy[trt-rtx]" in e.value.one_line()


def test_corrupt_sidecar(rtx_engine):
    from sr_runtime.backends.trt import TrtBackend

    sidecar_path(rtx_engine).write_text("{not json")
    with pytest.raises(ModelFileError, match="unreadable sidecar"):
        TrtBackend(rtx_engine)


# ------------------------------------------------------------------------------------------- on a GPU
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["float32", "float16"])
@pytest.mark.parametrize("case", ["RRDBNet", "SRVGGNetCompact", "RRDBNet-x2"])
def test_engine_matches_torch(case, precision, tmp_path):
    import torch

    from sr_export.parity import parity_image, random_input
    from sr_runtime.backends.trt import TrtBackend

    trt_target_or_skip("auto")
    model, onnx_path = _export(tmp_path, case, fp16=precision == "float16")
    from sr_runtime.info import read_onnx_info

    info = read_onnx_info(onnx_path)
    m = info.size_multiple
    engine = tmp_path / "m.engine"
    export_engine(onnx_path, engine, ShapeProfile.from_tile(32, 4, 2, 3, m), compute_capabilities=["current"])
    with TrtBackend(engine) as be:
        assert be.info.arch == info.arch and "on" in be.provider
        for x in (parity_image(40, 24), random_input(2, 8 * m, 16 * m)):
            y = be.run(x)
            with torch.no_grad():
                ref = model(torch.from_numpy(x)).numpy()
            r = compare(f"trt {precision} {case} {x.shape}", y, ref, TOL[precision])
            print(r.line())
            assert r.passed, r.line()
        y2 = be.run(x)
        assert y2 is not y and not np.shares_memory(y, y2)  # caller-owned results
        with pytest.raises(ShapeOutsideProfileError, match="outside the engine's profile"):
            be.run(np.zeros((1, 3, 48, 48), np.float32))
    with pytest.raises(SrError, match="closed"):
        be.run(x)


@pytest.mark.gpu
def test_rtx_runtime_cache_is_saved(tmp_path):
    trt_target_or_skip("rtx", portable=True)  # a portable engine: not on SM90 (H100/H200)
    from sr_runtime.backends.trt import TrtBackend

    _, onnx_path = _export(tmp_path)
    engine = tmp_path / "m.engine"
    export_engine(onnx_path, engine, ShapeProfile.from_tile(16, 0, 1), flavor="rtx")
    with TrtBackend(engine) as be:
        be.run(np.zeros((1, 3, 16, 16), np.float32))
    assert list(tmp_path.glob("m.engine.sm*.rtcache"))
