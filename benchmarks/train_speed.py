"""Training speed (iterations/s) of shipped sr-train configs on this machine; writes benchmarks/results/train_speed.json.

Each case runs the real Trainer (data loading, second-order degradation, pool, step, EMA) on a synthetic folder
of 480x480 images; the first ``warm`` iterations are excluded and the rate is taken over the next ``iters``.

    python benchmarks/train_speed.py                 # tiny_cpu, x4_compact_net, x4_compact
    python benchmarks/train_speed.py --cases tiny_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

CASES = {
    # name: (config, warm, iters, extra overrides)
    "tiny_cpu": ("tiny_cpu", 5, 40, []),
    "x4_compact_net": ("x4_compact_net", 1, 3, []),
    # the GAN stage needs VGG19 ImageNet weights; a random VGG19 costs the same compute
    "x4_compact": ("x4_compact", 1, 2, ["train.perceptual_opt.allow_random_init=true"]),
}


def _images(folder: Path, n: int, size: int) -> None:
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), (0, 0), 2)
        cv2.imwrite(str(folder / f"{i:03d}.png"), img)


def run_case(name: str, workdir: Path, num_worker: int) -> dict:
    import torch

    from sr_train.config import apply_overrides, from_yaml
    from sr_train.engine.trainer import Trainer

    cfg_name, warm, iters, extra = CASES[name]
    cfg = from_yaml(cfg_name)
    gt = workdir / "gt"
    if not gt.exists():
        _images(gt, 24, 480)
    sets = [f"datasets.train.dataroot_gt={gt}", f"train.total_iter={warm + iters}", f"logger.print_freq={warm}",
            f"logger.save_checkpoint_freq={10**6}", "train.device=cpu", *extra]
    if cfg_name != "tiny_cpu":
        sets.append(f"train.num_worker={num_worker}")
    cfg = apply_overrides(cfg, sets)
    out = workdir / name
    t0 = time.perf_counter()
    Trainer(cfg, out, progress=False).fit()
    wall = time.perf_counter() - t0
    logs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steady = logs[-1]
    return {
        "config": cfg_name,
        "arch": cfg.network_g.type,
        "hparams": cfg.network_g.resolved(),
        "model_type": cfg.model_type,
        "batch_size": cfg.batch_size,
        "gt_size": cfg.datasets.train.gt_size,
        "crop_pad_size": cfg.datasets.train.crop_pad_size,
        "num_worker": cfg.num_worker,
        "jpeg_method": cfg.degradation.jpeg_method,
        "warmup_iters": warm,
        "timed_iters": iters,
        "it_per_s": round(steady["it_s"], 4),
        "s_per_it": round(1.0 / steady["it_s"], 3),
        "samples_per_s": round(steady["it_s"] * cfg.batch_size, 3),
        "wall_s_incl_setup": round(wall, 2),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--num-worker", type=int, default=2, help="DataLoader workers for the x4 configs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_speed.json"))
    args = ap.parse_args()
    import torch

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            results[name] = run_case(name, Path(tmp), args.num_worker)
            print(f"{name}: {results[name]['it_per_s']} it/s ({results[name]['s_per_it']} s/it, "
                  f"batch {results[name]['batch_size']})", flush=True)
    record = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                    "loadavg_at_end": list(os.getloadavg()), "torch": torch.__version__, "device": "cpu"},
        "note": "shared 2-core machine; other jobs were running (see loadavg), so figures are lower bounds",
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
