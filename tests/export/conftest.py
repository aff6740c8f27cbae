"""Export-test fixtures: tiny models over the registry (plus RRDBNet x2, the pixel-unshuffle variant), exported
once per session and shared read-only by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_HPARAMS

CASES: dict[str, tuple[str, dict]] = {
    **{arch: (arch, {}) for arch in TINY_HPARAMS},
    "RRDBNet-x2": ("RRDBNet", {"scale": 2}),
}
"""Case id -> (arch id, hyperparameter overrides on TINY_HPARAMS)."""


def registry_cases() -> list[str]:
    """Every registered architecture (a missing TINY_HPARAMS entry fails loudly) plus the extra variants."""
    from sr_train.archs import REGISTRY

    for arch in REGISTRY.ids():
        assert arch in TINY_HPARAMS, f"add {arch} to TINY_HPARAMS in tests/conftest.py"
    return [*REGISTRY.ids(), *(c for c in CASES if c not in REGISTRY.ids())]


def build_tiny(case: str):
    """``(model, spec, hparams)`` for a case: deterministic non-trivial weights, eval mode."""
    import torch

    from sr_train.archs import REGISTRY

    arch, over = CASES[case]
    hp = {**TINY_HPARAMS[arch], **over}
    torch.manual_seed(0)
    spec = REGISTRY.get(arch)
    model = spec.build(**hp).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model, spec, spec.infer_hparams(model.state_dict())


def tiny_checkpoint(tmp_path: Path, case: str = "SRVGGNetCompact", name: str = "tiny.pth", **over) -> Path:
    """Save a tiny checkpoint in the official layout; overrides give other shapes (and other weights)."""
    import torch

    from sr_train.archs import REGISTRY
    from sr_train.checkpoint import save_checkpoint

    if over:
        torch.manual_seed(1)
        model = REGISTRY.get(case).build(**{**TINY_HPARAMS[case], **over})
    else:
        model = build_tiny(case)[0]
    path = tmp_path / name
    save_checkpoint(path, params_ema=model.state_dict())
    return path


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """``exported(case, fp16=False) -> (model, onnx_path)``: exported once per session (torchscript exporter)."""
    from sr_export.fp16 import convert_fp16
    from sr_export.onnx import export_onnx

    root = tmp_path_factory.mktemp("exported")
    cache: dict[tuple[str, bool], tuple[object, Path]] = {}

    def get(case: str, fp16: bool = False):
        key = (case, fp16)
        if key not in cache:
            model, spec, hp = build_tiny(case)
            path = root / f"{case}.onnx"
            if (case, False) not in cache:
                export_onnx(model, spec, hp, path, info_fields={"name": case, "source_sha256": "0" * 64})
                cache[(case, False)] = (model, path)
            if fp16:
                half = root / f"{case}_fp16.onnx"
                convert_fp16(path, half)
                cache[key] = (cache[(case, False)][0], half)
        return cache[key]

    return get
