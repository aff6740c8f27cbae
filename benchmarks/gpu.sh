#!/usr/bin/env bash
# The CUDA comparison: torch fp16 eager (the reference's GPU default) vs ONNX Runtime CUDA vs TensorRT fp16
# (a static 1080p engine and a dynamic-shape engine), on 1080p frames; frames per second and ratios.
#
#   benchmarks/gpu.sh [--models SRVGG-16,SRVGG-32,RRDBNet-23] [--frames 20] [--out benchmarks/results]
#
# Every path maps a host float32 (1, 3, 1080, 1920) RGB frame to a host float32 x4 frame (what sr-run's
# backends do); torch is also timed with the frame resident on the GPU. A path whose package or provider is
# missing (onnxruntime-gpu, tensorrt / tensorrt-rtx) is reported as skipped with the reason. Engines are built
# with sr_runtime.trt_build.cached_engine into .sr-cache/bench/engines (build time reported separately).
# Writes <out>/gpu.json and <out>/gpu.md naming the GPU. Random weights at the official sizes (as make bench).
#
# Status: written against the project's APIs without a GPU in reach; not yet run on one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu.sh: no nvidia-smi: this needs a CUDA machine" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true

exec "$PY" - "$@" <<'PYEOF'
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.getcwd())
from benchmarks.run import CACHE, FULL, RESULTS, model_specs, prepare_models  # noqa: E402

ap = argparse.ArgumentParser(prog="benchmarks/gpu.sh")
ap.add_argument("--models", default="SRVGG-16,SRVGG-32,RRDBNet-23")
ap.add_argument("--frames", type=int, default=20, help="timed frames per path (RRDBNet: a quarter)")
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--height", type=int, default=1080)
ap.add_argument("--width", type=int, default=1920)
ap.add_argument("--out", type=Path, default=RESULTS)
a = ap.parse_args()
H, W = a.height, a.width

import torch  # noqa: E402

if not torch.cuda.is_available():
    sys.exit("gpu.sh: torch sees no CUDA device (the CPU torch wheel?): install a CUDA build of torch")
gpu = torch.cuda.get_device_name(0)
specs = prepare_models(model_specs(FULL, a.models.split(",")), CACHE, print)
rng = np.random.default_rng(0)
frame = rng.random((1, 3, H, W), dtype=np.float32)


def timed(fn, frames: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(frames):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    return {"seconds": med, "fps": 1.0 / med, "times": ts}


def skip(reason: str) -> dict:
    return {"skipped": " ".join(str(reason).split())[:300]}


def bench_torch(s, frames: int) -> dict:
    """RealESRGANer(half=True) on the whole frame: torch fp16 eager."""
    from sr_train.archs import REGISTRY

    model = REGISTRY.get(s.arch).build(**s.hparams).eval()
    model.load_state_dict(torch.load(s.weights, map_location="cpu", weights_only=True))
    model = model.cuda().half()
    x_dev = torch.from_numpy(frame).cuda().half()

    def resident():
        with torch.no_grad():
            model(x_dev)
        torch.cuda.synchronize()

    def host():
        with torch.no_grad():
            y = model(torch.from_numpy(frame).cuda().half())
        return y.float().cpu().numpy()

    out = {}
    try:
        out["torch-fp16-resident"] = timed(resident, frames, a.warmup)
        out["torch-fp16"] = timed(host, frames, a.warmup)
    except RuntimeError as exc:  # out of memory for RRDBNet at 1080p on a small card
        out["torch-fp16"] = skip(exc)
    return out  # model and x_dev are freed here; the caller empties the CUDA cache


def bench_ort(s, frames: int) -> dict:
    """ONNX Runtime's CUDA provider (needs onnxruntime-gpu instead of onnxruntime), fp32 and fp16 ONNX."""
    from sr_runtime.backends.ort import OrtBackend

    out = {}
    for label, path in (("ort-cuda-fp32", s.onnx), ("ort-cuda-fp16", s.onnx_fp16)):
        if not path:
            out[label] = skip("no fp16 ONNX")
            continue
        try:
            with OrtBackend(path, device="cuda") as be:
                out[label] = {**timed(lambda be=be: be.run(frame), frames, a.warmup), "provider": be.provider}
        except Exception as exc:  # noqa: BLE001 - report and go on
            out[label] = skip(f"{type(exc).__name__}: {exc}")
    return out


def bench_trt(s, frames: int) -> dict:
    """TensorRT (else TensorRT-RTX) engines from the fp16 ONNX: static 1080p and dynamic 64..1080p."""
    from sr_runtime.backends.trt import TrtBackend
    from sr_runtime.trt_build import ShapeProfile, cached_engine

    shape = (1, 3, H, W)
    profiles = {"trt-fp16-static": ShapeProfile(shape, shape, shape),
                "trt-fp16-dynamic": ShapeProfile((1, 3, 64, 64), shape, shape)}
    out = {}
    for label, prof in profiles.items():
        try:
            t0 = time.perf_counter()
            engine = cached_engine(s.onnx_fp16 or s.onnx, prof, cache_dir=CACHE / "engines")
            build_s = time.perf_counter() - t0
            with TrtBackend(engine) as be:
                out[label] = {**timed(lambda be=be: be.run(frame), frames, a.warmup), "build_s": build_s,
                              "provider": be.provider}
        except Exception as exc:  # noqa: BLE001
            out[label] = skip(f"{type(exc).__name__}: {exc}")
    return out


results = []
for s in specs:
    frames = max(3, a.frames // 4) if s.arch == "RRDBNet" else a.frames
    row = {"model": s.name, "frames": frames, **bench_torch(s, frames)}
    torch.cuda.empty_cache()
    row.update({**bench_ort(s, frames), **bench_trt(s, frames)})
    results.append(row)
    print(json.dumps({k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "times"})
                      for k, v in row.items()}), flush=True)

paths = ["torch-fp16", "torch-fp16-resident", "ort-cuda-fp32", "ort-cuda-fp16", "trt-fp16-static",
         "trt-fp16-dynamic"]
lines = [f"# sr-deploy GPU benchmark: {gpu}", "",
         f"{W}x{H} -> x4 frames, host float32 in and out (torch also with the frame resident on the GPU); "
         f"torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
         "fps (ratio to torch fp16 eager, host to host).", "",
         "| model | " + " | ".join(paths) + " |", "|---|" + "---:|" * len(paths)]
for row in results:
    base = row.get("torch-fp16", {}).get("fps")
    cells = []
    for p in paths:
        r = row.get(p)
        if r is None:
            cells.append("–")
        elif "skipped" in r:
            cells.append("skipped")
        else:
            cells.append(f"{r['fps']:.2f}" + (f" ({r['fps'] / base:.2f}×)" if base else ""))
    lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
skips = sorted({f"{p}: {row[p]['skipped']}" for row in results for p in paths if "skipped" in row.get(p, {})})
if skips:
    lines += ["", "Skipped:", *[f"- {s}" for s in skips]]
a.out.mkdir(parents=True, exist_ok=True)
(a.out / "gpu.json").write_text(json.dumps({"gpu": gpu, "height": H, "width": W, "results": results},
                                          indent=1))
(a.out / "gpu.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
