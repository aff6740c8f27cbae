"""Tile plans compared on one ORT session: fixed cores (the plan before balancing) vs balanced cores.

640x480 -> x4, tile 256 / pad 10, one ORT thread, best of 2 per plan; the two plans are timed twice,
interleaved, so drift on a shared machine shows up. The outputs of the two plans are compared too.

Usage: OMP_NUM_THREADS=1 python benchmarks/tile_plan.py MODEL.onnx
"""

from __future__ import annotations

import sys
import time

import cv2
import numpy as np

import sr_runtime.tiling as tiling
from sr_runtime.backends.ort import OrtBackend
from sr_runtime.errors import SrError


def main(path: str) -> int:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((480, 640, 3)) * 255).astype(np.uint8), (0, 0), 2)
    balanced = tiling._balanced
    plans = {"fixed": lambda size, tile, m: tile, "balanced": balanced}
    outs: dict[str, np.ndarray] = {}
    try:
        with OrtBackend(path, device="cpu", threads=1) as be:
            for rep in range(2):
                for name, fn in plans.items():
                    tiling._balanced = fn
                    plan = tiling.plan_tiles(480, 640, tile=256, pad=10)
                    executed = sum(t.src.height * t.src.width for t in plan.tiles) / (480 * 640)
                    best = float("inf")
                    for _ in range(2):
                        t0 = time.perf_counter()
                        outs[name] = tiling.run_tiled(img, be.run, scale=4, tile=256, pad=10, batch=1)
                        best = min(best, time.perf_counter() - t0)
                    print(f"round {rep + 1} {name}: {best:.3f} s, executed {executed:.2f}x the image's pixels, "
                          f"{len(plan)} windows of {plan.window[0]}x{plan.window[1]}", flush=True)
    finally:
        tiling._balanced = balanced
    print("identical outputs:", bool(np.array_equal(outs["fixed"], outs["balanced"])))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        sys.exit(main(sys.argv[1]))
    except SrError as exc:  # a bad model file: one line, no traceback
        sys.exit(f"error: {exc}")
