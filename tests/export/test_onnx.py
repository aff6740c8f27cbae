"""ONNX export over the registry: checker, stable names, dynamic N/H/W, metadata round trip, both exporters."""

from __future__ import annotations

import numpy as np
import pytest

from sr_runtime.compare import Tol, compare
from tests.export.conftest import build_tiny, registry_cases

TOL = {
    # measured on the tiny models (tests/export/conftest.py): torchscript and dynamo both <= 1.2e-7, >= 155 dB
    ("ort", "float32"): Tol(max_abs=1e-6, min_psnr=130.0),
}


@pytest.mark.parametrize("case", registry_cases())
def test_export_structure_and_metadata(case, exported):
    import onnx

    from sr_runtime.info import read_onnx_info

    model, path = exported(case)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["batch", 3, "out_height",
                                                                                 "out_width"]
    info = read_onnx_info(path)  # the torch-free reader sr-run uses
    _, spec, hp = build_tiny(case)
    assert info.arch == spec.id and info.scale == spec.scale(hp) and info.hparams == hp
    assert info.receptive_radius == spec.receptive_radius(hp) and info.size_multiple == spec.size_multiple(hp)
    assert (info.exporter, info.opset, info.precision, info.io_dtype) == ("torchscript", 17, "float32", "float32")
    assert info.value_range == (0.0, 1.0) and info.source_sha256 == "0" * 64 and info.version


@pytest.mark.parametrize("case", registry_cases())
def test_dynamic_batch_and_size(case, exported):
    """Shapes the tracer never saw (batch 3, non-square, odd multiples) run and match torch."""
    import onnxruntime as ort
    import torch

    model, path = exported(case)
    _, spec, hp = build_tiny(case)
    m = spec.size_multiple(hp)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(3, 3, 5 * m, 7 * m), (1, 3, 2 * m, 9 * m)]:
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        (y,) = sess.run(None, {"input": x})
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        r = compare(f"{case} {shape}", y, ref, TOL[("ort", "float32")])
        assert r.passed, r.line()


def test_dynamo_exporter_srvgg(tmp_path):
    """The dynamo exporter (fast on the compact net): same names, named dims, metadata and parity."""
    import onnx

    from sr_export.onnx import export_onnx
    from sr_export.parity import check

    model, spec, hp = build_tiny("SRVGGNetCompact")
    path = tmp_path / "d.onnx"
    info = export_onnx(model, spec, hp, path, exporter="dynamo")
    assert (info.exporter, info.opset) == ("dynamo", 18)
    proto = onnx.load(str(path))
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [
        "batch", 3, "height", "width"]
    for r in check(model, path, tol=TOL):
        assert r.passed, r.line()


@pytest.mark.slow
@pytest.mark.parametrize("case", registry_cases())
def test_dynamo_exporter_registry(case, tmp_path):
    from sr_export.onnx import export_onnx
    from sr_export.parity import check

    model, spec, hp = build_tiny(case)
    export_onnx(model, spec, hp, tmp_path / "d.onnx", exporter="dynamo")
    for r in check(model, tmp_path / "d.onnx", tol=TOL):
        assert r.passed, r.line()


def test_export_failure_leaves_nothing(tmp_path, monkeypatch):
    import torch

    from sr_export.onnx import export_onnx

    model, spec, hp = build_tiny("SRVGGNetCompact")

    def boom(*a, **k):
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", boom)
    with pytest.raises(RuntimeError):
        export_onnx(model, spec, hp, tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


def test_unknown_exporter(tmp_path):
    from sr_export.onnx import export_onnx
    from sr_runtime.errors import SrError

    model, spec, hp = build_tiny("SRVGGNetCompact")
    with pytest.raises(SrError, match="unknown ONNX exporter"):
        export_onnx(model, spec, hp, tmp_path / "x.onnx", exporter="magic")  # type: ignore[arg-type]
