"""``make bench``: our paths against the upstream algorithm, one child process per configuration.

Usage::

    python -m benchmarks.run [--quick] [--threads N] [--models SRVGG-16,RRDBNet-23] [--out benchmarks/results]

For each model (SRVGGNetCompact with 16 and 32 convs and RRDBNet with 23 blocks, random weights at the official
sizes, plus the shipped ``sr_runtime/models/default.onnx`` when present) and each path (the upstream
reference in torch eager, whole and tiled; ORT fp32 whole, tiled and batched tiles; ORT fp16; OpenVINO whole,
tiled and batched; the CPU peer vs-mlrt OV_CPU whole and tiled (``benchmarks/peers.py``); the reference folder loop
and ``sr-run`` on a folder; on a folder of full-size photos the upstream loop, ``sr-run --tile``, ``sr-run`` with its
defaults and vs-mlrt OV_CPU, cold), a child process loads the model, warms up, times ``repeats`` runs, and reports; the parent takes the child's peak RSS from ``os.wait4`` (exact per child, stdlib). A GEMM probe
measures this CPU's float32 peak with the same thread count. Results go to ``<out>/bench.json``, then
``benchmarks.report`` writes ``bench.md`` and ``bench.png``.

Models, inputs and outputs are cached under ``.sr-cache/bench`` (git-ignored); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sr_runtime.fileio import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".sr-cache" / "bench"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_ONNX = ROOT / "sr_runtime" / "models" / "default.onnx"
SKIMAGE_WHEELS = Path("/tmp/skimg")
PHOTO_SOURCES = (ROOT / "sr_runtime" / "models" / "sample.png",)
OFFICIAL_SRVGG16 = ROOT.parent / "shared" / "data" / "realesr-animevideov3.pth"
"""The official realesr-animevideov3 weights (SRVGG-16 runs them when the file is there; same speed either way)."""
PHOTOS = 4
"""Full-size photos in the photos folder (the photo and its flips)."""

CHILD_TIMEOUT_S = 900


# =========================================================================== configuration
@dataclass(frozen=True)
class ModelSpec:
    """One benchmarked model."""

    name: str
    """Short label used in tables (``SRVGG-16``)."""
    arch: str
    """Registry id."""
    hparams: dict[str, Any]
    """Full hyperparameters."""
    photo: tuple[int, int]
    """``(width, height)`` of the photo input for this model."""
    tile: int
    """Tile size (input pixels) of the tiled paths."""
    repeats: int
    """Timed runs per configuration (after one warm-up)."""
    onnx: str = ""
    """fp32 ONNX path (filled by :func:`prepare_models`)."""
    onnx_fp16: str = ""
    """fp16 ONNX path, empty when the conversion failed."""
    weights: str = ""
    """torch state-dict path for the reference."""
    weights_note: str = "random init (seed 0), official sizes"
    """Where the weights come from."""


@dataclass(frozen=True)
class Tier:
    """Sizes and repeats of a full or quick run."""

    srvgg_photo: tuple[int, int]
    """``(width, height)`` of the photo for SRVGGNetCompact models."""
    rrdb_photo: tuple[int, int]
    """``(width, height)`` of the photo for RRDBNet (about 29x the FLOPs per pixel of SRVGG-16)."""
    srvgg_tile: int
    """Tile of the tiled paths for SRVGG (the reference's ``tile``)."""
    rrdb_tile: int
    """Tile of the tiled paths for RRDBNet (scaled with its smaller photo: the same 3x2 grid)."""
    srvgg_repeats: int
    """Timed runs per SRVGG configuration (after one warm-up)."""
    rrdb_repeats: int
    """Timed runs per RRDBNet configuration."""
    big: tuple[int, int]
    """``(width, height)`` of the memory job."""
    folder_grid: int = 4
    """The folder is the photo cut into ``folder_grid`` x ``folder_grid`` crops."""
    profile: bool = True
    """Per-operator profiles by default."""
    probe_n: int = 3072
    """Matrix size of the GEMM probe."""


FULL = Tier(srvgg_photo=(640, 480), rrdb_photo=(160, 120), srvgg_tile=256, rrdb_tile=64,
            srvgg_repeats=3, rrdb_repeats=2, big=(2000, 1500))
QUICK = Tier(srvgg_photo=(128, 96), rrdb_photo=(32, 24), srvgg_tile=48, rrdb_tile=16,
             srvgg_repeats=1, rrdb_repeats=1, big=(320, 240), folder_grid=2, profile=False,
             probe_n=2048)
QUICK_MODELS = ("SRVGG-16",)
"""Models of ``--quick`` unless ``--models`` says otherwise."""
TILE_PAD = 10
BATCH = 4
PRE_PAD = 0  # inference_realesrgan.py's default; sr-run's default too


def model_specs(tier: Tier, names: list[str] | None) -> list[ModelSpec]:
    """The benchmarked models (the shipped default model only when its file exists)."""
    specs = [
        ModelSpec("SRVGG-16", "SRVGGNetCompact", {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16,
                                                  "upscale": 4, "act_type": "prelu"},
                  tier.srvgg_photo, tier.srvgg_tile, tier.srvgg_repeats),
        ModelSpec("SRVGG-32", "SRVGGNetCompact", {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 32,
                                                  "upscale": 4, "act_type": "prelu"},
                  tier.srvgg_photo, tier.srvgg_tile, tier.srvgg_repeats),
        ModelSpec("RRDBNet-23", "RRDBNet", {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64,
                                            "num_block": 23, "num_grow_ch": 32},
                  tier.rrdb_photo, tier.rrdb_tile, tier.rrdb_repeats),
    ]
    if names:
        specs = [s for s in specs if s.name in names]
    return specs


# =========================================================================== environment
def cpu_info() -> dict[str, Any]:
    """CPU model, flags of interest and core count from /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, val = line.partition(":")
        if key.strip() == "model name" and model in ("unknown", "", platform.processor()):
            model = val.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(val.split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "f16c")
    return {"model": model, "logical_cpus": os.cpu_count(), "flags": [f for f in wanted if f in flags]}


def versions() -> dict[str, str]:
    """Versions of Python and the packages on the benchmarked paths."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("sr-deploy", "torch", "onnxruntime", "openvino", "onnx", "numpy", "opencv-python-headless",
                 "onnxconverter-common"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_jiffies() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat (0, 0 where unreadable)."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    user, nice, system, _idle, _iowait, irq, softirq = f[:7]
    steal = f[7] if len(f) > 7 else 0
    return (user + nice + system + irq + softirq) / hz, steal / hz


def _status_mb(key: str) -> float | None:
    """A ``/proc/self/status`` memory line (VmRSS, VmHWM) in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


# =========================================================================== inputs
def _structured_image(w: int, h: int) -> Any:
    """A deterministic photo-like BGR uint8 image: gradients, edges, disks, text-like stripes and noise."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.5 + 0.4 * np.sin(xx / (37 + 11 * c) + c) * np.cos(yy / (23 + 7 * c) - c) for c in range(3)], -1)
    img = (img * 255).astype(np.uint8)
    for _ in range(40):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(3, max(4, w // 8))), c, -1)
    for _ in range(20):
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p1, p2, c, int(rng.integers(1, 4)))
    for i in range(0, h, max(8, h // 12)):
        cv2.putText(img, "sr-deploy 0123456789", (5, i + 8), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (20, 20, 20), 1)
    noise = rng.normal(0, 4, img.shape)
    return np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _source_photo() -> tuple[Any, str]:
    """The base photo: the shipped sample, else scikit-image's coffee from a local wheel, else synthetic."""
    import zipfile

    import cv2
    import numpy as np

    for p in PHOTO_SOURCES:
        if p.is_file():
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            if img is not None:
                return img, str(p.relative_to(ROOT))
    for whl in sorted(SKIMAGE_WHEELS.glob("scikit_image-*.whl")) if SKIMAGE_WHEELS.is_dir() else []:
        try:
            with zipfile.ZipFile(whl) as z:
                data = z.read("skimage/data/coffee.png")
        except (KeyError, OSError, zipfile.BadZipFile):
            continue
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is not None:
            return img, f"{whl.name}:skimage/data/coffee.png"
    return _structured_image(640, 480), "synthetic (benchmarks.run._structured_image)"


def prepare_inputs(cache: Path, sizes: set[tuple[int, int]], big: tuple[int, int], grid: int) -> dict[str, Any]:
    """Write the photo at every size, its ``grid`` x ``grid`` crops as a folder, a folder of the photo and its
    flips, a big image and a tiny one.

    Returns:
        ``{"source", "photo": {"WxH": path}, "folder": {"WxH": dir}, "photos": {"WxH": dir}, "big": path,
        "tiny": path}``.
    """
    import cv2

    base, source = _source_photo()
    out: dict[str, Any] = {"source": source, "photo": {}, "folder": {}}
    d = cache / "inputs"
    d.mkdir(parents=True, exist_ok=True)
    for w, h in sorted(sizes):
        img = cv2.resize(base, (w, h), interpolation=cv2.INTER_AREA if w < base.shape[1] else cv2.INTER_CUBIC)
        p = d / f"photo_{w}x{h}.png"
        cv2.imwrite(str(p), img)
        out["photo"][f"{w}x{h}"] = str(p)
        fd = d / f"folder_{w}x{h}"
        fd.mkdir(exist_ok=True)
        cw, ch = w // grid, h // grid
        for i in range(grid):
            for j in range(grid):
                cv2.imwrite(str(fd / f"crop_{i}{j}.png"), img[i * ch:(i + 1) * ch, j * cw:(j + 1) * cw])
        out["folder"][f"{w}x{h}"] = str(fd)
        pd = d / f"photos_{w}x{h}"
        pd.mkdir(exist_ok=True)
        for i, flip in enumerate((None, 1, 0, -1)[:PHOTOS]):
            cv2.imwrite(str(pd / f"photo_{i}.png"), img if flip is None else cv2.flip(img, flip))
        out.setdefault("photos", {})[f"{w}x{h}"] = str(pd)
    bw, bh = big
    p = d / f"big_{bw}x{bh}.png"
    cv2.imwrite(str(p), cv2.resize(base, (bw, bh), interpolation=cv2.INTER_CUBIC))
    out["big"] = str(p)
    p = d / "tiny_16x16.png"
    cv2.imwrite(str(p), cv2.resize(base, (16, 16), interpolation=cv2.INTER_AREA))
    out["tiny"] = str(p)
    return out


# =========================================================================== models
def _torch_from_onnx(spec: Any, hparams: dict[str, Any], onnx_path: str) -> tuple[Any, int, int]:
    """Build the torch model and load every ONNX initializer whose name and shape match a parameter.

    Returns:
        ``(model, matched, total)``; unmatched parameters keep their random init (speed is unaffected).
    """
    import onnx
    import torch
    from onnx import numpy_helper

    torch.manual_seed(0)
    model = spec.build(**hparams).eval()
    graph = onnx.load(onnx_path).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    sd = model.state_dict()
    # the exporter renames PReLU slopes (onnx::PRelu_N, reshaped): pair them with the PReLU modules in order
    prelu_keys = [f"{name}.weight" for name, mod in model.named_modules() if isinstance(mod, torch.nn.PReLU)]
    prelu_inits = [n.input[1] for n in graph.node if n.op_type == "PRelu" and n.input[1] in inits]
    renamed = dict(zip(prelu_keys, prelu_inits)) if len(prelu_keys) == len(prelu_inits) else {}
    matched = 0
    for k, v in sd.items():
        a = inits.get(k, inits.get(renamed.get(k, "")))
        if a is not None and a.size == v.numel():
            sd[k] = torch.from_numpy(a.reshape(tuple(v.shape)).astype("float32"))
            matched += 1
    model.load_state_dict(sd)
    return model, matched, len(sd)


def prepare_models(specs: list[ModelSpec], cache: Path, log: Any) -> list[ModelSpec]:
    """Export each random-init model to ONNX (fp32 and fp16) and save its weights; reuse cached files."""
    import torch

    from sr_export.onnx import export_onnx
    from sr_train.archs import REGISTRY

    out = []
    d = cache / "models"
    d.mkdir(parents=True, exist_ok=True)
    for s in specs:
        arch = REGISTRY.get(s.arch)
        key = s.name if s.name != "default" else "default"
        pth = d / f"{key}.pt"
        onnx_path = Path(s.onnx) if s.onnx else d / f"{key}.onnx"
        note = s.weights_note
        if s.name == "default":
            model, matched, total = _torch_from_onnx(arch, s.hparams, str(onnx_path))
            note = f"{s.weights_note}; reference weights from its initializers ({matched}/{total} matched)"
            torch.save(model.state_dict(), pth)
        elif s.name == "SRVGG-16" and OFFICIAL_SRVGG16.is_file():
            note = f"official {OFFICIAL_SRVGG16.name}"
            if not (pth.is_file() and onnx_path.is_file()) or pth.stat().st_mtime < OFFICIAL_SRVGG16.stat().st_mtime:
                from sr_train.checkpoint import load_generator

                log(f"  exporting {s.name} from {OFFICIAL_SRVGG16} -> {onnx_path}")
                model = load_generator(OFFICIAL_SRVGG16).model
                torch.save(model.state_dict(), pth)
                export_onnx(model, arch, s.hparams, onnx_path)
        elif not (pth.is_file() and onnx_path.is_file()):
            log(f"  exporting {s.name} -> {onnx_path}")
            torch.manual_seed(0)
            model = arch.build(**s.hparams).eval()
            torch.save(model.state_dict(), pth)
            export_onnx(model, arch, s.hparams, onnx_path)
        fp16 = d / f"{key}.fp16.onnx"
        if not fp16.is_file() or fp16.stat().st_mtime < onnx_path.stat().st_mtime:
            try:
                from sr_export.fp16 import convert_fp16

                convert_fp16(onnx_path, fp16)
            except Exception as exc:  # noqa: BLE001 - record and benchmark the rest
                log(f"  fp16 conversion of {s.name} failed: {type(exc).__name__}: {exc}")
                fp16 = None
        out.append(ModelSpec(s.name, s.arch, s.hparams, s.photo, s.tile, s.repeats, onnx=str(onnx_path),
                             onnx_fp16=str(fp16) if fp16 else "", weights=str(pth), weights_note=note))
    return out


# =========================================================================== child processes
@dataclass
class Job:
    """One configuration, run in its own process."""

    id: str
    """Unique label, ``<model>/<path>/<input>``."""
    model: str
    """Model label (``SRVGG-16``) or ``-``."""
    path: str
    """Path label: ``ref-t0``, ``ref-tiled``, ``ort-whole``, ``ort-tiled``, ``ort-batched``, ``ort-fp16``,
    ``ref-folder``, ``ort-folder-model``, ``cli-folder``, ``probe``, ``profile-ort``, ``profile-ref``,
    ``cli-startup``, ``rss-*``."""
    input: str
    """``photo``, ``folder``, ``big``, ``tiny`` or ``-``."""
    worker: str
    """Worker function name, or ``cli`` for an sr-run subprocess."""
    args: dict[str, Any] = field(default_factory=dict)
    """Worker arguments (JSON)."""


def run_child(job: Job, threads: int, cache: Path, log: Any, timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Run ``job`` in a fresh interpreter; return its result plus wall time and peak RSS (``os.wait4``)."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
                "MKL_NUM_THREADS": str(threads), "SR_BENCH_THREADS": str(threads),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))})
    logs = cache / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    safe = job.id.replace("/", "__")
    result_file = cache / "logs" / f"{safe}.json"
    result_file.unlink(missing_ok=True)
    if job.worker == "cli":
        cmd = [sys.executable, "-m", "sr_runtime.cli", *job.args["argv"]]
    else:
        spec = {"worker": job.worker, "args": {**job.args, "spawned_at": time.time()}, "threads": threads,
                "result": str(result_file)}
        cmd = [sys.executable, "-m", "benchmarks.run", "--worker", json.dumps(spec)]
    with open(logs / f"{safe}.log", "w") as fh:
        busy0, steal0 = cpu_jiffies()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
        busy1, steal1 = cpu_jiffies()
        proc.returncode = os.waitstatus_to_exitcode(status)
    own = ru.ru_utime + ru.ru_stime
    # CPU time other processes used while this job ran: a disturbed measurement shows here
    foreign = max(0.0, (busy1 - busy0) - own)
    res: dict[str, Any] = {}
    if result_file.is_file():
        res = json.loads(result_file.read_text())
    res.update({"id": job.id, "model": job.model, "path": job.path, "input": job.input,
                "wall_s": wall, "rss_peak_mb": ru.ru_maxrss / 1024.0, "returncode": proc.returncode,
                "cpu_s": own, "foreign_cpu_s": foreign, "foreign_share": foreign / max(wall, 1e-9),
                "steal_s": steal1 - steal0})
    if proc.returncode != 0 and "error" not in res:
        tail = (logs / f"{safe}.log").read_text(errors="replace").strip().splitlines()[-3:]
        res["error"] = " | ".join(tail) or f"exit code {proc.returncode}"
    return res


# =========================================================================== workers (run in the child)
class _Counter:
    """Wraps a model call: seconds inside it and input pixels it processed."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.seconds, self.pixels, self.calls = fn, 0.0, 0, 0

    def reset(self) -> None:
        self.seconds, self.pixels, self.calls = 0.0, 0, 0

    def __call__(self, x: Any) -> Any:
        t0 = time.perf_counter()
        y = self.fn(x)
        self.seconds += time.perf_counter() - t0
        self.pixels += int(x.shape[0]) * int(x.shape[-2]) * int(x.shape[-1])
        self.calls += 1
        return y


def _timed(run: Any, counter: Any, repeats: int, warmup: int = 1) -> dict[str, Any]:
    for _ in range(warmup):
        run()
    times, model_times, pixels, calls = [], [], 0, 0
    out = None
    for _ in range(repeats):
        counter.reset()
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
        model_times.append(counter.seconds)
        pixels, calls = counter.pixels, counter.calls
    return {"times": times, "model_times": model_times, "seconds": statistics.median(times),
            "model_seconds": statistics.median(model_times), "executed_pixels": pixels, "model_calls": calls,
            "_out": out}


def _torch_model(args: dict[str, Any], threads: int) -> Any:
    import torch

    from sr_train.archs import REGISTRY

    torch.set_num_threads(threads)
    model = REGISTRY.get(args["arch"]).build(**args["hparams"]).eval()
    model.load_state_dict(torch.load(args["weights"], map_location="cpu", weights_only=True))
    return model


def w_probe(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """GEMM peak."""
    from benchmarks.probe import gemm_peak

    return gemm_peak(threads, n=args.get("n", 3072), repeats=args.get("repeats", 3))


def w_ref(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """The reference on one image (photo or big), tile 0 or tiled."""
    import cv2

    from benchmarks.reference import Reference

    rss0 = _status_mb("VmRSS")
    img = cv2.imread(args["image"], cv2.IMREAD_UNCHANGED)
    ref = Reference(_torch_model(args, threads), args["scale"], tile=args["tile"], tile_pad=args["pad"],
                    pre_pad=args["pre_pad"])
    rss1 = _status_mb("VmRSS")

    class _View:  # the Reference counts its own model time and pixels
        def reset(self) -> None:
            ref.reset_timers()

        seconds = property(lambda self: ref.model_seconds)
        pixels = property(lambda self: ref.model_pixels)
        calls = property(lambda self: ref.model_calls)

    def run() -> Any:
        return ref.enhance(img, outscale=args["scale"])[0]

    res = _timed(run, _View(), args["repeats"], args.get("warmup", 1))
    out = res.pop("_out")
    if args.get("save"):
        cv2.imwrite(args["save"], out)
    res.update({"rss_imports_mb": rss0, "rss_loaded_mb": rss1, "provider": "torch eager CPU",
                "torch_threads": __import__("torch").get_num_threads(), "megapixels": img.shape[0] * img.shape[1] / 1e6,
                "images": 1})
    return res


class _CountingBackend:
    """An open sr_runtime backend whose ``run`` is timed (passed to ``Upscaler`` in place of a path); every other
    part of the Backend protocol is the wrapped backend's, so the plan is the one sr-run uses."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.info = backend.info
        self.provider = backend.provider
        self.counter = _Counter(backend.run)

    reduced_precision = property(lambda self: self.backend.reduced_precision)
    max_shape = property(lambda self: self.backend.max_shape)
    window_shapes = property(lambda self: self.backend.window_shapes)

    def free_memory(self) -> int | None:
        return self.backend.free_memory()

    def run(self, batch: Any) -> Any:
        return self.counter(batch)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> _CountingBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def w_ours(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """sr-run's path in memory: ``Upscaler.enhance`` (decoded image in, uint8 image out) on one image or each
    image of a folder; with ``model_only`` the network alone on each whole image."""
    import cv2
    import numpy as np

    from sr_runtime.api import Upscaler
    from sr_runtime.backends import open_backend

    rss0 = _status_mb("VmRSS")
    files = sorted(Path(args["folder"]).glob("*.png")) if args.get("folder") else [Path(args["image"])]
    imgs = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
    backend = _CountingBackend(open_backend(args["model"], args.get("backend", "ort"), threads))
    up = Upscaler(backend, args["tile"], args["pad"], args["pre_pad"], batch=args["batch"], threads=threads)
    rss1 = _status_mb("VmRSS")
    model_only = args.get("model_only", False)
    tensors = [np.ascontiguousarray(i[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0
               for i in imgs] if model_only else []

    def run() -> Any:
        out = None
        if model_only:
            for x in tensors:
                backend.run(x)
        else:
            for img in imgs:
                out = up.enhance(img, outscale=up.scale)[0]
        return out

    res = _timed(run, backend.counter, args["repeats"], args.get("warmup", 1))
    out = res.pop("_out")
    if args.get("save") and out is not None:
        cv2.imwrite(args["save"], out)
    res.update({"rss_imports_mb": rss0, "rss_loaded_mb": rss1, "provider": backend.provider,
                "megapixels": sum(i.shape[0] * i.shape[1] for i in imgs) / 1e6, "images": len(imgs),
                "precision": backend.info.precision})
    up.close()
    return res


def w_vsmlrt(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """vs-mlrt's OV_CPU (benchmarks/peers.py) on one photo, whole or tiled."""
    import cv2

    from benchmarks.peers import VsMlrtOv

    rss0 = _status_mb("VmRSS")
    img = cv2.imread(args["image"], cv2.IMREAD_COLOR)
    peer = VsMlrtOv(args["model"], img.shape[:2], args["scale"], args["tile"], args["pad"], threads)
    rss1 = _status_mb("VmRSS")

    class _View:
        def reset(self) -> None:
            peer.reset_timers()

        seconds = property(lambda self: peer.model_seconds)
        pixels = property(lambda self: peer.model_pixels)
        calls = property(lambda self: peer.model_calls)

    res = _timed(lambda: peer.enhance(img), _View(), args["repeats"], args.get("warmup", 1))
    out = res.pop("_out")
    if args.get("save"):
        cv2.imwrite(args["save"], out)
    res.update({"rss_imports_mb": rss0, "rss_loaded_mb": rss1, "provider": peer.provider,
                "megapixels": img.shape[0] * img.shape[1] / 1e6, "images": 1, "precision": "f32"})
    return res


def w_vsmlrt_folder(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """vs-mlrt's OV_CPU on a folder, cold (import, compile, read/infer/write); the parent's ``wall_s`` is the time."""
    from benchmarks.peers import vsmlrt_folder

    files = sorted(Path(args["folder"]).glob("*.png"))
    return vsmlrt_folder(args["model"], files, args["out"], args["scale"], threads, args["tile"], args["pad"])


def w_ref_folder(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """``inference_realesrgan.py`` on a folder, cold as a user runs it: import, load, then read/enhance/write
    each file in turn (no warm-up). The parent's ``wall_s`` is the end-to-end time."""
    import cv2

    from benchmarks.reference import Reference, reference_folder

    files = sorted(Path(args["folder"]).glob("*.png"))
    ref = Reference(_torch_model(args, threads), args["scale"], tile=args["tile"], tile_pad=args["pad"],
                    pre_pad=args["pre_pad"])
    startup = time.time() - args["spawned_at"]
    t0 = time.perf_counter()
    reference_folder(ref, files, args["out"])
    loop = time.perf_counter() - t0
    mp = sum(h * w for h, w in (cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape[:2] for f in files)) / 1e6
    return {"loop_s": loop, "startup_s": startup, "model_seconds": ref.model_seconds,
            "executed_pixels": ref.model_pixels, "megapixels": mp, "images": len(files),
            "provider": "torch eager CPU"}


def w_profile_ort(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """ORT's own profiler on one whole-image run: time per operator type."""
    import cv2
    import numpy as np
    import onnxruntime as ort

    img = cv2.imread(args["image"], cv2.IMREAD_COLOR)
    x = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(Path(args["dir"]) / "ort_profile")
    sess = ort.InferenceSession(args["model"], sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})  # warm-up
    t0 = time.perf_counter()
    sess.run(None, {name: x})
    total = time.perf_counter() - t0
    prof = sess.end_profiling()
    events = json.loads(Path(prof).read_text())
    by_op: dict[str, float] = {}
    runs: list[float] = []
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            by_op[op] = by_op.get(op, 0.0) + e["dur"] / 1e6
        elif e.get("cat") == "Session" and e.get("name") == "model_run":
            runs.append(e["dur"] / 1e6)
    Path(prof).unlink(missing_ok=True)
    # both runs are in the profile: halve to one run
    by_op = {k: v / max(1, len(runs)) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])}
    return {"seconds": total, "by_op": by_op, "model_run_s": runs[-1] if runs else None,
            "megapixels": x.shape[2] * x.shape[3] / 1e6}


def w_profile_ref(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """torch.profiler on one whole-image forward of the reference model: time per aten op."""
    import cv2
    import numpy as np
    import torch

    model = _torch_model(args, threads)
    img = cv2.imread(args["image"], cv2.IMREAD_COLOR)
    x = torch.from_numpy(np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1))[None].astype(np.float32) / 255.0)
    with torch.no_grad():
        model(x)
        from torch.profiler import ProfilerActivity, profile

        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x)
        total = time.perf_counter() - t0
    rows = sorted(prof.key_averages(), key=lambda r: -r.self_cpu_time_total)
    by_op = {r.key: r.self_cpu_time_total / 1e6 for r in rows[:8]}
    return {"seconds": total, "by_op": by_op, "megapixels": x.shape[2] * x.shape[3] / 1e6}


def w_pipeline(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """sr-run's folder pipeline in one warm process (``run_batch``: reader thread, model, writer threads),
    with the time inside the network counted: the share of the pipeline the model fills."""
    import cv2

    from sr_runtime.api import Upscaler
    from sr_runtime.backends import open_backend
    from sr_runtime.batch import collect_inputs, default_writers, plan_jobs, run_batch

    jobs = plan_jobs(collect_inputs(args["folder"]), args["out"])
    Path(args["out"]).mkdir(parents=True, exist_ok=True)
    backend = _CountingBackend(open_backend(args["model"], "ort", threads))
    up = Upscaler(backend, args["tile"], args["pad"], args["pre_pad"], batch=args["batch"], threads=threads)
    up.enhance(cv2.imread(str(jobs[0].src), cv2.IMREAD_UNCHANGED))  # warm-up
    times, model_times, mp = [], [], 0.0
    for _ in range(args["repeats"]):
        backend.counter.reset()
        t0 = time.perf_counter()
        res = run_batch(jobs, up.enhance, quiet=True, writers=default_writers())
        times.append(time.perf_counter() - t0)
        model_times.append(backend.counter.seconds)
        mp = res.megapixels
        if res.failed:
            raise RuntimeError(f"{res.failed} files failed: {res.errors[:1]}")
    up.close()
    return {"times": times, "model_times": model_times, "seconds": statistics.median(times),
            "model_seconds": statistics.median(model_times), "megapixels": mp, "images": len(jobs),
            "model_share": statistics.median(m / t for m, t in zip(model_times, times)),
            "provider": backend.provider}


def w_io(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """The folder's image I/O alone: decode each input, encode an x``scale`` output PNG (as sr-run writes)."""
    import cv2

    files = sorted(Path(args["folder"]).glob("*.png"))
    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    s = args["scale"]
    read_s = write_s = 0.0
    mp = 0.0
    for f in files:
        t0 = time.perf_counter()
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        read_s += time.perf_counter() - t0
        big = cv2.resize(img, (img.shape[1] * s, img.shape[0] * s), interpolation=cv2.INTER_CUBIC)
        t0 = time.perf_counter()
        cv2.imwrite(str(out / f"{f.stem}_io.png"), big)
        write_s += time.perf_counter() - t0
        mp += img.shape[0] * img.shape[1] / 1e6
    return {"seconds": read_s + write_s, "read_s": read_s, "write_s": write_s, "megapixels": mp,
            "images": len(files)}


def w_prepare(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """Inputs and models (torch, onnx, cv2 live here, so the parent stays small for ``ru_maxrss``)."""
    tier = Tier(**{k: tuple(v) if isinstance(v, list) else v for k, v in args["tier"].items()})
    cache = Path(args["cache"])
    names = args.get("names") or None
    specs = [ModelSpec(**{**d, "photo": tuple(d["photo"])}) for d in args["specs"]]
    if DEFAULT_ONNX.is_file() and (not names or "default" in names):
        from sr_runtime.info import read_onnx_info

        info = read_onnx_info(DEFAULT_ONNX)
        rrdb = info.arch == "RRDBNet"
        specs.append(ModelSpec("default", info.arch, dict(info.hparams),
                               tier.rrdb_photo if rrdb else tier.srvgg_photo,
                               tier.rrdb_tile if rrdb else tier.srvgg_tile,
                               tier.rrdb_repeats if rrdb else tier.srvgg_repeats,
                               onnx=str(DEFAULT_ONNX), weights_note="shipped sr_runtime/models/default.onnx"))
    inputs = prepare_inputs(cache, {s.photo for s in specs}, tier.big, tier.folder_grid)
    specs = prepare_models(specs, cache, lambda m: print(m, flush=True))
    mp = {}
    for p in [*inputs["photo"].values(), *inputs["folder"].values(), *inputs["photos"].values(), inputs["big"],
              inputs["tiny"]]:
        mp[p] = _megapixels_of(p)
    inputs["megapixels"] = mp
    from sr_runtime.backends.ort import available_providers

    return {"inputs": inputs, "specs": [asdict(s) for s in specs], "ort_providers": available_providers(),
            "models": [{**asdict(s), "flops_per_pixel": _flops(s), "onnx_bytes": Path(s.onnx).stat().st_size}
                       for s in specs]}


def w_parity(args: dict[str, Any], threads: int) -> dict[str, Any]:
    """Max |difference| (8-bit levels) and PSNR of each photo output against the reference tile-0 output."""
    import cv2

    from sr_runtime.compare import max_abs, psnr

    out = {}
    for rid, mine, ref in args["pairs"]:
        if Path(mine).is_file() and Path(ref).is_file():
            a, b = cv2.imread(mine, cv2.IMREAD_UNCHANGED), cv2.imread(ref, cv2.IMREAD_UNCHANGED)
            if a is not None and b is not None and a.shape == b.shape:
                out[rid] = {"max_abs_vs_ref": max_abs(a, b), "psnr_vs_ref": psnr(a, b, 255.0)}
    return {"pairs": out}


WORKERS = {"prepare": w_prepare, "parity": w_parity, "io": w_io, "pipeline": w_pipeline, "probe": w_probe, "ref": w_ref, "ours": w_ours,
           "ref_folder": w_ref_folder, "profile_ort": w_profile_ort, "profile_ref": w_profile_ref,
           "vsmlrt": w_vsmlrt, "vsmlrt_folder": w_vsmlrt_folder}


def worker_main(spec_json: str) -> int:
    """Child entry: run one worker and write its JSON result (or the error) to the result file."""
    spec = json.loads(spec_json)
    try:
        res = WORKERS[spec["worker"]](spec["args"], int(spec["threads"]))
        res["rss_hwm_mb"] = _status_mb("VmHWM")
        rc = 0
    except Exception as exc:  # noqa: BLE001 - reported in the results, the run goes on
        import traceback

        traceback.print_exc()
        res, rc = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}, 1
    Path(spec["result"]).write_text(json.dumps(res))
    return rc


# =========================================================================== the run
def cli_argv(inp: str, out: str, model: str, tile: int | None, pad: int | None, batch: int | None, threads: int,
             backend: str | None = "ort") -> list[str]:
    """sr-run's command line for one job (flags of sr_runtime/cli.py); None leaves a flag at sr-run's default.
    ``--overwrite``: a file OUT left by an earlier run is replaced (refused otherwise)."""
    flags = {"--tile": tile, "--tile-pad": pad, "--batch": batch, "--backend": backend}
    return [inp, out, "--model", model, "--threads", str(threads), "--pre-pad", str(PRE_PAD), "--overwrite",
            *[x for k, v in flags.items() if v is not None for x in (k, str(v))]]


def plan_jobs(specs: list[ModelSpec], inputs: dict[str, Any], tier: Tier, cache: Path, threads: int,
              with_rss: bool, with_profile: bool) -> list[Job]:
    """Every configuration, in run order."""
    jobs = [Job("-/probe/-", "-", "probe", "-", "probe",
                {"n": tier.probe_n, "repeats": 3})]
    outdir = cache / "outputs"
    for s in specs:
        size = f"{s.photo[0]}x{s.photo[1]}"
        photo, folder = inputs["photo"][size], inputs["folder"][size]
        scale = int(s.hparams.get("upscale", s.hparams.get("scale", 4)))
        mdir = outdir / s.name
        mdir.mkdir(parents=True, exist_ok=True)
        base = {"arch": s.arch, "hparams": s.hparams, "weights": s.weights, "scale": scale, "pre_pad": PRE_PAD,
                "repeats": s.repeats}
        ours = {"model": s.onnx, "pre_pad": PRE_PAD, "repeats": s.repeats}
        jobs += [
            Job(f"{s.name}/ref-t0/photo", s.name, "ref-t0", "photo", "ref",
                {**base, "image": photo, "tile": 0, "pad": TILE_PAD, "save": str(mdir / "ref-t0.png")}),
            Job(f"{s.name}/ref-tiled/photo", s.name, "ref-tiled", "photo", "ref",
                {**base, "image": photo, "tile": s.tile, "pad": TILE_PAD, "save": str(mdir / "ref-tiled.png")}),
            Job(f"{s.name}/ort-whole/photo", s.name, "ort-whole", "photo", "ours",
                {**ours, "image": photo, "tile": 0, "pad": TILE_PAD, "batch": 1, "save": str(mdir / "ort-whole.png")}),
            Job(f"{s.name}/ort-tiled/photo", s.name, "ort-tiled", "photo", "ours",
                {**ours, "image": photo, "tile": s.tile, "pad": TILE_PAD, "batch": 1,
                 "save": str(mdir / "ort-tiled.png")}),
            Job(f"{s.name}/ort-batched/photo", s.name, "ort-batched", "photo", "ours",
                {**ours, "image": photo, "tile": s.tile, "pad": TILE_PAD, "batch": BATCH,
                 "save": str(mdir / "ort-batched.png")}),
        ]
        if s.onnx_fp16:
            jobs.append(Job(f"{s.name}/ort-fp16/photo", s.name, "ort-fp16", "photo", "ours",
                            {**ours, "model": s.onnx_fp16, "image": photo, "tile": s.tile, "pad": TILE_PAD,
                             "batch": BATCH, "save": str(mdir / "ort-fp16.png")}))
        jobs += _openvino_jobs(s, photo, inputs["photos"][size], mdir, ours, scale, threads)
        jobs.append(Job(f"{s.name}/ort-folder-model/folder", s.name, "ort-folder-model", "folder", "ours",
                        {**ours, "folder": folder, "model_only": True, "tile": 0, "pad": TILE_PAD, "batch": 1}))
        jobs.append(Job(f"{s.name}/pipeline/folder", s.name, "pipeline", "folder", "pipeline",
                        {**ours, "folder": folder, "tile": 0, "pad": TILE_PAD, "batch": BATCH,
                         "out": str(mdir / "pipeline")}))
        jobs.append(Job(f"{s.name}/io/folder", s.name, "io", "folder", "io",
                        {"folder": folder, "scale": scale, "out": str(mdir / "io")}))
        jobs.append(Job(f"{s.name}/cli-startup/tiny", s.name, "cli-startup", "tiny", "cli",
                        {"argv": cli_argv(inputs["tiny"], str(outdir / f"tiny_{s.name}.png"), s.onnx, s.tile,
                                          TILE_PAD, BATCH, threads)}))
        for r in range(max(1, min(2, s.repeats))):  # cold runs, as users run them
            jobs.append(Job(f"{s.name}/ref-folder/folder#{r}", s.name, "ref-folder", "folder", "ref_folder",
                            {**base, "folder": folder, "tile": 0, "pad": TILE_PAD, "out": str(mdir / "ref-folder")}))
            jobs.append(Job(f"{s.name}/cli-folder/folder#{r}", s.name, "cli-folder", "folder", "cli",
                            {"argv": cli_argv(folder, str(mdir / "cli-folder"), s.onnx, 0, TILE_PAD, BATCH,
                                              threads), "megapixels_of": folder}))  # whole images, as model-only
        if with_profile:
            jobs += [
                Job(f"{s.name}/profile-ort/photo", s.name, "profile-ort", "photo", "profile_ort",
                    {"model": s.onnx, "image": photo, "dir": str(cache / "logs")}),
                Job(f"{s.name}/profile-ref/photo", s.name, "profile-ref", "photo", "profile_ref",
                    {**base, "image": photo}),
            ]
    s0 = specs[0] if specs else None
    if with_rss and s0 is not None:
        scale = int(s0.hparams.get("upscale", s0.hparams.get("scale", 4)))
        big = inputs["big"]
        jobs += [
            Job(f"{s0.name}/rss-cli/big", s0.name, "rss-cli", "big", "cli",
                {"argv": cli_argv(big, str(outdir / "big_out.png"), s0.onnx, 256, TILE_PAD, BATCH, threads),
                 "megapixels_of": big}),
            Job(f"{s0.name}/rss-ort-tiled/big", s0.name, "rss-ort-tiled", "big", "ours",  # batch 1: the lean setting
                {"model": s0.onnx, "image": big, "tile": 256, "pad": TILE_PAD, "batch": 1, "pre_pad": PRE_PAD,
                 "repeats": 1, "warmup": 0}),
            Job(f"{s0.name}/rss-ref-tiled/big", s0.name, "rss-ref-tiled", "big", "ref",
                {"arch": s0.arch, "hparams": s0.hparams, "weights": s0.weights, "scale": scale, "image": big,
                 "tile": 256, "pad": TILE_PAD, "pre_pad": PRE_PAD, "repeats": 1, "warmup": 0}),
        ]
    return jobs


def cli_provider(log: Path) -> str:
    """What an sr-run job ran on, from its note line ``<model>: <arch> x<s> on <provider>``."""
    import re

    text = log.read_text(errors="replace") if log.is_file() else ""
    m = re.search(r"^note: \S+: \S+ x\d+ on (.+)$", text, re.M)
    return f"sr-run: {m.group(1)}" if m else "sr-run"


def _openvino_jobs(s: ModelSpec, photo: str, photos: str, mdir: Path, ours: dict[str, Any], scale: int,
                   threads: int) -> list[Job]:
    """Our OpenVINO paths and the vs-mlrt OV_CPU peer on the photo; on the photos folder, cold: the upstream loop
    (tiled), ``sr-run --tile``, ``sr-run`` with its defaults, and vs-mlrt whole/tiled (OpenVINO ones when installed).
    """
    import importlib.util

    jobs = [
        Job(f"{s.name}/ref-photos-tiled/photos", s.name, "ref-photos-tiled", "photos", "ref_folder",
            {"arch": s.arch, "hparams": s.hparams, "weights": s.weights, "scale": scale, "pre_pad": PRE_PAD,
             "folder": photos, "tile": s.tile, "pad": TILE_PAD, "out": str(mdir / "ref-photos")}),
        Job(f"{s.name}/cli-photos-tiled/photos", s.name, "cli-photos-tiled", "photos", "cli",
            {"argv": cli_argv(photos, str(mdir / "cli-photos-tiled"), s.onnx, s.tile, None, None, threads, None),
             "megapixels_of": photos}),
        Job(f"{s.name}/cli-photos-default/photos", s.name, "cli-photos-default", "photos", "cli",
            {"argv": cli_argv(photos, str(mdir / "cli-photos-default"), s.onnx, None, None, None, threads, None),
             "megapixels_of": photos}),
    ]
    if importlib.util.find_spec("openvino") is None:
        return jobs
    peer = {"model": s.onnx, "scale": scale, "repeats": s.repeats, "pad": TILE_PAD}
    for path, tile, batch in (("ov-whole", 0, 1), ("ov-tiled", s.tile, 1), ("ov-batched", s.tile, BATCH)):
        jobs.append(Job(f"{s.name}/{path}/photo", s.name, path, "photo", "ours",
                        {**ours, "backend": "openvino", "image": photo, "tile": tile, "pad": TILE_PAD, "batch": batch,
                         "save": str(mdir / f"{path}.png")}))
    for path, tile in (("vsmlrt-whole", 0), ("vsmlrt-tiled", s.tile)):
        jobs.append(Job(f"{s.name}/{path}/photo", s.name, path, "photo", "vsmlrt",
                        {**peer, "image": photo, "tile": tile, "save": str(mdir / f"{path}.png")}))
        jobs.append(Job(f"{s.name}/{path}/photos", s.name, path, "photos", "vsmlrt_folder",
                        {**peer, "folder": photos, "tile": tile, "out": str(mdir / path), "megapixels_of": photos}))
    return jobs


def _megapixels_of(path: str) -> tuple[float, int]:
    import cv2

    p = Path(path)
    files = sorted(p.glob("*.png")) if p.is_dir() else [p]
    mp = 0.0
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        mp += img.shape[0] * img.shape[1] / 1e6
    return mp, len(files)


def interleave_rounds(jobs: list[Job], rounds: int) -> list[Job]:
    """``jobs`` in order, with each model's cold runs on the photos folder repeated ``rounds`` times, interleaved
    (A B C, A B C, ...): on a shared machine a disturbance then hits one round of every contender, not one of them."""
    out: list[Job] = []
    for model in dict.fromkeys(j.model for j in jobs):
        mine = [j for j in jobs if j.model == model]
        cold = [j for j in mine if j.input == "photos"]
        out += [j for j in mine if j.input != "photos"] + cold * rounds
    return out


def add_round(prev: dict[str, Any] | None, res: dict[str, Any]) -> dict[str, Any]:
    """One job's result over its rounds: every wall time kept, the best as ``seconds``, the highest peak RSS."""
    if prev is None or prev.get("error"):
        return res
    if res.get("error"):
        return prev
    merged = {**prev, "times": [*prev["times"], *res["times"]]}
    merged["seconds"] = min(merged["times"])
    merged["rss_peak_mb"] = max(prev["rss_peak_mb"], res["rss_peak_mb"])
    merged["foreign_cpu_s"] = max(prev["foreign_cpu_s"], res["foreign_cpu_s"])
    return merged


def merge_results(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with every (model, path) row that ``new`` measured replaced by the new row; the new run's
    probe, time and models are recorded under ``meta.merged``."""
    key = lambda r: (r.get("model"), r.get("path"))  # noqa: E731
    fresh = {key(r) for r in new["results"]}
    results = [r for r in old["results"] if key(r) not in fresh] + new["results"]
    meta = dict(old["meta"])
    names = {m["name"] for m in new["meta"].get("models", [])}
    meta["models"] = [m for m in meta.get("models", []) if m["name"] not in names] + new["meta"].get("models", [])
    order = [m["name"] for m in old["meta"].get("models", [])]
    meta["models"].sort(key=lambda m: order.index(m["name"]) if m["name"] in order else len(order))
    meta["merged"] = [*meta.get("merged", []), {"date_utc": new["meta"]["date_utc"], "models": sorted(names),
                                               "load_before": new["meta"].get("load_before")}]
    return {"meta": meta, "results": results}


def parity_pairs(cache: Path, results: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(result id, our output, reference whole-image output) for every photo configuration."""
    pairs = []
    for r in results:
        if r.get("input") != "photo" or r.get("error") or r["path"] in ("ref-t0", "profile-ort", "profile-ref"):
            continue
        d = cache / "outputs" / r["model"]
        pairs.append((r["id"], str(d / f"{r['path']}.png"), str(d / "ref-t0.png")))
    return pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small inputs, one repeat: a ~1 minute smoke run")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every path")
    ap.add_argument("--models", default="", help="comma-separated subset (SRVGG-16,SRVGG-32,RRDBNet-23,default)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results folder (default benchmarks/results, benchmarks/results/quick with --quick)")
    ap.add_argument("--cache", type=Path, default=CACHE, help="models, inputs, outputs, logs (default .sr-cache/bench)")
    ap.add_argument("--no-rss", action="store_true", help="skip the big-image memory jobs")
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                    help="per-operator profiles (default: on for the full run, off with --quick)")
    ap.add_argument("--merge", action="store_true",
                    help="replace only this run's rows in the existing <out>/bench.json (re-measure some models)")
    ap.add_argument("--paths", default="",
                    help="comma-separated subset of paths (e.g. cli-photos-default,vsmlrt-whole); with --merge")
    ap.add_argument("--rounds", type=int, default=2,
                    help="interleaved rounds of the cold end-to-end runs on the photos folder (best and spread)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        return worker_main(a.worker)

    # The parent imports only the standard library: a child's ru_maxrss starts at the parent's RSS at fork.
    tier = QUICK if a.quick else FULL
    out_dir = a.out or (RESULTS / "quick" if a.quick else RESULTS)
    cache = a.cache.resolve()
    names = [m for m in a.models.split(",") if m] or (list(QUICK_MODELS) if a.quick else [])
    t_start = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t_start:6.1f}s] {msg}", flush=True)

    meta: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": a.quick, "threads": a.threads,
        "cpu": cpu_info(), "versions": versions(), "load_before": load_average(), "tier": asdict(tier),
        "tile_pad": TILE_PAD, "batch": BATCH, "pre_pad": PRE_PAD}
    log(f"cpu {meta['cpu']['model']} x{meta['cpu']['logical_cpus']}, threads {a.threads}, load {meta['load_before']}")
    specs0 = model_specs(tier, names or None)
    prep = run_child(Job("-/prepare/-", "-", "prepare", "-", "prepare",
                         {"tier": asdict(tier), "cache": str(cache), "names": names,
                          "specs": [asdict(s) for s in specs0]}), a.threads, cache, log)
    if prep.get("error"):
        log(f"preparing inputs and models failed: {prep['error']} (see {cache / 'logs'})")
        return 1
    inputs = prep["inputs"]
    specs = [ModelSpec(**{**d, "photo": tuple(d["photo"])}) for d in prep["specs"]]
    meta["inputs"] = {k: v for k, v in inputs.items() if k != "megapixels"}
    meta["models"] = prep["models"]
    meta["ort_available_providers"] = prep.get("ort_providers", [])
    log(f"inputs from {inputs['source']}; models {', '.join(s.name for s in specs)} ({prep['wall_s']:.0f} s)")
    profile = tier.profile if a.profile is None else a.profile
    jobs = plan_jobs(specs, inputs, tier, cache, a.threads, not a.no_rss, profile)
    wanted = {p for p in a.paths.split(",") if p}
    jobs = interleave_rounds([j for j in jobs if not wanted or j.path in wanted or j.worker == "probe"],
                             max(1, a.rounds))
    by_id: dict[str, dict[str, Any]] = {}
    for i, job in enumerate(jobs):
        res = run_child(job, a.threads, cache, log)
        src = job.args.get("megapixels_of")
        if src:
            res["megapixels"], res["images"] = inputs["megapixels"][src]
        if job.worker == "cli":
            res["provider"] = cli_provider(cache / "logs" / f"{job.id.replace('/', '__')}.log")
        if job.worker in ("cli", "ref_folder", "vsmlrt_folder"):  # one cold run: the end-to-end time is the process's wall time
            res["seconds"] = res["wall_s"]
            res["times"] = [res["wall_s"]]
        what = f"{res['seconds']:.3f}s" if isinstance(res.get("seconds"), (int, float)) else ""
        log(f"{i + 1}/{len(jobs)} {job.id}: {what} peak RSS {res['rss_peak_mb']:.0f} MB, other processes "
            f"{res['foreign_cpu_s']:.1f} CPU-s"
            + (f"  ERROR {res['error']}" if res.get("error") else ""))
        by_id[job.id] = add_round(by_id.get(job.id), res)
    results = list(by_id.values())
    par = run_child(Job("-/parity/-", "-", "parity", "-", "parity", {"pairs": parity_pairs(cache, results)}),
                    a.threads, cache, log)
    for r in results:
        r.update(par.get("pairs", {}).get(r["id"], {}))
    meta["load_after"] = load_average()
    meta["total_s"] = time.time() - t_start
    data = {"meta": meta, "results": results}
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "bench.json"
    if a.merge and json_path.is_file():
        data = merge_results(json.loads(json_path.read_text()), data)
    atomic_write_bytes(json_path, json.dumps(data, indent=1).encode())
    from benchmarks.report import write_report

    written = write_report(json_path, out_dir)
    log(f"wrote {json_path} and {', '.join(str(p) for p in written)} in {meta['total_s']:.0f}s")
    _video_section(out_dir, a.quick, a.threads, log)
    from benchmarks.int8 import run_bench as int8_bench

    int8_bench(out_dir, quick=a.quick, threads=a.threads, log=log)
    return 0


def _video_section(out_dir: Path, quick: bool, threads: int, log: Any) -> None:
    """The video benchmark (benchmarks/video.py) when PyAV is installed: video.{json,md} beside bench.json."""
    import importlib.util

    if importlib.util.find_spec("av") is None:
        log("video benchmark skipped: PyAV is not installed (pip install -e '.[video]')")
        return
    from benchmarks.video import run_bench

    run_bench(out_dir, quick=quick, threads=threads, log=log)


def _flops(s: ModelSpec) -> float:
    from sr_train.archs import REGISTRY

    return float(REGISTRY.get(s.arch).flops_per_pixel(s.hparams))


if __name__ == "__main__":
    sys.exit(main())
