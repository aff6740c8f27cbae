"""The shipped default model: the ONNX package data loads, carries complete metadata, upscales a small crop of
the bundled held-out photo, and matches the committed training checkpoint run in torch."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from sr_runtime.compare import Tol, compare

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "sr_runtime" / "models" / "default.onnx"
SAMPLE = ROOT / "sr_runtime" / "models" / "sample.png"
CHECKPOINT = ROOT / "models" / "default" / "default_x4.pth"
TRAIN_LOG = ROOT / "models" / "default" / "train_log.jsonl"
CONFIG = ROOT / "sr_train" / "configs" / "default.yaml"

TOL = {("ort", "fp32"): Tol(max_abs=1e-4, min_psnr=80.0)}
"""ONNX Runtime CPU fp32 vs torch fp32 on a 40x40 crop; measured max_abs 3.0e-7, PSNR 149 dB (2026-11-26, final model)."""

needs_ort = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")


def _sample_crop(h: int = 40, w: int = 40) -> np.ndarray:
    """A ``(1, 3, h, w)`` float32 RGB [0, 1] crop of the bundled sample (the eye region)."""
    import cv2

    img = cv2.imread(str(SAMPLE), cv2.IMREAD_COLOR)
    assert img is not None, f"{SAMPLE} unreadable"
    crop = img[100:100 + h, 150:150 + w, ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(crop.transpose(2, 0, 1)[None])


def test_shipped_files_present_and_small() -> None:
    for p in (SHIPPED, SAMPLE, CHECKPOINT, TRAIN_LOG, CONFIG):
        assert p.is_file(), f"missing {p.relative_to(ROOT)}"
    assert CHECKPOINT.stat().st_size < 5 * 2**20, "the committed checkpoint must stay under 5 MB"
    assert SHIPPED.stat().st_size < 5 * 2**20


def test_metadata_complete() -> None:
    from sr_runtime.info import read_onnx_info

    info = read_onnx_info(SHIPPED)
    assert info.arch == "SRVGGNetCompact"
    assert info.scale == 4
    assert (info.in_channels, info.out_channels) == (3, 3)
    assert set(info.hparams) >= {"num_in_ch", "num_out_ch", "num_feat", "num_conv", "upscale", "act_type"}
    assert info.hparams["upscale"] == info.scale
    assert info.receptive_radius == info.hparams["num_conv"] + 2
    assert info.precision == "float32" and info.io_dtype == "float32"
    assert info.version and info.exporter and info.opset > 0
    assert info.name == CHECKPOINT.stem
    assert len(info.source_sha256) == 64


def test_metadata_names_committed_checkpoint() -> None:
    """The ONNX was exported from exactly the committed checkpoint (sha256 in its metadata)."""
    import hashlib

    from sr_runtime.info import read_onnx_info

    sha = hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()
    assert read_onnx_info(SHIPPED).source_sha256 == sha


@needs_ort
def test_upscales_small_crop() -> None:
    from sr_runtime.backends.ort import OrtBackend

    x = _sample_crop(24, 32)
    with OrtBackend(SHIPPED, device="cpu", threads=1) as backend:
        y = backend.run(x)
    assert y.shape == (1, 3, 96, 128) and y.dtype == np.float32
    assert np.isfinite(y).all()
    # close to the input at low frequencies: the 4x4 block means of the output track the input pixels
    # (measured mean abs 0.017 for the shipped model)
    means = y[0].reshape(3, 24, 4, 32, 4).mean(axis=(2, 4))
    assert float(np.abs(means - x[0]).mean()) < 0.05


@needs_ort
def test_parity_with_committed_checkpoint() -> None:
    """ONNX Runtime (fp32, CPU) output equals the committed checkpoint's torch output within TOL."""
    torch = pytest.importorskip("torch")
    from sr_runtime.backends.ort import OrtBackend
    from sr_train.checkpoint import load_generator

    g = load_generator(CHECKPOINT)
    x = _sample_crop()
    with torch.inference_mode():
        ref = g.model(torch.from_numpy(x)).numpy()
    with OrtBackend(SHIPPED, device="cpu", threads=1) as backend:
        out = backend.run(x)
    report = compare("default.onnx ort fp32 vs torch 1x3x40x40", out, ref, TOL[("ort", "fp32")])
    assert report.passed, report.line()
    assert g.source_key == "params_ema"


def test_heldout_split_is_disjoint() -> None:
    """The bundled sample is a held-out photo, and no held-out photo is in the training list."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import prepare_default_data as prep
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    train = {p.file for p in prep.TRAIN}
    held = {p.file for p in prep.HELDOUT}
    assert not train & held
    assert "chelsea.png" in held


def test_quality_degradations_deterministic() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import quality
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    flat = np.full((16, 16, 3), 77, np.uint8)
    assert (quality.bicubic_down(flat, 4) == 77).all()
    a = quality.degrade(gt, "b_realistic", 4, 0, "x.png")
    b = quality.degrade(gt, "b_realistic", 4, 0, "x.png")
    assert a.shape == (8, 12, 3) and (a == b).all()
    assert (quality.degrade(gt, "a_bicubic", 4, 0, "x.png") == quality.bicubic_down(gt, 4)).all()


def test_bilinear_residual_init_is_bilinear() -> None:
    """The start weights make SRVGGNetCompact compute bilinear x4 upscaling (away from the zero-padded border)."""
    torch = pytest.importorskip("torch")
    import cv2

    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import prepare_default_data as prep
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from sr_train.archs import REGISTRY

    sd = prep.bilinear_residual_init(num_feat=8, num_conv=2, scale=4)
    model = REGISTRY.get("SRVGGNetCompact").build(num_feat=8, num_conv=2, upscale=4).eval()
    model.load_state_dict(sd)
    rgb = np.random.default_rng(0).random((12, 10, 3), dtype=np.float32)
    with torch.inference_mode():
        out = model(torch.from_numpy(rgb.transpose(2, 0, 1)[None].copy()))[0].numpy().transpose(1, 2, 0)
    ref = cv2.resize(rgb, (40, 48), interpolation=cv2.INTER_LINEAR)
    # The random channels still reach the output through the last conv's 0.1-scaled random weights:
    # measured mean 0.0029, max 0.014 (values in [0, 1]).
    diff = np.abs(out - ref)[4:-4, 4:-4]
    assert diff.mean() < 0.01 and diff.max() < 0.05, (diff.mean(), diff.max())
