"""Runtime fixtures: tiny exported ONNX models (made once per session with torch + sr_export) and images.

Without torch/onnx (a runtime-only install) the fp32 models fall back to the copies committed in tests/data
(regenerate them with ``python -m tests.runtime.conftest``); tests needing torch itself skip.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, TINY_HPARAMS

DATA = ROOT / "tests" / "data"
COMMITTED = ("SRVGGNetCompact", "RRDBNet-x2")
"""Cases whose fp32 ONNX is committed in tests/data for torch-free runs."""

MODEL_CASES: dict[str, tuple[str, dict]] = {
    "SRVGGNetCompact": ("SRVGGNetCompact", TINY_HPARAMS["SRVGGNetCompact"]),
    "RRDBNet": ("RRDBNet", TINY_HPARAMS["RRDBNet"]),
    "RRDBNet-x2": ("RRDBNet", {**TINY_HPARAMS["RRDBNet"], "scale": 2}),
    "RRDBNet-x1": ("RRDBNet", {**TINY_HPARAMS["RRDBNet"], "scale": 1}),
}
"""Exported tiny models: every registered arch, plus RRDBNet's pixel-unshuffle variants (size multiple 2, 4)."""

def build_torch(case: str):
    """The tiny torch model of a case, built as tests/conftest.py's ``tiny_generator`` does."""
    import torch

    from sr_train.archs import REGISTRY

    arch, hp = MODEL_CASES[case]
    torch.manual_seed(0)
    model = REGISTRY.get(arch).build(**hp).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory) -> Callable[..., Path]:
    """``onnx_model(case, precision="float32", io_dtype="float32") -> Path`` (exported once per session)."""
    root = tmp_path_factory.mktemp("onnx")
    cache: dict[tuple, Path] = {}

    def get(case: str, precision: str = "float32", io_dtype: str = "float32") -> Path:
        key = (case, precision, io_dtype)
        if key in cache:
            return cache[key]
        if importlib.util.find_spec("onnxruntime") is None:
            pytest.skip("onnxruntime not installed")
        if any(importlib.util.find_spec(m) is None for m in ("torch", "onnx")):
            if precision == "float32" and (DATA / f"{case}.onnx").is_file():
                return DATA / f"{case}.onnx"
            pytest.skip("torch/onnx not installed: cannot export this ONNX fixture")
        from sr_export.onnx import export_onnx
        from sr_train.archs import REGISTRY

        fp32 = root / f"{case}.onnx"
        if not fp32.exists():
            arch, hp = MODEL_CASES[case]
            export_onnx(build_torch(case), REGISTRY.get(arch), hp, fp32)
        path = fp32
        if precision == "float16":
            from sr_export.fp16 import convert_fp16

            path = root / f"{case}_fp16{'io' if io_dtype == 'float16' else ''}.onnx"
            convert_fp16(fp32, path, io_dtype=io_dtype)  # type: ignore[arg-type]
        cache[key] = path
        return path

    return get


@pytest.fixture(scope="session")
def torch_ref() -> Callable[[str], Callable[[np.ndarray], np.ndarray]]:
    """``torch_ref(case)(x)``: the torch model on a float32 NCHW batch, as numpy."""
    models: dict[str, object] = {}

    def get(case: str):
        torch = pytest.importorskip("torch")

        if case not in models:
            models[case] = build_torch(case)
        model = models[case]

        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

        return run

    return get


@pytest.fixture
def image_files(tmp_path, rgb_image) -> dict[str, Path]:
    """Tiny images on disk, written deterministically with cv2: gray, gray16, rgb, rgba, dark16, corrupt."""
    import cv2

    d = tmp_path / "imgs"
    d.mkdir()
    rgb = rgb_image(12, 10)
    files = {
        "rgb": (d / "rgb.png", rgb),
        "gray": (d / "gray.png", rgb_image(9, 11, seed=1, channels=1)),
        "rgba": (d / "rgba.png", np.dstack([rgb, np.linspace(0, 255, 120).reshape(12, 10).astype(np.uint8)])),
        "rgb16": (d / "rgb16.png", rgb_image(8, 8, seed=2, dtype=np.uint16)),
        "dark16": (d / "dark16.png", (rgb_image(8, 8, seed=3, dtype=np.uint16) // 400).astype(np.uint16)),
        "jpg": (d / "photo.jpg", rgb),
    }
    out = {}
    for name, (p, arr) in files.items():
        assert cv2.imwrite(str(p), arr)
        out[name] = p
    bad = d / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 8)
    out["corrupt"] = bad
    return out


if __name__ == "__main__":  # regenerate the committed torch-free fixtures
    from sr_export.onnx import export_onnx
    from sr_train.archs import REGISTRY

    for case in COMMITTED:
        arch, hp = MODEL_CASES[case]
        export_onnx(build_torch(case), REGISTRY.get(arch), hp, DATA / f"{case}.onnx")
        print("wrote", DATA / f"{case}.onnx")
