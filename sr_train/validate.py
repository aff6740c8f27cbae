"""Validation: PSNR and SSIM on the Y channel with a ``scale``-pixel border crop (BasicSR's metrics, computed by
the numpy functions in :mod:`sr_runtime.compare`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sr_runtime.compare import psnr_y, ssim_y


def tensor_to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float RGB in [0, 1] -> ``(H, W, 3)`` uint8 RGB, rounded (BasicSR ``tensor2img``)."""
    arr = x.detach().float().clamp(0, 1).cpu().numpy().transpose(1, 2, 0)
    return np.round(arr * 255.0).astype(np.uint8)


@torch.no_grad()
def upscale(net: nn.Module, lq: torch.Tensor, size_multiple: int = 1) -> torch.Tensor:
    """Run ``net`` on ``(N, 3, h, w)`` in [0, 1], reflect-padding h, w up to ``size_multiple`` and cropping back."""
    h, w = lq.shape[-2:]
    ph, pw = (-h) % size_multiple, (-w) % size_multiple
    x = F.pad(lq, (0, pw, 0, ph), mode="reflect") if (ph or pw) else lq
    out = net(x)
    s = out.shape[-1] // x.shape[-1]
    return out[..., : h * s, : w * s]


@torch.no_grad()
def validate(
    net: nn.Module,
    samples: Sequence[Mapping[str, Any]],
    scale: int,
    device: torch.device,
    size_multiple: int = 1,
    max_images: int | None = None,
    save_dir: str | Path | None = None,
) -> dict[str, float]:
    """Mean PSNR-Y and SSIM-Y of ``net`` over paired samples.

    Args:
        net: the generator (switched to eval mode for the call and restored afterwards).
        samples: indexable items (``len`` + ``[i]``; torch datasets wrap indices, so they are not iterated) with
            ``lq`` ``(3, h, w)`` and ``gt`` ``(3, h*scale, w*scale)`` float RGB in [0, 1]
            (a :class:`sr_train.data.PairedDataset`); ``lq_path`` names saved images.
        scale: upscaling factor; also the border cropped before the metrics.
        device: where to run the network.
        size_multiple: input H, W multiple the network needs.
        max_images: stop after this many pairs.
        save_dir: if given, write each output as ``<stem>.png`` there (atomically).

    Returns:
        ``{"psnr_y": dB, "ssim_y": [0, 1], "n": count}``.
    """
    was_training = net.training
    net.eval()
    psnrs, ssims = [], []
    try:
        n_items = len(samples) if max_images is None else min(len(samples), max_images)
        for i in range(n_items):
            item = samples[i]
            lq = item["lq"].unsqueeze(0).to(device)
            out = upscale(net, lq, size_multiple)[0]
            sr = tensor_to_uint8(out)
            gt = tensor_to_uint8(item["gt"])
            h, w = min(sr.shape[0], gt.shape[0]), min(sr.shape[1], gt.shape[1])
            sr, gt = sr[:h, :w], gt[:h, :w]
            psnrs.append(psnr_y(sr, gt, crop_border=scale, order="rgb"))
            ssims.append(ssim_y(sr, gt, crop_border=scale, order="rgb"))
            if save_dir is not None:
                _save_png(Path(save_dir) / f"{Path(str(item.get('lq_path', i))).stem}.png", sr)
    finally:
        net.train(was_training)
    n = len(psnrs)
    finite = [p for p in psnrs if np.isfinite(p)]
    return {
        "psnr_y": float(np.mean(finite)) if finite else float("inf") if n else float("nan"),
        "ssim_y": float(np.mean(ssims)) if n else float("nan"),
        "n": n,
    }


def _save_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    from sr_train.checkpoint import atomic_write

    def write(tmp: str) -> None:
        ok, buf = cv2.imencode(".png", rgb[..., ::-1])
        if not ok:
            raise OSError(f"PNG encoding failed for {path}")
        Path(tmp).write_bytes(buf.tobytes())

    atomic_write(path, write)
