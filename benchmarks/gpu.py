"""The GPU check: one script, one GPU machine, at most ~8 minutes; each part skips with its reason.

    python -m benchmarks.gpu --out DIR [--parts env,tests,cuda,runpath,parity,speed] [--budget-s 420]
    make bench-gpu BENCH_ARGS="--out benchmarks/results/gpu"

Runs from a checkout with only numpy, onnx, onnxruntime and torch installed (no ``pip install`` of sr-deploy;
OpenCV, click and tqdm are not needed). Parts:

``env``      GPU, driver, CUDA (driver and runtime), torch, cuda-python, TensorRT / TensorRT-RTX, ONNX Runtime
             (and its providers), cupy.
``tests``    the ``gpu``-marked tests (``pytest -m gpu``), when pytest is installed.
``cuda``     :func:`benchmarks.gpu_runpath.check_cuda`: the TensorRT backend's cuda-python code on the real
             driver (pinned buffers, async copies, stream sync, frees; torch/cupy device buffers; 200 cycles).
``runpath``  :func:`benchmarks.gpu_runpath.check_runpath`: ``TrtBackend.run`` on the real driver with TensorRT
             stood in by torch on the backend's stream; parity, 4 threads, memory over 200 runs.
``parity``   the official model (realesr-animevideov3, SRVGG-16) in torch fp32 on the GPU against torch fp16,
             torch on the CPU, ONNX Runtime CPU / CUDA (fp32, fp16) and TensorRT (fp32, fp16 engines):
             max abs and PSNR (the measured figures for the tests' tolerance tables).
``speed``    frames/s of SRVGG-16 and RRDBNet-23 at 720p and 1080p input (x4) in torch fp16 eager (the
             reference), and ONNX Runtime CUDA / TensorRT fp16 where installed. RRDBNet runs as a batch of four
             padded 2x2 tiles: a whole 1080p frame has a 64x4320x7680 activation (2.12e9 elements, just under
             2^31), a risky shape for int32-indexed kernels.

Writes ``DIR/gpu.json`` and ``DIR/gpu.md``. Exit status: 0 all run parts passed or skipped, 1 a part failed,
2 no CUDA device.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gpu_runpath import check_cuda, check_runpath, skipped, status

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT.parent / "shared" / "data" / "realesr-animevideov3.pth"
PARTS = ("env", "tests", "cuda", "runpath", "parity", "speed")
GPU_TESTS = ("tests",)
SIZES = {"720p": (720, 1280), "1080p": (1080, 1920)}
SRVGG16 = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}
RRDB23 = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32}


# ------------------------------------------------------------------------------------------ helpers
def version_of(module: str) -> str:
    """``module.__version__``, or why it is not importable."""
    try:
        return str(getattr(importlib.import_module(module), "__version__", "?"))
    except Exception as exc:  # noqa: BLE001 - only reporting
        return f"not installed ({type(exc).__name__})"


def timed(fn: Callable[[], object], frames: int, warmup: int) -> dict[str, Any]:
    """Seconds per call of ``fn`` (after ``warmup`` calls): median, best, spread, and fps from the median."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(frames):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    return {"fps": round(1 / med, 3), "median_s": round(med, 5), "best_s": round(min(ts), 5),
            "spread": round((max(ts) - min(ts)) / med, 3), "frames": frames}


def image(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Deterministic image-like float32 ``(n, 3, h, w)`` in [0, 1]: gradients, an edge and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([np.sin(xx / 9 + c) * np.cos(yy / 13 - c) for c in range(3)])
    base[:, :, w // 2:] += 0.3
    x = 0.45 + 0.3 * base + 0.05 * rng.standard_normal((3, h, w)).astype(np.float32)
    return np.clip(np.broadcast_to(x, (n, 3, h, w)), 0, 1).astype(np.float32)


def model_hparams(weights: Path) -> dict[str, Any]:
    """The hyperparameters of a checkpoint (read from its tensor shapes)."""
    from sr_train.checkpoint import load_generator

    return load_generator(weights).hparams


def build(arch: str, hparams: dict[str, Any], weights: Path | None = None) -> Any:
    """A generator in eval mode on the CPU: the official weights when given, else random (seed 0)."""
    import torch

    if weights is not None:
        from sr_train.checkpoint import load_generator

        return load_generator(weights).model.eval()
    from sr_train.archs import REGISTRY

    torch.manual_seed(0)
    return REGISTRY.get(arch).build(**hparams).eval()


# ------------------------------------------------------------------------------------------ parts
def part_env() -> dict[str, Any]:
    """Versions of everything the GPU paths use."""
    out: dict[str, Any] = {"python": platform.python_version(), "machine": platform.node()}
    if shutil.which("nvidia-smi"):
        q = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap",
                            "--format=csv,noheader"], capture_output=True, text=True, check=False, timeout=30)
        out["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
    else:
        out["nvidia_smi"] = "not found"
    try:
        import torch

        out["torch"] = f"{torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name(0)
            out["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    except ImportError:
        out["torch"] = "not installed"
    out.update(_cuda_versions())
    for mod in ("tensorrt", "tensorrt_rtx", "onnxruntime", "onnx", "cupy"):
        out[mod] = version_of(mod)
    try:
        import onnxruntime

        out["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        pass
    return {"status": "PASS", **out}


def _cuda_versions() -> dict[str, Any]:
    from sr_runtime.backends.trt.cuda import import_cudart, probe_gpu

    rt = import_cudart()
    if rt is None:
        return {"cuda_python": "not installed"}
    probe = probe_gpu(0)
    drv, run = rt.cudaDriverGetVersion()[1], rt.cudaRuntimeGetVersion()[1]
    return {"cuda_python": version_of("cuda.bindings"), "cuda_driver_api": f"{drv // 1000}.{drv % 1000 // 10}",
            "cuda_runtime_of_cuda_python": f"{run // 1000}.{run % 1000 // 10}",
            "cuda_python_sees": probe.gpu.name if probe.gpu else probe.reason}


def part_tests(timeout: float) -> dict[str, Any]:
    """``pytest -m gpu`` over the files that hold gpu tests (a subprocess with a time limit)."""
    if importlib.util.find_spec("pytest") is None:
        return skipped("pytest is not installed here")
    # modules that need packages absent on a bare GPU machine (OpenCV, click) fail to collect: go on without them
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-rs", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", *GPU_TESTS]
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "FAIL", "note": f"pytest -m gpu took more than {timeout:.0f} s"}
    lines = (r.stdout + r.stderr).strip().splitlines()
    summary = lines[-1] if lines else ""
    # 0 passed, 5 nothing selected; 1 also for collection errors alone (reported in the summary), not failures
    ok = r.returncode in (0, 1, 5) and " failed" not in summary
    return status(ok, returncode=r.returncode, summary=summary, tail=lines[-25:])


def _torch_paths(model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        t = torch.from_numpy(x)
        out = {"torch-cpu-fp32": model(t).numpy()}
        m = model.cuda()
        out["torch-cuda-fp32"] = m(t.cuda()).float().cpu().numpy()
        out["torch-cuda-fp16"] = m.half()(t.cuda().half()).float().cpu().numpy()
        model.float().cpu()
    return out


def _onnx_files(model: Any, arch: str, hparams: dict[str, Any], folder: Path) -> dict[str, Path | str]:
    """The fp32 ONNX (always) and the fp16 ONNX (needs onnxconverter-common), or why not."""
    from sr_export.onnx import export_onnx
    from sr_train.archs import REGISTRY

    fp32 = folder / f"{arch}.onnx"
    export_onnx(model, REGISTRY.get(arch), hparams, fp32)
    out: dict[str, Path | str] = {"float32": fp32}
    try:
        from sr_export.fp16 import convert_fp16

        convert_fp16(fp32, folder / f"{arch}_fp16.onnx")
        out["float16"] = folder / f"{arch}_fp16.onnx"
    except ImportError as exc:
        out["float16"] = f"no fp16 ONNX ({exc.name or exc} not installed)"
    return out


def _ort_paths(onnx: dict[str, Path | str], x: np.ndarray) -> dict[str, Any]:
    from sr_runtime.backends.ort import OrtBackend, available_providers

    out: dict[str, Any] = {}
    with OrtBackend(onnx["float32"], "cpu") as be:  # type: ignore[arg-type]
        out["ort-cpu-fp32"] = be.run(x)
    cuda_ok = "CUDAExecutionProvider" in available_providers()
    for prec in ("float32", "float16"):
        label = f"ort-cuda-{prec.replace('float', 'fp')}"
        if not cuda_ok:
            out[label] = skipped("onnxruntime has no CUDAExecutionProvider (onnxruntime-gpu not installed)")
        elif not isinstance(onnx[prec], Path):
            out[label] = skipped(onnx[prec])
        else:
            with OrtBackend(onnx[prec], "cuda") as be:
                out[label] = be.run(x)
    return out


def trt_flavor_here() -> tuple[Any, str]:
    """``(TrtFlavor, "")`` when a TensorRT flavour can build for the GPU here, else ``(None, reason)``."""
    from sr_runtime.backends.trt import TrtMissingError, load_flavor
    from sr_runtime.backends.trt.cuda import probe_gpu
    from sr_runtime.backends.trt.flavor import rtx_supports

    try:
        fl = load_flavor("auto")
    except TrtMissingError as exc:
        return None, f"no TensorRT ({exc.detail or exc})"
    probe = probe_gpu()
    if probe.gpu is None:
        return None, f"cuda-python finds no GPU: {probe.reason}"
    if fl.name == "rtx" and not rtx_supports(fl.trt, probe.gpu.compute_capability):
        return None, f"{fl.label} has no target for sm {probe.gpu.compute_capability} ({probe.gpu.name})"
    return fl, ""


def trt_backend(onnx: Path, shape: tuple[int, ...], folder: Path) -> tuple[Any, float]:
    """A TensorRT engine for exactly ``shape`` (static profile) from ``onnx``, opened; and its build seconds."""
    from sr_runtime.backends.trt import ShapeProfile, TrtBackend, export_engine

    fl, _ = trt_flavor_here()
    engine = folder / f"{onnx.stem}-{'x'.join(map(str, shape))}.engine"
    t0 = time.perf_counter()
    export_engine(onnx, engine, ShapeProfile(shape, shape, shape), flavor=fl.name,  # type: ignore[arg-type]
                  compute_capabilities=["current"])
    return TrtBackend(engine), time.perf_counter() - t0


def _trt_paths(onnx: dict[str, Path | str], x: np.ndarray, folder: Path) -> dict[str, Any]:
    fl, why = trt_flavor_here()
    out: dict[str, Any] = {}
    for prec in ("float32", "float16"):
        label = f"trt-{prec.replace('float', 'fp')}"
        if fl is None or not isinstance(onnx[prec], Path):
            out[label] = skipped(why or onnx[prec])  # never the fp32 ONNX under an fp16 label
            continue
        be, _ = trt_backend(onnx[prec], tuple(x.shape), folder)  # type: ignore[arg-type]
        with be:
            out[label] = be.run(x)
    return out


def part_parity(weights: Path | None) -> dict[str, Any]:
    """Every path against torch fp32 on the GPU, official weights when present."""
    import tempfile

    from sr_runtime.compare import max_abs, psnr

    model = build("SRVGGNetCompact", SRVGG16, weights)
    x = image(1, 180, 320)
    results = _torch_paths(model, x)
    hp = SRVGG16 if weights is None else model_hparams(weights)
    with tempfile.TemporaryDirectory() as tmp:
        onnx = _onnx_files(model, "SRVGGNetCompact", hp, Path(tmp))
        results.update(_ort_paths(onnx, x))
        results.update(_trt_paths(onnx, x, Path(tmp)))
    ref = results.pop("torch-cuda-fp32")
    rows = {}
    for name, y in results.items():
        if isinstance(y, dict):
            rows[name] = y
            continue
        rows[name] = {"status": "PASS", "max_abs": float(f"{max_abs(y, ref):.3g}"), "psnr": round(psnr(y, ref), 2)}
    model_name = "realesr-animevideov3 (official)" if weights else "SRVGG-16 random weights (no official file)"
    return {"status": "PASS", "model": model_name, "input": list(x.shape), "reference": "torch-cuda-fp32",
            "rows": rows}


def _tiles(n_h: int, n_w: int, h: int, w: int, pad: int = 10) -> np.ndarray:
    """A batch of ``n_h * n_w`` padded tiles of an ``h x w`` frame (what a 2x2 tiled run feeds the model)."""
    return image(n_h * n_w, h // n_h + 2 * pad, w // n_w + 2 * pad)


def _speed_torch(model: Any, x: np.ndarray, frames: int) -> dict[str, Any]:
    import torch

    m = model.cuda().half()
    xd = torch.from_numpy(x).cuda().half()

    def host() -> None:
        with torch.no_grad():
            m(torch.from_numpy(x).cuda().half()).float().cpu()

    def resident() -> None:
        with torch.no_grad():
            m(xd)
        torch.cuda.synchronize()

    try:
        return {"torch-fp16": timed(host, frames, 2), "torch-fp16-resident": timed(resident, frames, 2)}
    finally:
        model.float().cpu()
        torch.cuda.empty_cache()


def _speed_backends(model: Any, arch: str, hp: dict[str, Any], xs: dict[str, np.ndarray], frames: int,
                    folder: Path) -> dict[str, dict[str, Any]]:
    """ONNX Runtime CUDA (fp32, fp16) and TensorRT fp16 per size, or the reason each is skipped."""
    from sr_runtime.backends.ort import OrtBackend, available_providers

    fl, trt_why = trt_flavor_here()
    cuda_ep = "CUDAExecutionProvider" in available_providers()
    if not cuda_ep and fl is None:
        why = f"no onnxruntime-gpu; {trt_why}"
        return {size: {"ort-cuda": skipped(why), "trt-fp16": skipped(why)} for size in xs}
    onnx = _onnx_files(model, arch, hp, folder)
    rows: dict[str, dict[str, Any]] = {size: {} for size in xs}
    for size, x in xs.items():
        for prec in ("float32", "float16"):
            label = f"ort-cuda-{prec.replace('float', 'fp')}"
            if not cuda_ep or not isinstance(onnx[prec], Path):
                rows[size][label] = skipped("no onnxruntime-gpu" if not cuda_ep else onnx[prec])
                continue
            with OrtBackend(onnx[prec], "cuda") as be:
                rows[size][label] = {**timed(lambda be=be, x=x: be.run(x), frames, 2), "provider": be.provider}
        if fl is None or not isinstance(onnx["float16"], Path):
            rows[size]["trt-fp16"] = skipped(trt_why or onnx["float16"])  # no fp32 engine under this label
            continue
        be, build_s = trt_backend(onnx["float16"], tuple(x.shape), folder)  # type: ignore[arg-type]
        with be:
            rows[size]["trt-fp16"] = {**timed(lambda be=be, x=x: be.run(x), frames, 2), "build_s": round(build_s, 1),
                                      "provider": be.provider}
    return rows


def part_speed(frames: int, deadline: float) -> dict[str, Any]:
    """frames/s per model and size; torch fp16 eager is the reference (host to host)."""
    import tempfile

    rows: dict[str, Any] = {}
    cases = [("SRVGG-16", "SRVGGNetCompact", SRVGG16, 1), ("RRDBNet-23 (2x2 tiles)", "RRDBNet", RRDB23, 2)]
    for label, arch, hp, grid in cases:
        model = build(arch, hp)
        n = frames if grid == 1 else max(3, frames // 5)
        xs = {size: image(1, h, w) if grid == 1 else _tiles(grid, grid, h, w) for size, (h, w) in SIZES.items()}
        for size, x in xs.items():
            key = f"{label} {size}"
            rows[key] = skipped("time budget spent") if time.monotonic() > deadline else {
                "status": "PASS", "input": list(x.shape), **_speed_torch(model, x, n)}
        if time.monotonic() > deadline:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for size, extra in _speed_backends(model, arch, hp, xs, n, Path(tmp)).items():
                rows[f"{label} {size}"].update(extra)
    return {"status": "PASS", "rows": rows}


# ------------------------------------------------------------------------------------------ report
def render(results: dict[str, Any]) -> list[str]:
    """The Markdown report."""
    env = results.get("env", {})
    lines = [f"# GPU check: {env.get('gpu', 'no GPU')}", "", f"{results['stamp']}; {env.get('nvidia_smi', '')}", "",
             "| part | status | note |", "|---|---|---|"]
    for part in PARTS:
        if part in results:
            r = results[part]
            lines.append(f"| {part} | {r['status']} | {r.get('note', r.get('summary', ''))} |")
    lines += ["", "## Environment", ""] + [f"- {k}: {v}" for k, v in env.items() if k != "status"]
    for part in ("cuda", "runpath", "tests"):
        if part in results:
            lines += ["", f"## {part}", ""] + [f"- {k}: {v}" for k, v in results[part].items() if k != "status"]
    lines += _table("parity", results.get("parity", {}).get("rows", {}), ("max_abs", "psnr"))
    lines += _table("speed (fps from the median; best s; spread)", results.get("speed", {}).get("rows", {}), None)
    return lines


def _table(title: str, rows: dict[str, Any], cols: tuple[str, ...] | None) -> list[str]:
    if not rows:
        return []
    out = ["", f"## {title}", ""]
    for name, r in rows.items():
        if r.get("status") == "SKIP":
            out.append(f"- {name}: skipped ({r['note']})")
        elif cols:
            out.append(f"- {name}: " + ", ".join(f"{c}={r.get(c)}" for c in cols))
        else:
            base = r.get("torch-fp16", {}).get("fps")
            cells = [_speed_cell(k, v, base) for k, v in r.items() if isinstance(v, dict)]
            out.append(f"- {name} {r.get('input')}: " + "; ".join(cells))
    return out


def _speed_cell(path: str, v: dict[str, Any], base: float | None) -> str:
    if v.get("status") == "SKIP":
        return f"{path} skipped ({v['note']})"
    ratio = f", {v['fps'] / base:.2f}x torch-fp16" if base and path != "torch-fp16" else ""
    return f"{path} {v['fps']} fps (best {v['best_s']} s, spread {v['spread']}{ratio})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--budget-s", type=float, default=420.0, help="stop starting new work after this many seconds")
    ap.add_argument("--frames", type=int, default=20, help="timed frames per SRVGG case (RRDBNet: a fifth)")
    ap.add_argument("--weights", type=Path, default=OFFICIAL, help="official realesr-animevideov3.pth")
    return ap.parse_args(argv)


def run_parts(a: argparse.Namespace, parts: list[str], deadline: float) -> dict[str, Any]:
    """Each part in order, a failure or exception recorded and the next part run."""
    weights = a.weights if a.weights.is_file() else None
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "env": part_env,
        "tests": lambda: part_tests(max(30.0, min(240.0, deadline - time.monotonic()))),
        "cuda": check_cuda,
        "runpath": lambda: check_runpath(build("SRVGGNetCompact", SRVGG16, weights).cuda()),
        "parity": lambda: part_parity(weights),
        "speed": lambda: part_speed(a.frames, deadline),
    }
    results: dict[str, Any] = {}
    for part in parts:
        if time.monotonic() > deadline and part != "env":
            results[part] = skipped("time budget spent")
            continue
        t0 = time.monotonic()
        try:
            results[part] = jobs[part]()
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the others
            results[part] = {"status": "FAIL", "note": f"{type(exc).__name__}: {exc}"[:300]}
        results[part]["seconds"] = round(time.monotonic() - t0, 1)
        print(f"{part}: {results[part]['status']} ({results[part]['seconds']} s)", flush=True)
    return results


def has_cuda() -> bool:
    """A CUDA device seen by torch (or, without torch, by cuda-python)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        from sr_runtime.backends.trt.cuda import current_gpu

        return current_gpu() is not None


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    parts = [p for p in a.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        print(f"gpu.py: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    deadline = time.monotonic() + a.budget_s
    cuda = has_cuda()
    results = run_parts(a, parts if cuda else ["env"], deadline)
    results["stamp"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "gpu.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (a.out / "gpu.md").write_text("\n".join(render(results)) + "\n")
    print(f"wrote {a.out / 'gpu.md'}")
    if not cuda:
        print("gpu.py: no CUDA device (torch sees none): only the environment was recorded", file=sys.stderr)
        return 2
    failed = [p for p in parts if results.get(p, {}).get("status") == "FAIL"]
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("CUDA_MODULE_LOADING", "LAZY")
    sys.exit(main())
