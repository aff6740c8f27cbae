"""This CPU's float32 FMA throughput, measured with GEMMs at a given thread count.

The peak is the best of torch's GEMM (oneDNN/MKL) and numpy's (OpenBLAS) on square float32 matrices, each
the best of a few repeats. A conv-shaped GEMM (pixels x 576 x 64, what a 64-channel 3x3 conv is after
im2col) is reported too: it is what the models can reach at best. Run it in the same process setup (thread
count, environment) as the configurations it is compared with.
"""

from __future__ import annotations

import os
import time
from typing import Any


def _best(fn: Any, repeats: int) -> float:
    fn()  # warm-up: first-touch allocation and kernel selection
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_peak(threads: int, n: int = 3072, repeats: int = 3) -> dict[str, Any]:
    """Measure float32 GEMM GFLOP/s (2 n^3 FLOPs per square product) with ``threads`` threads.

    Args:
        threads: intra-op threads for torch; numpy's BLAS follows ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``
            which the benchmark sets in the child's environment before numpy is imported.
        n: square matrix size.
        repeats: timed repeats (the best is kept).

    Returns:
        ``{"peak_gflops", "torch_gflops", "numpy_gflops", "conv_gemm_gflops", "n", "threads", "seconds"}``.
    """
    import numpy as np

    t_start = time.perf_counter()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    flops = 2.0 * n**3
    res: dict[str, Any] = {"n": n, "threads": threads,
                           "numpy_gflops": flops / _best(lambda: a @ b, repeats) / 1e9}
    try:
        import torch
    except ImportError:
        res["torch_gflops"] = None
        res["conv_gemm_gflops"] = None
    else:
        torch.set_num_threads(threads)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        res["torch_gflops"] = flops / _best(lambda: ta @ tb, repeats) / 1e9
        m, k, c = 128 * 128, 9 * 64, 64
        x = torch.randn(m, k)
        w = torch.randn(k, c)
        res["conv_gemm_gflops"] = 2.0 * m * k * c / _best(lambda: x @ w, repeats * 3) / 1e9
    res["peak_gflops"] = max(v for v in (res["numpy_gflops"], res["torch_gflops"]) if v is not None)
    res["seconds"] = time.perf_counter() - t_start
    return res


if __name__ == "__main__":
    import json

    print(json.dumps(gemm_peak(int(os.environ.get("SR_BENCH_THREADS", os.cpu_count() or 1))), indent=1))
