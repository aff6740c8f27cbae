"""ONNX Runtime backend: parity with torch per arch (whole, tiled, batched, fp16), errors, dispatch.

TensorRT engines are tested in test_trt_backend.py (gpu); here only the dispatch to them, via mocks.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from sr_runtime.backends import open_backend
from sr_runtime.backends.base import Backend
from sr_runtime.backends.ort import OrtBackend
from sr_runtime.compare import Tol, compare
from sr_runtime.errors import ModelFileError, OutOfMemory, SrError
from sr_runtime.info import read_onnx_metadata
from sr_runtime.tiling import pad_input, run_tiled
from tests.runtime.conftest import MODEL_CASES

TOL = {
    ("ort", "fp32"): Tol(max_abs=1e-5, min_psnr=120),
    ("ort-tiled", "fp32"): Tol(max_abs=1e-5, min_psnr=120),
    ("ort", "fp16"): Tol(max_abs=5e-4, min_psnr=80),
    ("ort", "fp16-io16"): Tol(max_abs=3e-3, min_psnr=65),
}
"""Measured on the tiny models (2 CPU cores, onnxruntime 1.32, torch 2.13), random 2x3x24x20 input:
fp32 whole max_abs <= 1.2e-7 (PSNR >= 155 dB); fp32 tiled (tile 8, pad = radius, batch 3) vs torch whole
image <= 7.5e-8 (>= 154 dB); fp16 weights with fp32 I/O <= 7.8e-5 (>= 93 dB); fp16 weights and fp16 I/O
<= 7.3e-4 (>= 76 dB, SRVGGNetCompact: the fp16 input quantisation passes through its skip)."""

CASES = list(MODEL_CASES)


def check(report):
    assert report.passed, report.line()


@pytest.mark.parametrize("case", CASES)
def test_ort_fp32_matches_torch(case, onnx_model, torch_ref):
    x = np.random.default_rng(0).random((2, 3, 24, 20)).astype(np.float32)
    with OrtBackend(onnx_model(case)) as be:
        assert isinstance(be, Backend)
        assert be.provider == "CPUExecutionProvider"
        assert be.info.arch == MODEL_CASES[case][0]
        y = be.run(x)
        assert y.dtype == np.float32 and y.shape == (2, 3, 24 * be.info.scale, 20 * be.info.scale)
        y2 = be.run(x)
        assert y2 is not y and not np.shares_memory(y, y2), "outputs must be caller-owned"
    check(compare(f"{case} ort fp32", y, torch_ref(case)(x), TOL[("ort", "fp32")]))


@pytest.mark.parametrize("case", CASES)
def test_ort_tiled_batched_matches_torch_whole(case, onnx_model, torch_ref):
    """Tiled + batched ORT output equals the torch whole-image output within fp32 noise (pad = radius)."""
    img = np.random.default_rng(1).random((37, 29, 3)).astype(np.float32)
    with OrtBackend(onnx_model(case)) as be:
        info = be.info
        out = run_tiled(img, be.run, scale=info.scale, tile=8, pad=info.receptive_radius, batch=3,
                        size_multiple=info.size_multiple)
    src = pad_input(img, 0, info.size_multiple)
    ref = torch_ref(case)(src.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
    ref = np.clip(ref[: 37 * info.scale, : 29 * info.scale], 0, 1)
    check(compare(f"{case} ort tiled", out, ref, TOL[("ort-tiled", "fp32")]))


@pytest.mark.parametrize("case", ["SRVGGNetCompact", "RRDBNet"])
@pytest.mark.parametrize("io", ["float32", "float16"])
def test_ort_fp16_models(case, io, onnx_model, torch_ref):
    x = np.random.default_rng(0).random((2, 3, 24, 20)).astype(np.float32)
    with OrtBackend(onnx_model(case, "float16", io)) as be:
        assert be.info.precision == "float16" and be.info.io_dtype == io
        y = be.run(x)
    assert y.dtype == np.float32
    check(compare(f"{case} ort fp16 io {io}", y, torch_ref(case)(x),
                  TOL[("ort", "fp16" if io == "float32" else "fp16-io16")]))


def test_metadata_reader_matches_onnx(onnx_model):
    onnx = pytest.importorskip("onnx")

    path = onnx_model("RRDBNet-x2")
    expect = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert read_onnx_metadata(path) == expect
    with OrtBackend(path) as be:
        assert be.info.size_multiple == 2 and be.info.scale == 2


def test_bad_batch_shape(onnx_model):
    with OrtBackend(onnx_model("RRDBNet-x2")) as be:
        with pytest.raises(SrError, match="multiples of 2"):
            be.run(np.zeros((1, 3, 5, 6), np.float32))
        with pytest.raises(SrError, match="3 channels"):
            be.run(np.zeros((1, 1, 4, 4), np.float32))


# --------------------------------------------------------------------------- errors
def test_pth_is_refused_with_the_export_hint(tmp_path):
    pth = tmp_path / "model.pth"
    pth.write_bytes(b"PK\x03\x04")
    for opener in (lambda: OrtBackend(pth), lambda: open_backend(pth)):
        with pytest.raises(ModelFileError) as err:
            opener()
        assert err.value.one_line() == f"{pth}: sr-run runs exported models; run 'sr-export model.pth' first."


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 10, b"\x80\x02}q\x00."])
def test_corrupt_onnx(tmp_path, content):
    p = tmp_path / "bad.onnx"
    p.write_bytes(content)
    with pytest.raises(ModelFileError, match="bad.onnx"):
        OrtBackend(p)


@pytest.mark.parametrize("keep", [0.5, 0.999, 16])
def test_truncated_onnx_names_the_file(tmp_path, onnx_model, keep):
    """A cut-off download is a one-line ModelFileError naming the file (the old protobuf walker let a
    BufferError escape)."""
    data = onnx_model("RRDBNet-x2").read_bytes()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
    for reader in (read_onnx_metadata, OrtBackend, open_backend):
        with pytest.raises(ModelFileError) as err:
            reader(p)
        line = err.value.one_line()
        assert line.startswith(f"{p}: ") and "\n" not in line and "sr-export" in line


def test_ort_backend_declares_the_protocol(onnx_model):
    with OrtBackend(onnx_model("SRVGGNetCompact")) as be:
        assert be.window_shapes == "any" and be.max_shape is None and be.free_memory() is None
        assert not be.reduced_precision
        assert repr(be).startswith("OrtBackend(") and "CPUExecutionProvider" in repr(be)
    with OrtBackend(onnx_model("SRVGGNetCompact", "float16")) as be:
        assert be.reduced_precision


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        open_backend(tmp_path / "nope.onnx")
    (tmp_path / "m.xyz").write_bytes(b"x")
    with pytest.raises(ModelFileError, match="unknown model file type"):
        open_backend(tmp_path / "m.xyz")


def test_onnx_without_metadata_is_probed(tmp_path):
    """A graph without sr-deploy metadata is probed (issue 18): an Identity on 1x3x4x4 is a fixed-shape x1."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 4, 4])])
    p = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(p))
    with OrtBackend(p) as be:
        assert (be.info.scale, be.info.arch, be.window_shapes, be.max_shape) == (1, "unknown", "fixed", (1, 3, 4, 4))
    with pytest.raises(SrError, match="--scale 4 was given, but the model upscales x1"):
        OrtBackend(p, scale=4)


def test_gpu_request_on_cpu_build_is_an_error(onnx_model):
    ort = pytest.importorskip("onnxruntime")

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(SrError, match=r"ort-gpu") as err:
        OrtBackend(onnx_model("SRVGGNetCompact"), device="cuda")
    assert "CUDAExecutionProvider is not available" in err.value.one_line()
    with pytest.raises(SrError, match="CUDAExecutionProvider"):
        open_backend(onnx_model("SRVGGNetCompact"), "ort-cuda")
    assert "CUDA" not in open_backend(onnx_model("SRVGGNetCompact"), "auto").provider  # a CPU backend


def test_silent_fallback_is_caught(onnx_model, monkeypatch):
    """ORT may create a session without the asked-for provider: that must be an error, not a CPU run."""
    ort = pytest.importorskip("onnxruntime")

    real = ort.InferenceSession
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession",
                        lambda path, sess_options=None, providers=None: real(path, sess_options=sess_options,
                                                                             providers=["CPUExecutionProvider"]))
    with pytest.raises(SrError, match="asked for CUDAExecutionProvider but ONNX Runtime runs CPUExecutionProvider"):
        OrtBackend(onnx_model("SRVGGNetCompact"), device="cuda")
    assert "CUDA" not in open_backend(onnx_model("SRVGGNetCompact"), "auto").provider  # a CPU backend


def test_ort_oom_becomes_out_of_memory(onnx_model):
    with OrtBackend(onnx_model("SRVGGNetCompact")) as be:
        class Boom:
            def run(self, *a, **k):
                raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for "
                                   "requested buffer of size 123456")

        be._session = Boom()
        with pytest.raises(OutOfMemory):
            be.run(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(SrError, match="closed"):
        be.run(np.zeros((1, 3, 4, 4), np.float32))


# --------------------------------------------------------------------------- dispatch to TensorRT (mocked)
@pytest.fixture
def fake_trt(monkeypatch):
    calls: dict[str, object] = {}

    class FakeTrt:
        def __init__(self, path, device=0):
            calls["engine"] = Path(path)

    from sr_runtime.backends.trt import profile_for

    def cached_engine(onnx_path, profile, *, flavor="auto", cache_dir=None):
        calls["built"] = (Path(onnx_path), profile, flavor)
        return Path("/cache/x.engine")

    mod = types.ModuleType("sr_runtime.backends.trt")
    mod.TrtBackend, mod.cached_engine, mod.profile_for = FakeTrt, cached_engine, profile_for
    monkeypatch.setitem(sys.modules, "sr_runtime.backends.trt", mod)
    return calls


def test_engine_suffix_dispatches_to_trt(tmp_path, fake_trt):
    eng = tmp_path / "m.engine"
    eng.write_bytes(b"x")
    open_backend(eng)
    assert fake_trt["engine"] == eng
    with pytest.raises(SrError, match="runs .onnx files"):
        open_backend(eng, "ort")


def test_trt_with_onnx_builds_a_cached_engine(onnx_model, fake_trt):
    open_backend(onnx_model("RRDBNet-x2"), "trt", tile=128, tile_pad=12, batch=4)
    assert fake_trt["built"][1].max == (4, 3, 152, 152)
    open_backend(onnx_model("RRDBNet-x1"), "trt", tile=130, tile_pad=10, batch=2)
    profile = fake_trt["built"][1]  # rounded as the tiler rounds: core 128, pad 12
    assert profile.min == (1, 3, 4, 4) and profile.max == (2, 3, 152, 152) and fake_trt["built"][2] == "auto"
    assert fake_trt["engine"] == Path("/cache/x.engine")


def test_unknown_backend(onnx_model):
    with pytest.raises(SrError, match="unknown backend"):
        open_backend(onnx_model("SRVGGNetCompact"), "cuda")  # type: ignore[arg-type]
