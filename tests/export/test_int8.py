"""int8 export (sr_export/int8.py, sr_train/quant.py, sr_train/qat.py): the QDQ file, its metadata and quality
gate, sr-run on it (ORT; OpenVINO when installed), seam-free tiles, QAT, and one line per bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

import onnx  # noqa: E402

from sr_export.pipeline import ExportOptions, export  # noqa: E402
from sr_runtime.info import read_onnx_info  # noqa: E402
from tests.export.conftest import tiny_checkpoint  # noqa: E402
from tests.train.trainutil import write_gt_folder  # noqa: E402

TOL_TILED_LEVELS = 1
"""Tiled vs whole on the int8 file, in 8-bit levels: the quantizers are static and elementwise, so only a
float-accumulation difference between window shapes can move a value across a rounding step."""


@pytest.fixture(scope="module")
def calib(tmp_path_factory) -> Path:
    return write_gt_folder(tmp_path_factory.mktemp("calib"), n=6, h=40, w=48)


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory, calib):
    """A tiny SRVGGNetCompact checkpoint exported to int8 once for the module: ``(result, checkpoint)``."""
    root = tmp_path_factory.mktemp("int8")
    ckpt = tiny_checkpoint(root)
    (root / "out").mkdir()
    return export(ckpt, ExportOptions(output=root / "out", int8=True, calib=calib), say=lambda s: None), ckpt


def test_qdq_file_checks_and_carries_metadata(int8_model):
    result, _ = int8_model
    assert result.onnx.name == "tiny_int8.onnx"
    proto = onnx.load(str(result.onnx))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 13
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") == 3 and ops.count("DequantizeLinear") == 6  # 3 of 4 convs int8
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) == 3
    info = read_onnx_info(result.onnx)
    assert info.precision == "int8" and info.io_dtype == "float32"
    meta = info.extra["int8"]
    assert meta["method"] == "ptq" and meta["fp32"] == ["body.6"]
    assert meta["calibration"]["images"] == 6 and meta["calibration"]["heldout_images"] == 1
    assert meta["quality"]["psnr_db"] >= 40.0
    (report,) = result.parity
    assert report.passed and report.psnr >= 40.0


def test_runs_through_sr_run_on_ort_with_seam_free_tiles(int8_model, tmp_path, rgb_image):
    import cv2

    from sr_runtime.backends.ort import OrtBackend
    from sr_runtime.run import RunOptions, upscale_files
    from sr_runtime.tiling import TileSettings, run_tiled

    result, _ = int8_model
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), rgb_image(37, 45))
    upscale_files(src, tmp_path / "out.png", RunOptions(model=result.onnx, backend="ort"))
    assert cv2.imread(str(tmp_path / "out.png")).shape == (148, 180, 3)

    with OrtBackend(result.onnx, device="cpu") as b:
        x = rgb_image(37, 45).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        whole = b.run(x)
        r = b.info.receptive_radius
        tiled = run_tiled(x[0].transpose(1, 2, 0), lambda t: b.run(t), TileSettings(tile=16, pad=r, scale=4))
    diff = np.abs(np.round(np.clip(whole[0].transpose(1, 2, 0), 0, 1) * 255) - np.round(np.clip(tiled, 0, 1) * 255))
    assert diff.max() <= TOL_TILED_LEVELS


def test_runs_on_openvino_like_ort(int8_model):
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("the openvino extra is not installed")
    from sr_runtime.backends import openvino as ov_backend
    from sr_runtime.backends.ort import OrtBackend

    result, _ = int8_model
    x = np.random.default_rng(0).random((1, 3, 24, 20), dtype=np.float32)
    with OrtBackend(result.onnx, device="cpu") as a, ov_backend.OpenVinoBackend(result.onnx) as b:
        assert b.info.precision == "int8"
        diff = np.abs(a.run(x) - b.run(x))
    assert diff.max() * 255 <= 4 and diff.mean() * 255 <= 0.5  # int8 kernels vs float conv on dequantized values


def test_quality_gate_refuses_with_one_line(calib, tmp_path):
    from sr_export.cli import main

    ckpt = tiny_checkpoint(tmp_path)
    r = CliRunner().invoke(main, [str(ckpt), "--int8", "--calib", str(calib), "--min-psnr", "99",
                                  "-o", str(tmp_path / "q.onnx")])
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "below --min-psnr 99 dB" in lines[0] and "Nothing was written" in lines[0]
    assert not (tmp_path / "q.onnx").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sr-export-")]


def _bad(tmp_path: Path, calib: Path | None, *extra: str, model: Path | None = None):
    from sr_export.cli import main

    ckpt = model or tiny_checkpoint(tmp_path)
    args = [str(ckpt), "--int8", *(["--calib", str(calib)] if calib else []), *extra, "-o", str(tmp_path / "o.onnx")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output and not (tmp_path / "o.onnx").exists()
    return lines[0]


def test_bad_calibration_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no images" in _bad(tmp_path, empty)
    texts = tmp_path / "texts"
    texts.mkdir()
    for i in range(6):
        (texts / f"notes{i}.txt").write_text("not an image")
    assert "has no images" in _bad(tmp_path, texts)
    few = write_gt_folder(tmp_path / "few", n=3)
    assert "too small: 3 image(s)" in _bad(tmp_path, few)
    assert "calibration folder not found" in _bad(tmp_path, tmp_path / "missing")
    broken = write_gt_folder(tmp_path / "broken", n=5)
    (broken / "img02.png").write_bytes(b"not a png")
    assert "img02.png" in _bad(tmp_path, broken)
    assert "needs --calib" in _bad(tmp_path, None)


def test_fp16_asked_for_int8(tmp_path, calib, exported):
    assert "choose one" in _bad(tmp_path, calib, "--fp16")
    _, fp16_onnx = exported("SRVGGNetCompact", fp16=True)
    assert "not an fp16 ONNX model" in _bad(tmp_path, calib, model=fp16_onnx)


def test_qat_runs_and_exports(tmp_path, calib):
    """A few QAT iterations from a float checkpoint: the checkpoint keeps the official keys plus the int8 entry,
    and sr-export --int8 exports its learned ranges (no calibration) measured against the teacher."""
    import torch
    import yaml

    from sr_train.checkpoint import load_generator
    from sr_train.config import CONFIG_DIR, from_yaml
    from sr_train.engine.trainer import Trainer
    from sr_train.qat import read_int8_entry

    teacher = tiny_checkpoint(tmp_path)
    cfg = yaml.safe_load((CONFIG_DIR / "tiny_cpu.yaml").read_text())
    cfg["datasets"]["train"]["dataroot_gt"] = str(write_gt_folder(tmp_path / "gt", n=4))
    cfg["path"] = {"pretrain_network_g": str(teacher)}
    cfg["train"].update(total_iter=3, ema_decay=0, queue_size=0)
    cfg["network_g"] = {"type": "SRVGGNetCompact", "num_feat": 8, "num_conv": 2, "upscale": 4, "act_type": "prelu"}
    cfg["qat"] = {"target": "teacher"}
    cfg["logger"]["save_checkpoint_freq"] = 3
    (tmp_path / "qat.yaml").write_text(yaml.safe_dump(cfg))
    trainer = Trainer(from_yaml(tmp_path / "qat.yaml"), tmp_path / "run", progress=False)
    trainer.fit()
    ckpt = tmp_path / "run" / "models" / "net_g_latest.pth"
    g = load_generator(ckpt)  # official keys only, strict load
    assert not [k for k in g.state_dict if ".act." in k]
    entry = read_int8_entry(ckpt)
    assert entry is not None and entry["teacher"]["sha256"] and len(entry["ranges"]) == 3
    assert torch.load(ckpt, weights_only=True)["int8"]["recipe"]["fp32_convs"] == [-1]
    lines: list[str] = []
    result = export(ckpt, ExportOptions(output=tmp_path / "qat_int8.onnx", int8=True, calib=calib), say=lines.append)
    assert any("learned by quantization-aware training" in s for s in lines)
    meta = read_onnx_info(result.onnx).extra["int8"]
    assert meta["method"] == "qat" and meta["quality"]["psnr_db"] >= 40.0


def test_qat_needs_a_float_checkpoint(tmp_path):
    import yaml

    from sr_train.config import CONFIG_DIR, from_yaml
    from sr_train.engine.trainer import Trainer
    from sr_train.errors import ConfigError

    cfg = yaml.safe_load((CONFIG_DIR / "tiny_cpu.yaml").read_text())
    cfg["datasets"]["train"]["dataroot_gt"] = str(write_gt_folder(tmp_path / "gt", n=4))
    cfg["train"].update(ema_decay=0)
    cfg["qat"] = {}
    (tmp_path / "qat.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="pretrain_network_g is required with qat"):
        Trainer(from_yaml(tmp_path / "qat.yaml"), tmp_path / "run", progress=False).build()


def test_equalization_keeps_the_float_function():
    import torch

    from sr_train import quant
    from tests.export.conftest import build_tiny

    model, _, _ = build_tiny("SRVGGNetCompact")
    x = torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        before = model(x)
        assert quant.equalize(model, [x]) == 3  # conv0-2, conv2-4, conv4-6
        after = model(x)
    assert torch.allclose(before, after, atol=1e-5)


def test_ptq_error_is_smaller_than_naive(calib):
    """The recipe's choices pay: on the tiny model the int8 error is smaller than naive min/max PTQ's."""
    import copy

    import torch

    from sr_export.int8 import read_calibration
    from sr_train import quant
    from tests.export.conftest import build_tiny

    model, _, _ = build_tiny("SRVGGNetCompact")
    cal = read_calibration(calib)
    batches = [torch.from_numpy(x) for x in cal.calib]
    naive = quant.Recipe(fp32_convs=(), equalize=False, ranges="minmax", bias_correction=False, input_exact=False)
    errs = {}
    for name, recipe in (("naive", naive), ("recipe", quant.Recipe())):
        q = copy.deepcopy(model)
        quant.quantize(q, batches, recipe)
        with torch.no_grad():
            errs[name] = float(sum(((q(x) - model(x)) ** 2).mean() for x in map(torch.from_numpy, cal.heldout)))
    assert errs["recipe"] < errs["naive"]
