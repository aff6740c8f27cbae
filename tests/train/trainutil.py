"""Helpers for the sr_train engine tests: tiny image folders and tiny configs (no fixtures, so no conftest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np


def write_gt_folder(folder: Path, n: int = 6, h: int = 40, w: int = 56, seed: int = 0) -> Path:
    """``n`` smooth-plus-noise BGR PNGs of about ``h`` x ``w`` pixels."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        hh = h + 4 * (i % 3)
        yy, xx = np.mgrid[0:hh, 0:w].astype(np.float32)
        base = np.stack([np.sin(xx / 5 + c + i) * np.cos(yy / 7 - c) for c in range(3)], -1)
        img = np.clip(127 + 90 * base + rng.normal(0, 8, (hh, w, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"img{i:02d}.png"), img)
    return folder


def write_paired_folders(root: Path, n: int = 2, size: int = 32, scale: int = 4) -> tuple[Path, Path]:
    """GT ``size``x``size`` and LQ (area-downscaled) folders with the same file names."""
    gt_dir, lq_dir = write_gt_folder(root / "val_gt", n, size, size, seed=1), root / "val_lq"
    lq_dir.mkdir(parents=True, exist_ok=True)
    for p in sorted(gt_dir.glob("*.png")):
        img = cv2.imread(str(p))
        img = img[: img.shape[0] // scale * scale, : img.shape[1] // scale * scale]
        cv2.imwrite(str(p), img)
        lq = cv2.resize(img, (img.shape[1] // scale, img.shape[0] // scale), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(lq_dir / p.name), lq)
    return gt_dir, lq_dir


def tiny_overrides(gt_dir: Path, **extra: Any) -> list[str]:
    """``--set`` items that point the shipped tiny_cpu config at ``gt_dir``."""
    items = [f"datasets.train.dataroot_gt={gt_dir}"]
    items += [f"{k.replace('__', '.')}={v}" for k, v in extra.items()]
    return items
