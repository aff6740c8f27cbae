"""The OpenVINO backend: parity with ONNX Runtime fp32, the protocol features, precision, int8 (QDQ) files, and
``--backend auto``'s choice. Skipped with a reason where the ``openvino`` extra is missing (CI installs it)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from sr_runtime.api import Upscaler
from sr_runtime.backends import auto_choice, open_backend
from sr_runtime.backends.base import Backend
from sr_runtime.errors import MissingExtraError, SrError
from sr_runtime.info import ModelInfo

if importlib.util.find_spec("openvino") is None:
    pytest.skip("the openvino extra is not installed: pip install -e '.[openvino]'", allow_module_level=True)

from sr_runtime.backends import openvino as ovb  # noqa: E402 - after the skip

pytestmark = pytest.mark.openvino  # --backend auto keeps its real choice here (tests/conftest.py)

TOL_LEVELS = {"float32": 1}
"""Max |OpenVINO - ONNX Runtime| in 8-bit levels, fp32 (measured: 0 on the tiny models, 3.6e-6 raw on
realesr-animevideov3)."""


def _image(h: int = 37, w: int = 29, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("case", ["SRVGGNetCompact", "RRDBNet-x2"])
def test_parity_with_ort_fp32_whole_and_tiled(case, onnx_model):
    path = onnx_model(case)
    img = _image()
    with open_backend(path, "ort", threads=1) as ort_be, open_backend(path, "openvino", threads=1) as ov_be:
        assert isinstance(ov_be, Backend) and ov_be.window_shapes == "any" and not ov_be.reduced_precision
        assert ov_be.provider.startswith("OpenVINO ") and "(f32, latency, 1 threads)" in ov_be.provider
        assert ov_be.info == ort_be.info
        ref = Upscaler(ort_be, tile=0, pre_pad=0).enhance(img)[0]
        whole = Upscaler(ov_be, tile=0, pre_pad=0).enhance(img)[0]
        pad = ov_be.info.receptive_radius
        tiled = Upscaler(ov_be, tile=12, tile_pad=pad, pre_pad=0, batch=3).enhance(img)[0]
    assert int(np.abs(whole.astype(int) - ref).max()) <= TOL_LEVELS["float32"]
    assert int(np.abs(tiled.astype(int) - ref).max()) <= TOL_LEVELS["float32"]


def test_reduced_precision_follows_what_the_cpu_reports(onnx_model, monkeypatch):
    assert ovb.reduced_precision_for(["FP32", "INT8"]) == "f32"
    assert ovb.reduced_precision_for(["BF16", "FP32", "INT8"]) == "bf16"
    assert ovb.reduced_precision_for(["FP16", "FP32"]) == "f16"
    report = ovb.cpu_report()
    assert report["version"] and "FP32" in report["capabilities"]
    with open_backend(onnx_model("SRVGGNetCompact"), "openvino", fp16=True) as be:
        want = ovb.reduced_precision_for(report["capabilities"])
        assert be.precision_hint == want and f"({want}, " in be.provider
        assert be.reduced_precision == (want != "f32")  # then the tiler redoes NaN tiles in fp32


def test_fp16_file_and_fixed_input_and_closed(onnx_model, tmp_path):
    import onnx

    with open_backend(onnx_model("SRVGGNetCompact", "float16", "float16"), "openvino") as be:
        assert be.reduced_precision and be.info.io_dtype == "float16"
        assert be.run(np.zeros((1, 3, 8, 8), np.float32)).dtype == np.float32
    m = onnx.load(str(onnx_model("SRVGGNetCompact")))
    for dim, v in zip(m.graph.input[0].type.tensor_type.shape.dim, (1, 3, 16, 16)):
        dim.dim_value = v
    fixed = tmp_path / "fixed.onnx"
    onnx.save(m, str(fixed))
    be = open_backend(fixed, "openvino")
    assert be.window_shapes == "fixed" and be.max_shape == (1, 3, 16, 16)
    be.close()
    with pytest.raises(SrError, match="closed"):
        be.run(np.zeros((1, 3, 16, 16), np.float32))


def test_int8_qdq_onnx_runs(onnx_model, tmp_path):
    """A QDQ int8 ONNX (what the int8 export writes) loads with no new flags; precision comes from its metadata."""
    quant = pytest.importorskip("onnxruntime.quantization", reason="onnxruntime's quantization tools missing")
    import onnx

    src = onnx_model("SRVGGNetCompact")
    rng = np.random.default_rng(0)

    class Reader(quant.CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": rng.random((1, 3, 16, 16), dtype=np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.items, None)

    qdq = tmp_path / "int8.onnx"
    quant.quantize_static(str(src), str(qdq), Reader(), quant_format=quant.QuantFormat.QDQ,
                          activation_type=quant.QuantType.QUInt8, weight_type=quant.QuantType.QInt8)
    m = onnx.load(str(qdq))
    info = ModelInfo.from_metadata_props({p.key: p.value for p in onnx.load(str(src)).metadata_props})
    del m.metadata_props[:]
    for k, v in info.replace(precision="int8").to_metadata_props().items():  # type: ignore[arg-type]
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(qdq))
    img = _image(24, 20)
    with open_backend(qdq, "openvino") as be, open_backend(src, "ort") as ref:
        assert be.info.precision == "int8" and any(n.op_type == "QuantizeLinear" for n in m.graph.node)
        got = Upscaler(be, tile=0, pre_pad=0).enhance(img)[0]
        want = Upscaler(ref, tile=0, pre_pad=0).enhance(img)[0]
    assert got.shape == want.shape and np.abs(got.astype(int) - want).mean() < 8


def test_auto_picks_openvino_on_cpu_and_falls_back(onnx_model, monkeypatch):
    path = onnx_model("SRVGGNetCompact")
    assert auto_choice() == "openvino"
    assert isinstance(open_backend(path, "auto"), ovb.OpenVinoBackend)

    def refuse(*a, **k):
        raise ovb.NotLoadable("OpenVINO cannot load the model (test)")

    monkeypatch.setattr(ovb, "OpenVinoBackend", refuse)
    assert open_backend(path, "auto").provider == "CPUExecutionProvider"


def test_missing_extra_names_it(monkeypatch, onnx_model):
    import builtins

    real = builtins.__import__

    def no_openvino(name, *a, **k):
        if name == "openvino":
            raise ImportError("no openvino")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    assert not ovb.available() and ovb.cpu_report() == {}
    with pytest.raises(MissingExtraError, match="openvino"):
        ovb.OpenVinoBackend(onnx_model("SRVGGNetCompact"))
    with pytest.raises(SrError, match="hint"):
        monkeypatch.setattr(builtins, "__import__", real)
        ovb.OpenVinoBackend(onnx_model("SRVGGNetCompact"), hint="fast")  # type: ignore[arg-type]


def test_openvino_import_sends_nothing(tmp_path):
    """sr-run's import of OpenVINO leaves its model converter (and its telemetry thread and fork) out."""
    import subprocess
    import sys

    code = ("import threading, sys; from sr_runtime.backends.openvino import import_openvino; ov = import_openvino(); "
            "ov.Core(); print(len(threading.enumerate()), 'openvino.tools.ovc' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["1", "False"], r.stderr[-500:]


def test_corrupt_and_foreign_models_fail_as_on_ort(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file at all")
    with pytest.raises(SrError, match="not a readable ONNX model"):
        open_backend(bad, "openvino")
    if importlib.util.find_spec("tests.corpus.models") is not None:
        from tests.corpus.models import TINY_ONNX

        with open_backend(TINY_ONNX, "openvino") as be:
            assert be.info.scale >= 1
