"""Parity of an exported file with its PyTorch model, run through sr_runtime's own backends.

The exported file is run exactly as sr-run runs it (:class:`~sr_runtime.backends.ort.OrtBackend` for ``.onnx``,
:class:`~sr_runtime.backends.trt.TrtBackend` for engines) on a deterministic test image and on random input,
and compared with the torch model in float32. Tolerances come from :data:`TOL`, set from measurements (see
docs/export.md); the CLI exits non-zero when a report fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sr_runtime.backends.base import Backend
from sr_runtime.compare import ParityReport, Tol, compare
from sr_runtime.tiling import round_up

BackendKind = Literal["ort", "trt"]

TOL: dict[tuple[str, str], Tol] = {
    # measured fp32 ORT CPU vs torch: <= 2e-6 max abs on the registry (tiny and full-size), > 110 dB
    ("ort", "float32"): Tol(max_abs=1e-4, min_psnr=90.0),
    # measured fp16 ONNX on ORT CPU vs torch fp32: realesr-animevideov3 1.2e-3 max abs / 71 dB (test image),
    # tiny models <= 3e-4 (tests/export/test_parity.py holds the per-model figures)
    ("ort", "float16"): Tol(max_abs=1e-2, min_psnr=55.0),
    # TensorRT: NOT measured in this task (no GPU). fp32 engines may use TF32 (10-bit mantissa like fp16), so
    # both rows start at the fp16 bound; tighten them from the gpu tests' figures.
    ("trt", "float32"): Tol(max_abs=1e-2, min_psnr=55.0),
    ("trt", "float16"): Tol(max_abs=1e-2, min_psnr=55.0),
}
"""Parity tolerances by (backend, precision), values in [0, 1]."""


def parity_image(h: int = 64, w: int = 48, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A deterministic test image: smooth colour gradients, a sharp edge and fine noise.

    Returns:
        float32 ``(1, channels, h, w)`` in [0, 1].
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = [0.5 + 0.35 * np.sin(xx / 5 + c) * np.cos(yy / 7 - c) for c in range(channels)]
    img = np.stack(chans, 0)
    img[:, : h // 3, w // 2:] = 0.9  # a flat bright block with a hard edge
    img += 0.05 * rng.standard_normal(img.shape).astype(np.float32)
    return np.clip(img, 0, 1)[None].astype(np.float32)


def random_input(n: int = 2, h: int = 32, w: int = 24, channels: int = 3, seed: int = 1) -> np.ndarray:
    """Uniform random float32 ``(n, channels, h, w)`` in [0, 1] (worst case: no spatial correlation)."""
    return np.random.default_rng(seed).random((n, channels, h, w), dtype=np.float32)


def _open(artifact: Path, backend: BackendKind | None, threads: int | None) -> tuple[BackendKind, Backend]:
    if backend is None:
        backend = "ort" if artifact.suffix.lower() == ".onnx" else "trt"
    if backend == "ort":
        from sr_runtime.backends.ort import OrtBackend

        return "ort", OrtBackend(artifact, device="cpu", threads=threads)
    from sr_runtime.backends.trt import TrtBackend

    return "trt", TrtBackend(artifact)


def check(
    torch_model: Any,
    artifact_path: str | Path,
    *,
    backend: BackendKind | None = None,
    tol: Mapping[tuple[str, str], Tol] | Tol | None = TOL,
    inputs: Mapping[str, np.ndarray] | None = None,
    threads: int | None = None,
) -> list[ParityReport]:
    """Compare an exported file with the torch model it came from.

    Args:
        torch_model: the ``nn.Module`` that was exported (run on the CPU in float32, eval mode).
        artifact_path: ``.onnx`` or engine file written by sr-export.
        backend: ``ort`` (CPU) or ``trt``; None: by suffix.
        tol: a tolerance table keyed by (backend, precision) (default :data:`TOL`), one :class:`Tol`, or None
            for figures only (a table without the key gives figures only too).
        inputs: named float32 NCHW [0, 1] inputs; default: the test image and a random batch of 2, sized to
            the model's size multiple (and, for engines, to the profile).
        threads: ONNX Runtime threads (None: its default).

    Returns:
        One :class:`ParityReport` per input (``passed`` tells whether it is within tolerance).

    Raises:
        SrError: the file cannot be opened or run (missing extra, no GPU, bad file).
    """
    import torch

    artifact = Path(artifact_path)
    kind, runner = _open(artifact, backend, threads)
    with runner:
        info = runner.info
        m = max(1, info.size_multiple)
        c = info.in_channels
        if inputs is None:
            h, w, rh, rw = round_up(64, m), round_up(48, m), round_up(32, m), round_up(24, m)
            n = 2
            mx = runner.max_shape
            if mx:  # keep inside the engine's profile
                n = min(2, int(mx[0]))
                cap_h, cap_w = int(mx[2]), int(mx[3])
                h, w, rh, rw = min(h, cap_h), min(w, cap_w), min(rh, cap_h), min(rw, cap_w)
            inputs = {"test image": parity_image(h, w, c), "random": random_input(n, rh, rw, c)}
        t = tol if (tol is None or isinstance(tol, Tol)) else tol.get((kind, info.precision))
        model = torch_model.eval().float().cpu()
        reports = []
        for name, x in inputs.items():
            with torch.no_grad():
                ref = model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
            out = runner.run(x)
            shape = "x".join(map(str, x.shape))
            reports.append(compare(f"{kind} {info.precision} {name} {shape}", out, ref, t))
    return reports


def check_reference(torch_model: Any, onnx_path: str | Path, x: np.ndarray, tol: Tol | None = None) -> ParityReport:
    """Run an ONNX with ``onnx.reference`` (numpy kernels, true fp16 arithmetic for an fp16 graph) and compare.

    ONNX Runtime's CPU provider computes many fp16 nodes in fp32 (it inserts casts), so this is the closer
    CPU proxy for fp16 hardware; slow, use small inputs.

    Args:
        torch_model: the exported ``nn.Module``.
        onnx_path: the ONNX file.
        x: float32 ``(N, C, H, W)`` in [0, 1].
        tol: optional tolerance.
    """
    import onnx
    import torch
    from onnx.reference import ReferenceEvaluator

    proto = onnx.load(str(onnx_path))
    elem = proto.graph.input[0].type.tensor_type.elem_type
    feed = x.astype(np.float16) if elem == onnx.TensorProto.FLOAT16 else x.astype(np.float32)
    (out,) = ReferenceEvaluator(proto).run(None, {proto.graph.input[0].name: feed})
    with torch.no_grad():
        ref = torch_model.eval().float().cpu()(torch.from_numpy(x.astype(np.float32))).numpy()
    prec = "float16" if any(i.data_type == onnx.TensorProto.FLOAT16 for i in proto.graph.initializer) else "float32"
    return compare(f"onnx.reference {prec} {'x'.join(map(str, x.shape))}", np.asarray(out, np.float32), ref, tol)
