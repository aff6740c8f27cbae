"""The ``make demo`` driver: upscale the bundled held-out photo with the shipped default model.

Runtime only (numpy, OpenCV, onnxruntime; never torch). Writes into ``--out`` (default ``demo/``):

* ``<sample>_x4.png``: the whole photo upscaled by the shipped model;
* ``side_by_side.png``: a detail crop, input nearest-upscaled | bicubic | ours, with labels;

and prints the output paths, the upscaling time and the speed in input megapixels per second (the unit of sr-run's
summary and of the benchmarks).

Usage::

    python scripts/demo.py [--input PHOTO] [--model MODEL.onnx] [--out demo] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # also runs from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))
DETAIL = (122, 72, 96, 96)
"""Detail crop of the bundled sample (x, y, w, h in input pixels): Chelsea's left eye and the fur around it."""
LABEL_H = 28


def shipped_dir() -> Path:
    """Folder of the package data (``sr_runtime/models``) of the installed or checked-out sr_runtime."""
    import sr_runtime

    return Path(sr_runtime.__file__).resolve().parent / "models"


def make_upscaler(model: Path, threads: int | None) -> tuple[Callable[[np.ndarray], np.ndarray], int, str]:
    """Return ``(fn, scale, how)``: ``fn`` maps an ``(h, w, 3)`` uint8 BGR image to ``(h*s, w*s, 3)`` uint8 BGR.

    Uses the public ``sr_runtime.api.Upscaler`` (ONNX Runtime, tile size chosen from the memory budget) when
    present, else the ONNX Runtime backend on the whole image.
    """
    try:
        from sr_runtime.api import Upscaler
    except ImportError:
        Upscaler = None  # noqa: N806 - the API class, when it exists
    if Upscaler is not None:
        up = Upscaler(model, tile="auto", backend="ort", threads=threads)
        return (lambda img: up.enhance(img)[0]), up.scale, "sr_runtime.api.Upscaler, ONNX Runtime CPU"
    from sr_runtime.backends.ort import OrtBackend

    backend = OrtBackend(model, device="cpu", threads=threads)

    def run(img: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        y = backend.run(x)[0].transpose(1, 2, 0)
        return np.ascontiguousarray(np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)[..., ::-1])

    return run, backend.info.scale, "sr_runtime.backends.ort.OrtBackend"


def write_png(path: Path, img: np.ndarray) -> None:
    """Write a PNG atomically (``sr_runtime.fileio``: temp file in the same folder, then ``os.replace``)."""
    from sr_runtime.fileio import atomic_write_bytes

    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise SystemExit(f"error: {path}: PNG encoding failed.")
    atomic_write_bytes(path, buf.tobytes())


def _labelled(panel: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((LABEL_H, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (6, LABEL_H - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, panel])


def side_by_side(lq: np.ndarray, ours: np.ndarray, scale: int, box: tuple[int, int, int, int],
                 name: str) -> np.ndarray:
    """Detail crop ``box`` (x, y, w, h in input pixels) as three labelled panels: nearest | bicubic | ours.

    Args:
        lq: ``(h, w, 3)`` uint8 BGR input.
        ours: ``(h*scale, w*scale, 3)`` uint8 BGR model output.

    Returns:
        ``(LABEL_H + h_box*scale, 3*w_box*scale + 2*gap, 3)`` uint8 BGR.
    """
    x, y, w, h = box
    h_in, w_in = lq.shape[:2]
    x, y = max(0, min(x, w_in - w)), max(0, min(y, h_in - h))
    w, h = min(w, w_in), min(h, h_in)
    size = (w * scale, h * scale)
    crop = lq[y:y + h, x:x + w]
    nearest = cv2.resize(crop, size, interpolation=cv2.INTER_NEAREST)
    bicubic = cv2.resize(lq, (w_in * scale, h_in * scale), interpolation=cv2.INTER_CUBIC)
    bicubic = bicubic[y * scale:(y + h) * scale, x * scale:(x + w) * scale]
    mine = ours[y * scale:(y + h) * scale, x * scale:(x + w) * scale]
    gap = np.full((h * scale + LABEL_H, 6, 3), 255, np.uint8)
    return np.hstack([_labelled(nearest, f"input (nearest x{scale})"), gap,
                      _labelled(bicubic, f"bicubic x{scale}"), gap, _labelled(mine, f"{name} x{scale}")])


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=None, help="photo to upscale (default: the bundled sample)")
    ap.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped default.onnx)")
    ap.add_argument("--out", type=Path, default=Path("demo"), help="output folder")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads (default: all cores)")
    ap.add_argument("--detail", type=int, nargs=4, default=None, metavar=("X", "Y", "W", "H"),
                    help="detail crop in input pixels (default: the sample's eye)")
    args = ap.parse_args(argv)
    models = shipped_dir()
    model = args.model or models / "default.onnx"
    src = args.input or models / "sample.png"
    for p, what in ((model, "model"), (src, "input photo")):
        if not p.is_file():
            print(f"error: {p}: {what} not found. Reinstall sr-deploy (pip install -e '.[ort]') or pass "
                  f"--{'model' if what == 'model' else 'input'}.", file=sys.stderr)
            return 2
    lq = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if lq is None:
        print(f"error: {src}: not a readable image. Pass a PNG or JPEG.", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    fn, scale, how = make_upscaler(model, args.threads)
    t_load = time.perf_counter() - t0
    fn(lq[:16, :16])  # warm-up: first-run allocations are not the model's speed
    t0 = time.perf_counter()
    out = fn(lq)
    dt = time.perf_counter() - t0
    mp = out.shape[0] * out.shape[1] / 1e6
    mp_in = lq.shape[0] * lq.shape[1] / 1e6
    args.out.mkdir(parents=True, exist_ok=True)
    out_path = args.out / f"{src.stem}_x{scale}.png"
    sbs_path = args.out / "side_by_side.png"
    write_png(out_path, out)
    box = tuple(args.detail) if args.detail else (DETAIL if args.input is None else
                                                   (lq.shape[1] // 2 - 48, lq.shape[0] // 2 - 48, 96, 96))
    write_png(sbs_path, side_by_side(lq, out, scale, box, model.stem))  # type: ignore[arg-type]
    print(f"model:        {model} (x{scale}, via {how}, loaded in {t_load:.2f} s)")
    print(f"input:        {src} ({lq.shape[1]}x{lq.shape[0]})")
    print(f"output:       {out_path} ({out.shape[1]}x{out.shape[0]}, {mp:.2f} MP)")
    print(f"side by side: {sbs_path} (input nearest | bicubic | {model.stem}, detail {box})")
    print(f"time:         {dt:.2f} s upscaling = {mp_in / dt:.2f} input MP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
