"""Shared fixtures: seeds, tiny generators built through the registry, image factories, gpu auto-skip."""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
OFFICIAL_ANIME = SHARED_DATA / "realesr-animevideov3.pth"

TINY_HPARAMS: dict[str, dict] = {
    "RRDBNet": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "scale": 4},
    "SRVGGNetCompact": {"num_feat": 8, "num_conv": 2, "upscale": 4, "act_type": "prelu"},
}
"""Small hyperparameters per registered architecture (tests fail loudly when an arch lacks an entry)."""


_CACHE: list[str] = []


def pytest_configure(config) -> None:
    """Tests never write into the user's cache: sr-deploy's cache folder (engines, checkpoints that
    ``sr-run -m x.pth`` exported) is a temporary one for the session, subprocesses included, unless
    ``SR_DEPLOY_CACHE`` is set already."""
    if "SR_DEPLOY_CACHE" not in os.environ:
        _CACHE.append(tempfile.mkdtemp(prefix="sr-deploy-test-cache-"))
        os.environ["SR_DEPLOY_CACHE"] = _CACHE[0]


def pytest_unconfigure(config) -> None:
    for folder in _CACHE:
        shutil.rmtree(folder, ignore_errors=True)


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    if _has_torch():
        import torch

        torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _auto_cpu_backend(request, monkeypatch) -> None:
    """In this process, ``--backend auto`` runs on ONNX Runtime unless the test is marked ``openvino``.

    Measured 2026-12-03: with OpenVINO 2026.4 compiled in many earlier tests, the pytest process (which also
    holds torch, onnxruntime and Ray threads) died with SIGSEGV in a later test that only waits on a ``torchrun``
    subprocess (tests/train/test_ddp.py), in 3 of 3 runs; with OpenVINO kept to its own tests the runs pass. An
    ``sr-run`` process does not mix these; subprocess tests (the corpus, the CLI) still take auto's real choice.
    """
    if request.node.get_closest_marker("openvino") is None:
        monkeypatch.setattr("sr_runtime.backends.openvino.available", lambda: False)


@pytest.fixture
def tiny_generator():
    """``tiny_generator(arch_id, **overrides) -> nn.Module`` in eval mode, with random non-trivial weights."""
    import torch

    from sr_train.archs import REGISTRY

    def make(arch_id: str, **overrides):
        hp = {**TINY_HPARAMS[arch_id], **overrides}
        torch.manual_seed(0)
        model = REGISTRY.get(arch_id).build(**hp).eval()
        with torch.no_grad():  # perturb so that biases/PReLU are not all at their init constants
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
        return model

    return make


@pytest.fixture
def official_anime() -> Path:
    """The official realesr-animevideov3.pth in ../shared/data (skips when absent)."""
    if not OFFICIAL_ANIME.exists():
        pytest.skip(f"official checkpoint not found at {OFFICIAL_ANIME}")
    return OFFICIAL_ANIME


@pytest.fixture
def rgb_image():
    """``rgb_image(h, w, seed=0, dtype=np.uint8) -> HxWx3 BGR array`` with smooth structure plus noise."""

    def make(h: int, w: int, seed: int = 0, dtype=np.uint8, channels: int = 3) -> np.ndarray:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = np.stack([np.sin(xx / 5 + c) * np.cos(yy / 7 - c) for c in range(channels)], -1)
        img = 0.5 + 0.35 * base + 0.1 * rng.standard_normal((h, w, channels)).astype(np.float32)
        img = np.clip(img, 0, 1)
        top = 65535 if dtype == np.uint16 else 255
        out = np.round(img * top).astype(dtype)
        return out[..., 0] if channels == 1 else out

    return make


def trt_target_or_skip(flavor: str = "auto", portable: bool = False):
    """``(TrtFlavor, GpuInfo)`` when the TensorRT flavour here can build for and run on the GPU present; else skip.

    TensorRT-RTX 1.7 knows SM75/80/86/89/120/121 and no SM90: a portable engine (8.6, 8.9, 12.x) or a
    ``current`` build cannot run on an H100/H200 (``portable``: the engine is built with the default targets).
    """
    from sr_runtime.backends.trt import TrtMissingError, current_gpu, load_flavor
    from sr_runtime.backends.trt.flavor import cc_to_sm, rtx_default_targets, rtx_supports

    try:
        fl = load_flavor(flavor)  # type: ignore[arg-type]
    except TrtMissingError as exc:
        pytest.skip(f"no TensorRT flavour importable ({exc.detail or exc})")
    gpu = current_gpu()
    if gpu is None:
        pytest.skip("no CUDA device")
    if fl.name == "rtx":
        cc = gpu.compute_capability
        ok = cc_to_sm(cc) in rtx_default_targets(fl.trt) if portable else rtx_supports(fl.trt, cc)
        if not ok:
            pytest.skip(f"{fl.label} cannot target {gpu.name} (sm {cc}): "
                        f"{'not a portable target' if portable else 'no such ComputeCapability'}")
    return fl, gpu


def _gpu_skip_reason() -> str | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return "no CUDA device"
    except ImportError:
        try:
            from cuda.bindings import runtime as cudart

            err, count = cudart.cudaGetDeviceCount()
            if int(err) != 0 or count == 0:
                return "no CUDA device"
        except Exception as exc:  # noqa: BLE001
            return f"no CUDA device (cuda-python: {type(exc).__name__})"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _gpu_skip_reason()
    if reason is None:
        try:
            import tensorrt  # noqa: F401
        except Exception as exc:  # noqa: BLE001
            reason_trt = f"tensorrt not importable: {type(exc).__name__}: {exc}"
        else:
            reason_trt = None
    for item in items:
        if "gpu" in item.keywords:
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))
            elif reason_trt is not None and "tensorrt" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason_trt))
