"""The CUDA comparison: torch fp16 eager (the reference's GPU default) vs ONNX Runtime CUDA vs TensorRT fp16
(a static 1080p engine and a dynamic-shape engine), on 1080p frames; frames per second and ratios.

    make bench-gpu [BENCH_ARGS="--models SRVGG-16 --frames 20"]
    .venv/bin/python -m benchmarks.gpu [--models SRVGG-16,SRVGG-32,RRDBNet-23] [--frames 20] [--out DIR]

Every path maps a host float32 (1, 3, 1080, 1920) RGB frame to a host float32 x4 frame (what sr-run's
backends do); torch is also timed with the frame resident on the GPU. A path whose package or provider is
missing (onnxruntime-gpu, tensorrt / tensorrt-rtx) is reported as skipped with the reason. Engines are built
with ``cached_engine`` into .sr-cache/bench/engines (build time reported separately).
Writes ``<out>/gpu.json`` and ``<out>/gpu.md`` naming the GPU. Random weights at the official sizes (as
``make bench``). Exits 2 without a CUDA machine (no ``nvidia-smi``, or a torch that sees no CUDA device).

Status: written against the project's APIs without a GPU in reach; not yet run on one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.run import CACHE, FULL, RESULTS, model_specs, prepare_models
from sr_runtime.fileio import atomic_write_bytes

PATHS = ("torch-fp16", "torch-fp16-resident", "ort-cuda-fp32", "ort-cuda-fp16", "trt-fp16-static",
         "trt-fp16-dynamic")
"""The timed paths, in table order."""


def timed(fn: Callable[[], object], frames: int, warmup: int) -> dict[str, Any]:
    """Median seconds and fps of ``fn`` over ``frames`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(frames):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    return {"seconds": med, "fps": 1.0 / med, "times": ts}


def skip(reason: object) -> dict[str, str]:
    """A skipped path, with the reason on one line (at most 300 characters)."""
    return {"skipped": " ".join(str(reason).split())[:300]}


def bench_torch(s: Any, frame: np.ndarray, frames: int, warmup: int) -> dict[str, Any]:
    """RealESRGANer(half=True) on the whole frame: torch fp16 eager."""
    import torch

    from sr_train.archs import REGISTRY

    model = REGISTRY.get(s.arch).build(**s.hparams).eval()
    model.load_state_dict(torch.load(s.weights, map_location="cpu", weights_only=True))
    model = model.cuda().half()
    x_dev = torch.from_numpy(frame).cuda().half()

    def resident() -> None:
        with torch.no_grad():
            model(x_dev)
        torch.cuda.synchronize()

    def host() -> np.ndarray:
        with torch.no_grad():
            y = model(torch.from_numpy(frame).cuda().half())
        return y.float().cpu().numpy()

    out = {}
    try:
        out["torch-fp16-resident"] = timed(resident, frames, warmup)
        out["torch-fp16"] = timed(host, frames, warmup)
    except RuntimeError as exc:  # out of memory for RRDBNet at 1080p on a small card
        out["torch-fp16"] = skip(exc)
    return out  # model and x_dev are freed here; the caller empties the CUDA cache


def bench_ort(s: Any, frame: np.ndarray, frames: int, warmup: int) -> dict[str, Any]:
    """ONNX Runtime's CUDA provider (needs onnxruntime-gpu instead of onnxruntime), fp32 and fp16 ONNX."""
    from sr_runtime.backends.ort import OrtBackend

    out = {}
    for label, path in (("ort-cuda-fp32", s.onnx), ("ort-cuda-fp16", s.onnx_fp16)):
        if not path:
            out[label] = skip("no fp16 ONNX")
            continue
        try:
            with OrtBackend(path, device="cuda") as be:
                out[label] = {**timed(lambda be=be: be.run(frame), frames, warmup), "provider": be.provider}
        except Exception as exc:  # noqa: BLE001 - report and go on
            out[label] = skip(f"{type(exc).__name__}: {exc}")
    return out


def bench_trt(s: Any, frame: np.ndarray, frames: int, warmup: int) -> dict[str, Any]:
    """TensorRT (else TensorRT-RTX) engines from the fp16 ONNX: static 1080p and dynamic 64..1080p."""
    from sr_runtime.backends.trt import ShapeProfile, TrtBackend, cached_engine

    shape = frame.shape
    profiles = {"trt-fp16-static": ShapeProfile(shape, shape, shape),
                "trt-fp16-dynamic": ShapeProfile((1, 3, 64, 64), shape, shape)}
    out = {}
    for label, prof in profiles.items():
        try:
            t0 = time.perf_counter()
            engine = cached_engine(s.onnx_fp16 or s.onnx, prof, cache_dir=CACHE / "engines")
            build_s = time.perf_counter() - t0
            with TrtBackend(engine) as be:
                out[label] = {**timed(lambda be=be: be.run(frame), frames, warmup), "build_s": build_s,
                              "provider": be.provider}
        except Exception as exc:  # noqa: BLE001
            out[label] = skip(f"{type(exc).__name__}: {exc}")
    return out


def _cell(r: dict[str, Any] | None, base: float | None) -> str:
    if r is None:
        return "–"
    if "skipped" in r:
        return "skipped"
    return f"{r['fps']:.2f}" + (f" ({r['fps'] / base:.2f}×)" if base else "")


def render(results: list[dict[str, Any]], gpu: str, height: int, width: int, torch_version: str,
           stamp: str) -> list[str]:
    """The Markdown report: one row per model, fps and the ratio to torch fp16 eager (host to host)."""
    lines = [f"# sr-deploy GPU benchmark: {gpu}", "",
             f"{width}x{height} -> x4 frames, host float32 in and out (torch also with the frame resident on the "
             f"GPU); torch {torch_version}; {stamp}. fps (ratio to torch fp16 eager, host to host).", "",
             "| model | " + " | ".join(PATHS) + " |", "|---|" + "---:|" * len(PATHS)]
    for row in results:
        base = row.get("torch-fp16", {}).get("fps")
        lines.append(f"| {row['model']} | " + " | ".join(_cell(row.get(p), base) for p in PATHS) + " |")
    skips = sorted({f"{p}: {row[p]['skipped']}" for row in results for p in PATHS if "skipped" in row.get(p, {})})
    if skips:
        lines += ["", "Skipped:", *[f"- {s}" for s in skips]]
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu",
                                 description="torch fp16 vs ONNX Runtime CUDA vs TensorRT fp16 on 1080p frames")
    ap.add_argument("--models", default="SRVGG-16,SRVGG-32,RRDBNet-23")
    ap.add_argument("--frames", type=int, default=20, help="timed frames per path (RRDBNet: a quarter)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--out", type=Path, default=RESULTS)
    return ap.parse_args(argv)


def _summary(row: dict[str, Any]) -> str:
    """A row as one JSON line, without the per-frame times."""
    return json.dumps({k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "times"})
                       for k, v in row.items()})


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if shutil.which("nvidia-smi") is None:
        print("gpu.py: no nvidia-smi: this needs a CUDA machine", file=sys.stderr)
        return 2
    subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                   stdout=sys.stderr, check=False)
    import torch

    if not torch.cuda.is_available():
        print("gpu.py: torch sees no CUDA device (the CPU torch wheel?): install a CUDA build of torch",
              file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0)
    specs = prepare_models(model_specs(FULL, a.models.split(",")), CACHE, print)
    frame = np.random.default_rng(0).random((1, 3, a.height, a.width), dtype=np.float32)
    results = []
    for s in specs:
        frames = max(3, a.frames // 4) if s.arch == "RRDBNet" else a.frames
        row = {"model": s.name, "frames": frames, **bench_torch(s, frame, frames, a.warmup)}
        torch.cuda.empty_cache()
        row.update({**bench_ort(s, frame, frames, a.warmup), **bench_trt(s, frame, frames, a.warmup)})
        results.append(row)
        print(_summary(row), flush=True)
    lines = render(results, gpu, a.height, a.width, torch.__version__,
                   time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    a.out.mkdir(parents=True, exist_ok=True)
    data = {"gpu": gpu, "height": a.height, "width": a.width, "results": results}
    atomic_write_bytes(a.out / "gpu.json", json.dumps(data, indent=1).encode())
    atomic_write_bytes(a.out / "gpu.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
