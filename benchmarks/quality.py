"""Quality report: PSNR-Y / SSIM-Y of bicubic upscaling vs SR models on held-out photos.

Two fixed degradations of each held-out GT photo (cropped to a multiple of the scale):

* ``a_bicubic``: bicubic x1/scale downscale (MATLAB ``imresize``-style, antialiased, a=-0.5), nothing else.
* ``b_realistic``: the same downscale, then gaussian noise sigma=8 (8-bit levels, per channel, seeded from
  ``--seed`` and the file name), rounding to 8 bits, then JPEG quality 60 (OpenCV).

Each LQ is upscaled by OpenCV bicubic (``cv2.INTER_CUBIC``, the baseline) and by every model given; outputs
are rounded to 8 bits as a saved file would be. Metrics follow BasicSR: Y channel (BT.601), border crop =
scale, ``sr_runtime.compare.psnr_y`` / ``ssim_y``.

Models: ``.onnx`` files run through ``sr_runtime`` (ONNX Runtime, CPU); ``.pth``/``.safetensors`` through
``sr_train.checkpoint.load_generator`` in torch (needs the train extra). Writes ``<out>.json`` and
``<out>.md``.

Usage::

    python benchmarks/quality.py --images runs/default_data/heldout \\
        --model sr_runtime/models/default.onnx --reference ../shared/data/realesr-animevideov3.pth \\
        --out benchmarks/results/quality
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

from sr_runtime.compare import psnr_y, ssim_y  # noqa: E402
from sr_runtime.fileio import atomic_write_bytes  # noqa: E402

DEGRADATIONS = ("a_bicubic", "b_realistic")
DEG_TEXT = {
    "a_bicubic": "(a) bicubic x1/4 downscale",
    "b_realistic": "(b) bicubic x1/4 + gaussian noise sigma 8 + JPEG q60",
}
NOISE_SIGMA = 8.0
JPEG_QUALITY = 60


# ----------------------------------------------------------------------------------------------- resizing
def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((a + 2) * ax3 - (a + 3) * ax2 + 1) * (ax <= 1) + (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * (
        (ax > 1) & (ax <= 2)
    )


def _weights(n_in: int, n_out: int, factor: int) -> np.ndarray:
    """``(n_out, n_in)`` MATLAB imresize weights for an integer downscale (kernel widened by ``factor``,
    symmetric edge handling)."""
    w = np.zeros((n_out, n_in))
    for i in range(n_out):
        center = (i + 0.5) * factor - 0.5
        js = np.arange(math.floor(center - 2 * factor), math.ceil(center + 2 * factor) + 1)
        k = _cubic((center - js) / factor) / factor
        k /= k.sum()
        for j, kj in zip(js, k, strict=True):
            jj = -j - 1 if j < 0 else (2 * n_in - j - 1 if j >= n_in else j)  # symmetric padding
            w[i, jj] += kj
    return w


def bicubic_down(img: np.ndarray, factor: int) -> np.ndarray:
    """Antialiased bicubic downscale by an integer factor (MATLAB ``imresize(img, 1/factor)``).

    Args:
        img: ``(H, W, C)`` uint8, H and W multiples of ``factor``.

    Returns:
        ``(H/factor, W/factor, C)`` uint8, rounded.
    """
    h, w = img.shape[:2]
    wh, ww = _weights(h, h // factor, factor), _weights(w, w // factor, factor)
    x = img.astype(np.float64)
    out = np.einsum("ih,hwc->iwc", wh, x)
    out = np.einsum("jw,iwc->ijc", ww, out)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def degrade(gt: np.ndarray, kind: str, scale: int, seed: int, name: str) -> np.ndarray:
    """The fixed LQ of a GT photo.

    Args:
        gt: ``(H, W, 3)`` uint8 BGR, H and W multiples of ``scale``.
        kind: ``a_bicubic`` or ``b_realistic``.
        seed: base seed; the noise generator is seeded with ``(seed, crc32(name))``.

    Returns:
        ``(H/scale, W/scale, 3)`` uint8 BGR.
    """
    lq = bicubic_down(gt, scale)
    if kind == "a_bicubic":
        return lq
    if kind != "b_realistic":
        raise ValueError(f"unknown degradation {kind!r}; use one of {DEGRADATIONS}")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    noisy = lq.astype(np.float64) + rng.normal(0.0, NOISE_SIGMA, lq.shape)
    noisy = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


# ----------------------------------------------------------------------------------------------- models
UpscaleFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Method:
    """Something that upscales an image."""

    name: str
    """Row label."""
    scale: int
    """Upscaling factor."""
    run: UpscaleFn
    """``(h, w, 3)`` uint8 BGR -> ``(h*scale, w*scale, 3)`` uint8 BGR."""
    source: str = ""
    """File it came from (empty for bicubic)."""
    kind: str = ""
    """``bicubic``, ``onnx`` or ``torch``."""


def bicubic_method(scale: int) -> Method:
    """OpenCV bicubic upscaling (``cv2.INTER_CUBIC``), the baseline."""

    def run(lq: np.ndarray) -> np.ndarray:
        h, w = lq.shape[:2]
        return cv2.resize(lq, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)

    return Method("bicubic", scale, run, "", "bicubic")


def _to_nchw(lq: np.ndarray) -> np.ndarray:
    rgb = lq[..., ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def _from_nchw(out: np.ndarray) -> np.ndarray:
    rgb = np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0)
    return np.ascontiguousarray(np.round(rgb * 255.0).astype(np.uint8)[..., ::-1])


def onnx_method(path: Path, threads: int | None, name: str | None = None) -> Method:
    """An sr-export ONNX file run whole-image by sr_runtime's ONNX Runtime backend on the CPU."""
    from sr_runtime.backends.ort import OrtBackend

    backend = OrtBackend(path, device="cpu", threads=threads)
    return Method(name or path.stem, backend.info.scale, lambda lq: _from_nchw(backend.run(_to_nchw(lq))),
                  str(path), "onnx")


def torch_method(path: Path, threads: int | None, name: str | None = None) -> Method:
    """A training checkpoint run whole-image in torch (fp32, CPU)."""
    import torch

    from sr_train.checkpoint import load_generator

    if threads:
        torch.set_num_threads(threads)
    g = load_generator(path)

    def run(lq: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return _from_nchw(g.model(torch.from_numpy(_to_nchw(lq))).numpy())

    return Method(name or path.stem, g.spec.scale(g.hparams), run, str(path), "torch")


def load_method(path: Path, threads: int | None, name: str | None = None) -> Method:
    """``.onnx`` -> :func:`onnx_method`; anything else -> :func:`torch_method`."""
    if path.suffix.lower() == ".onnx":
        return onnx_method(path, threads, name)
    return torch_method(path, threads, name)


# ----------------------------------------------------------------------------------------------- report
def read_gt(path: Path, scale: int) -> np.ndarray:
    """Read a GT photo as uint8 BGR cropped (top-left anchored) to a multiple of ``scale``."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"error: {path}: not a readable image. Run scripts/prepare_default_data.py first.")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def evaluate(images: list[Path], methods: list[Method], scale: int, seed: int) -> dict:
    """Run every method on every degradation of every image; return the nested results dict."""
    results: dict = {}
    for kind in DEGRADATIONS:
        per_method: dict = {}
        for m in methods:
            if m.scale != scale:
                raise SystemExit(f"error: {m.source}: scale {m.scale}, the report runs x{scale}. "
                                 f"Pass --scale {m.scale} or a x{scale} model.")
            rows = {}
            for img_path in images:
                gt = read_gt(img_path, scale)
                lq = degrade(gt, kind, scale, seed, img_path.name)
                t0 = time.perf_counter()
                sr = m.run(lq)
                dt = time.perf_counter() - t0
                rows[img_path.name] = {
                    "psnr_y": psnr_y(sr, gt, crop_border=scale),
                    "ssim_y": ssim_y(sr, gt, crop_border=scale),
                    "seconds": dt,
                }
            per_method[m.name] = {
                "kind": m.kind, "source": m.source, "images": rows,
                "psnr_y": float(np.mean([r["psnr_y"] for r in rows.values()])),
                "ssim_y": float(np.mean([r["ssim_y"] for r in rows.values()])),
            }
        base = per_method["bicubic"]
        for r in per_method.values():
            r["d_psnr_y"] = r["psnr_y"] - base["psnr_y"]
            r["d_ssim_y"] = r["ssim_y"] - base["ssim_y"]
        results[kind] = per_method
    return results


def to_markdown(report: dict) -> str:
    """The results as Markdown tables (one per degradation)."""
    lines = [
        "# Quality on held-out photos",
        "",
        f"Images: {', '.join(report['images'])} (GT cropped to a multiple of {report['scale']}). "
        f"PSNR-Y (dB) / SSIM-Y, border crop {report['scale']}, means over images; "
        "deltas are against bicubic. Generated by `benchmarks/quality.py`.",
        "",
    ]
    for kind in DEGRADATIONS:
        lines += [f"## {DEG_TEXT[kind]}", "", "| method | PSNR-Y | SSIM-Y | ΔPSNR-Y | ΔSSIM-Y |",
                  "|---|---:|---:|---:|---:|"]
        for name, r in report["results"][kind].items():
            lines.append(f"| {name} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | {r['d_psnr_y']:+.2f} | "
                         f"{r['d_ssim_y']:+.4f} |")
        lines.append("")
    lines += ["Per image:", "", "| degradation | method | " + " | ".join(report["images"]) + " |",
              "|---|---|" + "---:|" * len(report["images"])]
    for kind in DEGRADATIONS:
        for name, r in report["results"][kind].items():
            cells = [f"{r['images'][i]['psnr_y']:.2f} / {r['images'][i]['ssim_y']:.4f}" for i in report["images"]]
            lines.append(f"| {kind} | {name} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, default=ROOT / "runs" / "default_data" / "heldout",
                    help="folder of held-out GT photos (scripts/prepare_default_data.py writes it)")
    ap.add_argument("--model", type=Path, action="append", default=[], help="model to test (repeatable)")
    ap.add_argument("--name", action="append", default=[], help="row label per --model (default: file stem)")
    ap.add_argument("--reference", type=Path, action="append", default=[],
                    help="reference model, e.g. ../shared/data/realesr-animevideov3.pth (repeatable)")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality",
                    help="output path without suffix (.json and .md are written)")
    args = ap.parse_args(argv)
    images = sorted(p for p in args.images.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not images:
        print(f"error: {args.images}: no images. Run scripts/prepare_default_data.py first.", file=sys.stderr)
        return 2
    for p in [*args.model, *args.reference]:
        if not p.is_file():
            print(f"error: {p}: model file not found. Check the path.", file=sys.stderr)
            return 2
    methods = [bicubic_method(args.scale)]
    names = args.name + [None] * (len(args.model) - len(args.name))
    methods += [load_method(p, args.threads, n) for p, n in zip(args.model, names, strict=False)]
    methods += [load_method(p, args.threads, f"{p.stem} (reference)") for p in args.reference]
    results = evaluate(images, methods, args.scale, args.seed)
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    report = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scale": args.scale, "seed": args.seed, "noise_sigma": NOISE_SIGMA, "jpeg_quality": JPEG_QUALITY,
        "images": [p.name for p in images],
        "degradations": DEG_TEXT,
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                        "onnxruntime": ort_version, "machine": platform.machine()},
        "results": results,
    }
    atomic_write_bytes(args.out.with_suffix(".json"), (json.dumps(report, indent=2) + "\n").encode())
    md = to_markdown(report)
    atomic_write_bytes(args.out.with_suffix(".md"), md.encode())
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
