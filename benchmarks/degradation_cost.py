"""Measure the cost of the JPEG methods and of the whole second-order degradation per batch.

    python benchmarks/degradation_cost.py [--batch 4] [--size 256] [--crop 400] [--repeat 10]
        [--device cpu|cuda] [--threads N] [--json out.json]

Reports, as median milliseconds over ``--repeat`` runs after one warm-up:
1. JPEG of a (batch, 3, size, size) float batch: ``jpeg_torch`` (DiffJPEG-style, batched tensors) and
   ``jpeg_cv2`` (OpenCV libjpeg encode + decode per sample, including the tensor <-> uint8 conversions).
2. Each stage of :class:`SecondOrderDegradation` and the whole call on a (batch, 3, crop, crop) GT batch
   (upstream sizes: crop 400 -> gt_size 256, LQ 64), with both JPEG methods.
Thread counts, versions and the machine's load average are printed with the figures: on a shared
machine torch's multi-threaded kernels slow down far more under contention than OpenCV's
single-threaded per-image codec, so compare figures taken at similar load (or with ``--threads 1``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def _median_ms(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _test_batch(n: int, size: int, device: str) -> torch.Tensor:
    yy, xx = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    base = torch.stack([0.5 + 0.35 * torch.sin(xx / (5 + c) + c) * torch.cos(yy / (7 + c)) for c in range(3)])
    gen = torch.Generator().manual_seed(0)
    batch = base[None].repeat(n, 1, 1, 1) + 0.05 * torch.randn((n, 3, size, size), generator=gen)
    return batch.clamp(0, 1).to(device)


def main() -> None:
    import cv2

    from sr_train.degradation import ops
    from sr_train.degradation.config import DegradationConfig
    from sr_train.degradation.kernels import sample_kernels
    from sr_train.degradation.pipeline import SecondOrderDegradation

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=256, help="side of the JPEG test batch")
    ap.add_argument("--crop", type=int, default=400, help="side of the GT batch given to the pipeline")
    ap.add_argument("--gt-size", type=int, default=256)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    ap.add_argument("--threads", type=int, default=0, help="torch and OpenCV threads (0: leave the defaults)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)

    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    res: dict[str, object] = {
        "device": torch.cuda.get_device_name() if dev.startswith("cuda") else platform.processor() or "cpu",
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "torch_threads": torch.get_num_threads(),
        "cv2_threads": cv2.getNumThreads(),
        "batch": args.batch,
        "repeat": args.repeat,
        "load_avg_1min_before": round(os.getloadavg()[0], 2),
    }

    # 1. JPEG alone
    x = _test_batch(args.batch, args.size, dev)
    q = torch.linspace(30, 95, args.batch)
    jt = _median_ms(lambda: ops.jpeg_torch(x, q), args.repeat, sync)
    jc = _median_ms(lambda: ops.jpeg_cv2(x, q), args.repeat, sync)
    a, b = ops.jpeg_torch(x, q), ops.jpeg_cv2(x, q)
    psnr = (10 * torch.log10(1 / ((a - b) ** 2).mean(dim=(1, 2, 3)))).tolist()
    res["jpeg_shape"] = [args.batch, 3, args.size, args.size]
    res["jpeg_torch_ms"] = round(jt, 2)
    res["jpeg_cv2_ms"] = round(jc, 2)
    res["jpeg_torch_vs_cv2_psnr_db"] = [round(p, 2) for p in psnr]

    # 2. the pipeline, stage by stage and whole
    cfg = DegradationConfig()
    gt = _test_batch(args.batch, args.crop, dev)
    ks = [sample_kernels(cfg, np.random.default_rng([0, 0, i])) for i in range(args.batch)]
    k1, k2, k3 = (torch.from_numpy(np.stack([k[j] for k in ks])).to(dev) for j in range(3))
    gen = torch.Generator(device=dev).manual_seed(0)
    stages: dict[str, float] = {}
    stages["usm_sharp"] = _median_ms(lambda: ops.usm_sharp(gt), args.repeat, sync)
    stages["filter2d_21_full"] = _median_ms(lambda: ops.filter2d(gt, k1), args.repeat, sync)
    stages["resize_bicubic_0.75"] = _median_ms(
        lambda: ops.resize(gt, "bicubic", scale_factor=0.75), args.repeat, sync
    )
    lvl, gray = (
        torch.full((args.batch,), 15.0),
        torch.tensor([0.0, 1.0] * (args.batch // 2) + [0.0] * (args.batch % 2)),
    )
    stages["gaussian_noise_full"] = _median_ms(
        lambda: ops.add_gaussian_noise(gt, lvl, gray, gen), args.repeat, sync
    )
    stages["poisson_noise_full"] = _median_ms(
        lambda: ops.add_poisson_noise(gt, torch.full((args.batch,), 1.0), gray, gen), args.repeat, sync
    )
    stages["jpeg_torch_full"] = _median_ms(lambda: ops.jpeg_torch(gt, q), args.repeat, sync)
    stages["jpeg_cv2_full"] = _median_ms(lambda: ops.jpeg_cv2(gt, q), args.repeat, sync)
    res["stage_shape"] = [args.batch, 3, args.crop, args.crop]
    res["stages_ms"] = {k: round(v, 2) for k, v in stages.items()}

    for method in ("torch", "cv2"):
        deg = SecondOrderDegradation(DegradationConfig(jpeg_method=method), args.scale, args.gt_size)
        times = []
        for i in range(args.repeat + 1):  # plans differ per call: median over random batches
            g = torch.Generator(device=dev).manual_seed(i)
            t0 = time.perf_counter()
            deg(gt, k1, k2, k3, g)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        res[f"pipeline_{method}_ms_median"] = round(statistics.median(times[1:]), 1)
        res[f"pipeline_{method}_ms_max"] = round(max(times[1:]), 1)

    res["load_avg_1min_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(res, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
