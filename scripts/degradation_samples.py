"""Write a visual sanity picture of the second-order degradation: GT, USM GT and LQ side by side.

    python scripts/degradation_samples.py [--input FOLDER] [--out degradation_samples.png]
        [--rows 4] [--crop 400] [--gt-size 256] [--scale 4] [--seed 0]

Each row is one batch of one image (so every row shows a different random plan): the GT crop, the
USM-sharpened GT and the LQ enlarged x scale with nearest neighbour (so blur, noise and JPEG blocks stay
visible); the row label gives the plan (resize factors and modes, noise types, JPEG qualities, order).
Without ``--input`` a synthetic test card (lines, text, circles, gradients) is used.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch


def test_card(size: int, seed: int = 0) -> np.ndarray:
    """A (size, size, 3) uint8 BGR card with fine lines, text, circles and smooth gradients."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.stack([0.3 + 0.5 * xx, 0.2 + 0.6 * yy, 0.7 - 0.4 * xx * yy], -1)
    img = (img * 255).astype(np.uint8)
    for i in range(0, size, 12):
        cv2.line(img, (i, 0), (i + size // 3, size // 3), (20, 20, 20), 1, cv2.LINE_AA)
    for r in range(10, size // 3, 14):
        cv2.circle(img, (2 * size // 3, 2 * size // 3), r, (240, 240, 240), 2, cv2.LINE_AA)
    for j in range(6):
        cv2.putText(img, "Real-ESRGAN 0123", (8, size // 2 + 22 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                    tuple(int(c) for c in rng.integers(0, 255, 3)), 1, cv2.LINE_AA)  # fmt: skip
    cv2.rectangle(img, (size // 10, size // 10), (size // 4, size // 4), (0, 0, 200), -1)
    return img


def _label(img: np.ndarray, text: str) -> np.ndarray:
    import cv2

    bar = np.full((22, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, img], 0)


def main() -> None:
    import cv2

    from sr_runtime.fileio import atomic_write_bytes
    from sr_train.data import DataConfig, GTFolderDataset
    from sr_train.degradation.config import DegradationConfig
    from sr_train.degradation.pipeline import SecondOrderDegradation

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", help="folder of GT images (default: a synthetic test card)")
    ap.add_argument("--out", default="degradation_samples.png")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--crop", type=int, default=400)
    ap.add_argument("--gt-size", type=int, default=256)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.input
        if folder is None:
            folder = tmp
            cv2.imwrite(os.path.join(tmp, "card.png"), test_card(args.crop + 40, args.seed))
        deg_cfg = DegradationConfig()
        ds = GTFolderDataset(
            DataConfig(dataroot_gt=folder, gt_size=args.gt_size, crop_pad_size=args.crop), deg_cfg, args.seed
        )
        pipe = SecondOrderDegradation(deg_cfg, args.scale, args.gt_size)
        rows = []
        for r in range(args.rows):
            s = ds[r % len(ds)]
            gen = torch.Generator().manual_seed(args.seed * 1000 + r)
            gt = s["gt"][None]
            plan = pipe.sample_plan(1, gt.shape[2], gt.shape[3], gen)
            lq, gt_usm, gt_c = pipe.apply(
                gt, s["kernel1"][None], s["kernel2"][None], s["sinc_kernel"][None], plan, gen
            )

            def to_u8(t: torch.Tensor) -> np.ndarray:
                return (t[0].permute(1, 2, 0).clamp(0, 1).numpy()[..., ::-1] * 255).round().astype(np.uint8)

            lq_up = cv2.resize(to_u8(lq), None, fx=args.scale, fy=args.scale, interpolation=cv2.INTER_NEAREST)
            row = np.concatenate([to_u8(gt_c), to_u8(gt_usm), lq_up], 1)
            a, b = plan.first, plan.second
            text = (
                f"GT | USM GT | LQ x{args.scale} nearest.  1st: {a.updown} {a.resize_scale:.2f} {a.resize_mode}, "
                f"{a.noise} {a.noise_level[0]:.1f}{' gray' if a.gray[0] else ''}, q{a.jpeg_quality[0]:.0f}; "
                f"2nd: blur {int(plan.second_blur)}, {b.updown} {b.resize_scale:.2f}, {b.noise} "
                f"{b.noise_level[0]:.1f}, q{b.jpeg_quality[0]:.0f}, {'sinc->jpeg' if plan.sinc_first else 'jpeg->sinc'}"
            )
            rows.append(_label(row, text))
        sheet = np.concatenate(rows, 0)
    out = Path(args.out)
    ok, buf = cv2.imencode(out.suffix or ".png", sheet)
    if not ok:
        raise SystemExit(f"error: {out}: could not encode the picture (use a .png or .jpg name).")
    atomic_write_bytes(out, buf.tobytes())
    print(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
