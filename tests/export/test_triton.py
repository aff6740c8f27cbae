"""Triton model-repository entries: config.pbtxt parsed with Triton's own ModelConfig schema (tritonclient)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from sr_runtime.errors import SrError


def _model_config_pb2():
    """tritonclient's generated ``model_config_pb2``, loaded by file path: importing ``tritonclient.grpc``
    itself needs grpcio, which the schema does not."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tritonclient is not installed (dev extra)")
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    if not path.is_file():
        pytest.skip(f"tritonclient has no {path.name}")
    mod_spec = importlib.util.spec_from_file_location("_triton_model_config_pb2", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


def _parse(text: str):
    from google.protobuf import text_format

    pb2 = _model_config_pb2()
    return pb2, text_format.Parse(text, pb2.ModelConfig())


@pytest.mark.parametrize("fp16", [False, True])
def test_onnx_entry_matches_the_model(exported, tmp_path, fp16):
    import onnx

    from sr_export.fp16 import convert_fp16
    from sr_export.triton import write_triton_entry
    from sr_runtime.info import read_onnx_info

    _, path = exported("RRDBNet-x2")
    if fp16:
        half = tmp_path / "h.onnx"
        convert_fp16(path, half, io_dtype="float16")
        path = half
    info = read_onnx_info(path)
    entry = write_triton_entry(tmp_path / "repo", "my model/x2", path, info, max_batch_size=4)
    assert entry == tmp_path / "repo" / "my_model_x2"
    assert (entry / "1" / "model.onnx").read_bytes() == path.read_bytes()
    pb2, cfg = _parse((entry / "config.pbtxt").read_text())
    assert cfg.name == "my_model_x2" and cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 4
    assert cfg.HasField("dynamic_batching")
    proto = onnx.load(str(path))
    dtype = {onnx.TensorProto.FLOAT: pb2.TYPE_FP32, onnx.TensorProto.FLOAT16: pb2.TYPE_FP16}
    for cfg_io, onnx_io in ((cfg.input, proto.graph.input), (cfg.output, proto.graph.output)):
        assert [t.name for t in cfg_io] == [t.name for t in onnx_io]
        for t, o in zip(cfg_io, onnx_io):
            assert t.data_type == dtype[o.type.tensor_type.elem_type]
            onnx_dims = [d.dim_value if d.HasField("dim_value") else -1 for d in o.type.tensor_type.shape.dim]
            assert [-1, *t.dims] == onnx_dims  # Triton's batch axis is implicit (max_batch_size > 0)
    assert cfg.parameters["sr.scale"].string_value == "2"
    assert cfg.parameters["sr.size_multiple"].string_value == "2"
    assert cfg.input[0].data_type == (pb2.TYPE_FP16 if fp16 else pb2.TYPE_FP32)
    from sr_export.triton import _dir_mode

    assert entry.stat().st_mode & 0o777 == _dir_mode()  # not mkdtemp's 0o700: Triton may run as another user


def test_plan_entry_and_batch_cap(exported, tmp_path):
    from sr_export.triton import write_triton_entry
    from sr_runtime.info import read_onnx_info

    _, path = exported("SRVGGNetCompact")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan bytes")
    sidecar = {"flavor": "tensorrt", "profile": {"max": [2, 3, 64, 64]}}
    entry = write_triton_entry(tmp_path / "repo", "m", engine, read_onnx_info(path), max_batch_size=8,
                               sidecar=sidecar)
    assert (entry / "1" / "model.plan").read_bytes() == b"plan bytes"
    _, cfg = _parse((entry / "config.pbtxt").read_text())
    assert cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 2  # capped at the profile's max N
    # replacing an entry keeps exactly one, with the new content
    entry = write_triton_entry(tmp_path / "repo", "m", path, read_onnx_info(path), max_batch_size=1)
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["m"]
    assert sorted(p.name for p in (entry / "1").iterdir()) == ["model.onnx"]


def test_rtx_engines_are_refused(exported, tmp_path):
    from sr_export.triton import write_triton_entry
    from sr_runtime.info import read_onnx_info

    _, path = exported("SRVGGNetCompact")
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    with pytest.raises(SrError, match="not TensorRT-RTX"):
        write_triton_entry(tmp_path / "repo", "m", engine, read_onnx_info(path), max_batch_size=1,
                           sidecar={"flavor": "rtx", "profile": {"max": [1, 3, 8, 8]}})
    assert not (tmp_path / "repo" / "m").exists()
    with pytest.raises(SrError, match="parent folder"):
        write_triton_entry(tmp_path / "no" / "repo", "m", path, read_onnx_info(path), max_batch_size=1)
