"""int8 benchmark (issue 14): quality and speed of ``sr-export --int8`` against fp32, and the recipe's frontier.

For the official realesr-animevideov3 (``../shared/data``, skipped when absent) and the shipped default model:

* **export**: an fp32 ONNX and an int8 ONNX (``sr-export --int8``), calibrated on LQ crops of the default model's
  training photos (bicubic x1/4, the same degradation as the test photos; ``scripts/prepare_default_data.py``).
* **quality** on the held-out photos of ``benchmarks/quality.py`` (bicubic x1/4, whole image, 8-bit output):
  PSNR-Y against the ground truth (fp32 and int8, the difference) and PSNR / max error against the fp32 output.
* **frontier**: the same figures for each step of the recipe (naive min/max PTQ with every conv int8, the last
  conv in float, MSE ranges, channel equalization, bias correction = what sr-export writes, and the first conv in
  float too), in the PyTorch fake-quant model (the exported file is that model; its ONNX Runtime figures are in
  the quality table); plus ONNX Runtime's own ``quantize_static`` (QDQ, per-channel, min/max) as the tool's
  baseline.
* **speed**: ``sr-run`` end to end on a folder of photos (read, tile, model, write), fp32 and int8 on the same
  backend (ONNX Runtime; OpenVINO when its backend is installed, plus its bf16 mode for fp32 with ``--fp16``),
  interleaved rounds, best and spread.

Writes ``<out>/int8.json`` and ``int8.md``; ``make bench`` calls :func:`run_bench`. Usage::

    python -m benchmarks.int8 [--quick] [--threads N] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.quality import bicubic_down, degrade, read_gt  # noqa: E402
from sr_runtime.compare import psnr, psnr_y  # noqa: E402
from sr_runtime.fileio import atomic_write_bytes  # noqa: E402

CACHE = ROOT / ".sr-cache" / "bench" / "int8"
DATA = ROOT / "runs" / "default_data"
MODELS = {
    "realesr-animevideov3": ROOT.parent / "shared" / "data" / "realesr-animevideov3.pth",
    "default (ours)": ROOT / "models" / "default" / "default_x4.pth",
}
CALIB_IMAGES = 40
SPEED_PHOTO = (240, 180)
"""``(width, height)`` of each photo of the speed folder (input pixels)."""


# ---------------------------------------------------------------------------------------------- data
def _lq(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((bgr[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None])


def _u8(y: np.ndarray) -> np.ndarray:
    return np.round(np.clip(y[0].transpose(1, 2, 0)[..., ::-1], 0, 1) * 255).astype(np.uint8)


def prepare_data(cache: Path, n_speed: int) -> dict[str, Any]:
    """The calibration folder, the held-out (LQ, GT) pairs and the speed folder, all from runs/default_data."""
    train = sorted((DATA / "train").glob("*.png"))
    held = sorted((DATA / "heldout").glob("*.png"))
    if not train or not held:
        raise SystemExit(f"error: {DATA}: no photos. Run scripts/prepare_default_data.py first.")
    calib = cache / "calib"
    calib.mkdir(parents=True, exist_ok=True)
    for f in train[:: max(1, len(train) // CALIB_IMAGES)][:CALIB_IMAGES]:
        out = calib / f.name
        if not out.is_file():
            cv2.imwrite(str(out), bicubic_down(read_gt(f, 4), 4))
    pairs = []
    for f in held:
        gt = read_gt(f, 4)
        pairs.append((f.name, gt, degrade(gt, "a_bicubic", 4, 0, f.name)))
    speed = cache / "speed_in"
    speed.mkdir(parents=True, exist_ok=True)
    w, h = SPEED_PHOTO
    for i, f in enumerate(train[len(train) // 2:][:: max(1, len(train) // (2 * n_speed))][:n_speed]):
        cv2.imwrite(str(speed / f"photo{i}.png"), cv2.resize(cv2.imread(str(f)), (w, h), interpolation=cv2.INTER_AREA))
    return {"calib": calib, "pairs": pairs, "speed": speed}


# ---------------------------------------------------------------------------------------------- quality
def quality(run: Any, ref_run: Any, pairs: list) -> dict[str, float]:
    """PSNR-Y vs GT of ``run`` and of the fp32 ``ref_run``, PSNR and max error of ``run`` vs ``ref_run``."""
    rows = []
    for _name, gt, lq in pairs:
        a, b = _u8(ref_run(_lq(lq))), _u8(run(_lq(lq)))
        rows.append((psnr_y(a, gt, crop_border=4), psnr_y(b, gt, crop_border=4),
                     psnr(b.astype(np.float32) / 255, a.astype(np.float32) / 255),
                     int(np.abs(a.astype(int) - b.astype(int)).max()),
                     float(np.abs(a.astype(int) - b.astype(int)).mean())))
    r = np.array(rows, dtype=np.float64)
    return {"psnr_y_fp32": float(r[:, 0].mean()), "psnr_y": float(r[:, 1].mean()),
            "d_psnr_y": float(r[:, 1].mean() - r[:, 0].mean()), "psnr_vs_fp32": float(r[:, 2].mean()),
            "min_psnr_vs_fp32": float(r[:, 2].min()), "max_levels": int(r[:, 3].max()),
            "mean_levels": float(r[:, 4].mean())}


def _ort_run(path: Path, threads: int) -> Any:
    from sr_runtime.backends.ort import OrtBackend

    b = OrtBackend(path, device="cpu", threads=threads)
    return b.run


def _torch_run(model: Any) -> Any:
    import torch

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()

    return run


FRONTIER = (
    ("naive PTQ: every conv int8, min/max ranges", {"fp32_convs": (), "equalize": False, "ranges": "minmax",
                                                    "bias_correction": False, "input_exact": False}),
    ("+ last conv float", {"equalize": False, "ranges": "minmax", "bias_correction": False}),
    ("+ MSE ranges", {"equalize": False, "bias_correction": False}),
    ("+ channel equalization", {"bias_correction": False}),
    ("+ bias correction (sr-export --int8)", {}),
    ("+ first conv float too", {"fp32_convs": (0, -1)}),
)


def frontier(model: Any, calib: list[np.ndarray], pairs: list, fp32_onnx: Path, threads: int,
             cache: Path) -> list[dict[str, Any]]:
    """Quality of each recipe step (fake-quant model) and of ONNX Runtime's quantize_static."""
    import torch

    from sr_train import quant

    ref = _torch_run(model)
    batches = [torch.from_numpy(x) for x in calib]
    rows = []
    for label, over in FRONTIER:
        q = copy.deepcopy(model)
        t0 = time.perf_counter()
        c = quant.quantize(q, batches, quant.Recipe(**over))
        rows.append({"recipe": label, "calib_s": time.perf_counter() - t0, "int8_convs": len(c.quantized),
                     **quality(_torch_run(q), ref, pairs)})
    rows.append({"recipe": "ONNX Runtime quantize_static (QDQ, per-channel, min/max)",
                 **quality(_ort_run(ort_static(fp32_onnx, calib, cache), threads), ref, pairs)})
    return rows


def ort_static(fp32_onnx: Path, calib: list[np.ndarray], cache: Path) -> Path:
    """ONNX Runtime's static QDQ quantization of the fp32 file (its defaults for CNNs: per-channel, min/max)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": x} for x in calib])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    out = cache / f"{fp32_onnx.stem}_ort_static.onnx"
    quantize_static(str(fp32_onnx), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
    return out


# ---------------------------------------------------------------------------------------------- speed
def backends() -> list[tuple[str, str, bool]]:
    """``(label, backend, fp16)`` of the speed rows available here."""
    import importlib.util

    rows = [("ONNX Runtime", "ort", False)]
    if importlib.util.find_spec("openvino") and importlib.util.find_spec("sr_runtime.backends.openvino"):
        rows += [("OpenVINO", "openvino", False), ("OpenVINO bf16 (--fp16)", "openvino", True)]
    return rows


def speed(models: dict[str, Path], folder: Path, out: Path, rounds: int, threads: int) -> list[dict[str, Any]]:
    """sr-run on ``folder`` for each (backend, model), interleaved rounds; seconds per run, best and spread."""
    from sr_runtime.run import RunOptions, upscale_files

    contenders = [(lab, be, fp16, prec, path) for lab, be, fp16 in backends() for prec, path in models.items()
                  if not (fp16 and prec == "int8")]
    times: dict[int, list[float]] = {i: [] for i in range(len(contenders))}
    n_px = sum(int(np.prod(cv2.imread(str(p)).shape[:2])) for p in folder.glob("*.png"))
    for r in range(rounds + 1):  # round 0 warms up (models load, caches fill)
        order = range(len(contenders)) if r % 2 else reversed(range(len(contenders)))
        for i in order:
            _lab, be, fp16, _prec, path = contenders[i]
            t0 = time.perf_counter()
            upscale_files(folder, out / str(i), RunOptions(model=path, backend=be, fp16=fp16 or None,
                                                           threads=threads, overwrite=True))
            if r:
                times[i].append(time.perf_counter() - t0)
    rows = []
    for i, (lab, _be, fp16, prec, _path) in enumerate(contenders):
        t = times[i]
        rows.append({"backend": lab, "precision": "bf16" if fp16 else prec, "best_s": min(t),
                     "median_s": statistics.median(t), "worst_s": max(t), "input_mp_s": n_px / 1e6 / min(t)})
    return rows


def ov_direct_speed(models: dict[str, Path], folder: Path, rounds: int, threads: int) -> list[dict[str, Any]]:
    """OpenVINO called directly on the photos of ``folder`` (model only: whole image, no reading or writing):
    fp32 with ``INFERENCE_PRECISION_HINT`` f32, fp32 in bf16 (OpenVINO's own default on a BF16 CPU), int8."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return []
    import openvino as ov

    core = ov.Core()
    xs = [_lq(cv2.imread(str(p))) for p in sorted(folder.glob("*.png"))]
    contenders = [("f32", "fp32", models["fp32"]), ("bf16", "bf16", models["fp32"]), ("f32", "int8", models["int8"])]
    reqs = []
    for hint, _prec, path in contenders:
        cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint}
        reqs.append(core.compile_model(str(path), "CPU", cfg).create_infer_request())
    times: dict[int, list[float]] = {i: [] for i in range(len(contenders))}
    for r in range(rounds + 1):
        for i in (range(len(reqs)) if r % 2 else reversed(range(len(reqs)))):
            t0 = time.perf_counter()
            for x in xs:
                reqs[i].infer({0: x})
            if r:
                times[i].append(time.perf_counter() - t0)
    n_px = sum(x.shape[2] * x.shape[3] for x in xs)
    return [{"backend": "OpenVINO (direct, model only)", "precision": prec, "best_s": min(times[i]),
             "median_s": statistics.median(times[i]), "worst_s": max(times[i]),
             "input_mp_s": n_px / 1e6 / min(times[i])} for i, (_h, prec, _p) in enumerate(contenders)]


# ---------------------------------------------------------------------------------------------- driver
def qat_row(qat: Path, ckpt: Path, data: dict[str, Any], d: Path, fp32: Path, threads: int) -> dict[str, Any]:
    """The int8 export of a QAT checkpoint fine-tuned from ``ckpt``, measured like the others (ONNX Runtime)."""
    from sr_export.pipeline import ExportOptions, export

    out = export(qat, ExportOptions(output=d / f"{qat.stem}_qat_int8.onnx", int8=True, calib=data["calib"],
                                    check=False), say=lambda s: None).onnx
    return {"recipe": f"QAT checkpoint {qat.parent.parent.name}/{qat.name} + sr-export --int8 (ONNX Runtime)",
            **quality(_ort_run(out, threads), _ort_run(fp32, threads), data["pairs"])}


def _qats_for(ckpt: Path, qats: list[Path]) -> list[Path]:
    """The QAT checkpoints whose teacher is ``ckpt`` (by sha256)."""
    from sr_train.checkpoint import file_sha256
    from sr_train.qat import read_int8_entry

    sha = file_sha256(ckpt)
    return [q for q in qats if ((read_int8_entry(q) or {}).get("teacher") or {}).get("sha256") == sha]


def bench_model(name: str, ckpt: Path, data: dict[str, Any], cache: Path, rounds: int, threads: int,
                log: Any, qats: Sequence[Path] = ()) -> dict[str, Any]:
    """Export fp32 and int8, measure the quality, the frontier and the speed of one model."""
    from sr_export.int8 import read_calibration
    from sr_export.pipeline import ExportOptions, export
    from sr_train.checkpoint import load_generator

    d = cache / ckpt.stem
    d.mkdir(parents=True, exist_ok=True)
    fp32 = export(ckpt, ExportOptions(output=d / f"{ckpt.stem}.onnx"), say=lambda s: None).onnx
    t0 = time.perf_counter()
    lines: list[str] = []
    res = export(ckpt, ExportOptions(output=d / f"{ckpt.stem}_int8.onnx", int8=True, calib=data["calib"]),
                 say=lines.append)
    export_s = time.perf_counter() - t0
    log(f"{name}: int8 export {export_s:.0f} s; " + "; ".join(s.strip() for s in lines if "quality" in s))
    q = quality(_ort_run(res.onnx, threads), _ort_run(fp32, threads), data["pairs"])
    q_ov = None
    if any(be == "openvino" for _l, be, _f in backends()):
        from sr_runtime.backends.openvino import OpenVinoBackend

        q_ov = quality(OpenVinoBackend(res.onnx, threads=threads).run, _ort_run(fp32, threads), data["pairs"])
    model = load_generator(ckpt).model.eval()
    cal = read_calibration(data["calib"])
    front = frontier(model, cal.calib, data["pairs"], fp32, threads, cache)
    for qat in qats:
        front.append(qat_row(qat, ckpt, data, d, fp32, threads))
    pair = {"fp32": fp32, "int8": res.onnx}
    spd = speed(pair, data["speed"], cache / "speed_out", rounds, threads)
    spd += ov_direct_speed(pair, data["speed"], rounds, threads)
    return {"name": name, "checkpoint": str(ckpt.name), "export_s": export_s,
            "gate": res.info.extra["int8"]["quality"], "quality_ort": q, "quality_openvino": q_ov,
            "frontier": front, "speed": spd}


def to_markdown(report: dict[str, Any]) -> str:
    """The tables of int8.md."""
    m = report["meta"]
    cpu = m["cpu"]
    lines = ["# int8 (sr-export --int8)", "",
             f"{m['date_utc']}, {cpu['model']} ({cpu['logical_cpus']} logical CPUs; {', '.join(cpu['flags'])}), "
             f"{m['threads']} threads, load {m['load_before']} -> {m['load_after']}. "
             "Generated by `benchmarks/int8.py`. Quality: the held-out photos of `benchmarks/quality.py` "
             "(bicubic x1/4, whole image, 8-bit); speed: sr-run on a folder of "
             f"{m['speed_photos']} photos of {SPEED_PHOTO[0]}x{SPEED_PHOTO[1]}, best of {m['rounds']} interleaved "
             "rounds (median, worst).", ""]
    for r in report["models"]:
        q = r["quality_ort"]
        lines += [f"## {r['name']}", "",
                  f"int8 ONNX on ONNX Runtime: PSNR-Y {q['psnr_y']:.3f} dB vs fp32 {q['psnr_y_fp32']:.3f} dB "
                  f"(**{q['d_psnr_y']:+.3f} dB**); against the fp32 output **{q['psnr_vs_fp32']:.2f} dB** "
                  f"(worst image {q['min_psnr_vs_fp32']:.2f}), max error {q['max_levels']} levels, mean "
                  f"{q['mean_levels']:.2f}. Export {r['export_s']:.0f} s; the export's own gate measured "
                  f"{r['gate']['psnr_db']} dB on its held-out crops."
                  + (f" On OpenVINO's int8 kernels: {r['quality_openvino']['psnr_vs_fp32']:.2f} dB, PSNR-Y "
                     f"{r['quality_openvino']['d_psnr_y']:+.3f} dB." if r.get("quality_openvino") else ""), "",
                  "| recipe | PSNR vs fp32 dB | max levels | mean levels | ΔPSNR-Y vs GT dB |", "|---|---:|---:|---:|---:|"]
        for f in r["frontier"]:
            lines.append(f"| {f['recipe']} | {f['psnr_vs_fp32']:.2f} | {f['max_levels']} | {f['mean_levels']:.2f} | "
                         f"{f['d_psnr_y']:+.3f} |")
        lines += ["", "| backend | precision | best s | median s | worst s | input MP/s | vs fp32 |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        base = {s["backend"].replace(" bf16 (--fp16)", ""): s["best_s"] for s in r["speed"] if s["precision"] == "fp32"}
        for s in r["speed"]:
            ref = base.get(s["backend"].replace(" bf16 (--fp16)", ""))
            lines.append(f"| {s['backend']} | {s['precision']} | {s['best_s']:.2f} | {s['median_s']:.2f} | "
                         f"{s['worst_s']:.2f} | {s['input_mp_s']:.3f} | "
                         f"{(ref / s['best_s']) if ref else float('nan'):.2f}x |")
        lines.append("")
    return "\n".join(lines)


def run_bench(out_dir: Path, *, quick: bool = False, threads: int | None = None, cache: Path = CACHE,
              log: Any = print, qat: Sequence[Path] = ()) -> dict[str, Any]:
    """Run everything and write ``int8.json`` and ``int8.md`` into ``out_dir``."""
    import torch

    from benchmarks.run import cpu_info, load_average

    threads = threads or 2
    # calibration and the frontier are not timed: one torch thread (OpenMP's spinning threads crawl on a shared CPU)
    torch.set_num_threads(1)
    rounds, n_speed = (1, 2) if quick else (3, 4)
    if not (DATA / "heldout").is_dir():
        log(f"int8 benchmark skipped: {DATA} not found (python scripts/prepare_default_data.py makes it)")
        return {}
    data = prepare_data(cache, n_speed)
    meta = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": cpu_info(), "threads": threads,
            "load_before": load_average(), "rounds": rounds, "speed_photos": n_speed}
    models = [(n, p) for n, p in MODELS.items() if p.is_file()]
    for n, p in MODELS.items():
        if not p.is_file():
            log(f"int8 benchmark: {n} skipped, {p} not found")
    results = [bench_model(n, p, data, cache, rounds, threads, log, _qats_for(p, list(qat)))
               for n, p in (models[-1:] if quick else models)]
    meta["load_after"] = load_average()
    report = {"meta": meta, "models": results}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "int8.json", (json.dumps(report, indent=1) + "\n").encode())
    atomic_write_bytes(out_dir / "int8.md", to_markdown(report).encode())
    log(f"wrote {out_dir / 'int8.json'} and int8.md")
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the default model only, one round, two photos")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--qat", type=Path, action="append", default=[],
                    help="a checkpoint of sr-train --config qat: a frontier row for the model it was tuned from")
    a = ap.parse_args(argv)
    run_bench(a.out, quick=a.quick, threads=a.threads, qat=a.qat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
