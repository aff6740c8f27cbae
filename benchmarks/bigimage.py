"""Big images: peak RSS and time of the sr-run CLI against image size, whole, tiled and streamed.

Usage::

    python -m benchmarks.bigimage [--quick] [--slow] [--model PATH] [--only targets,scaling,giant] [--out DIR]

- **targets** (issue 12): 2000x1500 and 3000x2000 -> x4 PNG, each as sr-run ran before streaming (tile 256,
  4 tiles per call, ``--stream off``), streamed (``--stream auto``), and streamed on a small budget
  (``--max-memory 96M``: ``--tile auto`` fits tiles and bands in it);
- **scaling**: inputs of about 0.25, 1, 4 and 16 MP (``--quick``: up to 4 MP) -> x4 PNG, whole image
  (``--tile 0 --stream off``), tiled (``--tile 256 --stream off``) and streamed (``--tile 256 --stream on``);
- **giant** (``--slow`` only): a 20000x20000 tiled TIFF -> x4 TIFF (80000x80000, 19.2 GB of pixels), read in
  strips and written in tile rows, ``--max-memory 256M`` (a band of the 80000-pixel-wide output is 1 MB per row).

Every job is one ``sr-run`` process (``benchmarks.run.run_child``: peak RSS from ``os.wait4``, wall time, CPU
time taken by other processes meanwhile). Inputs are photo-like (``benchmarks.run._structured_image``), made in a
child process and cached under ``.sr-cache/bench/big``. Results: ``<out>/bigimage.json``, ``bigimage.md`` and,
with matplotlib (extra ``bench``), ``bigimage.png``. ``make bench`` runs it after the main benchmark
(``BIG=0`` skips it, ``SLOW=1`` adds the giant case).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.run import CACHE, DEFAULT_ONNX, RESULTS, ROOT, Job, cpu_info, run_child
from sr_runtime.fileio import atomic_write_bytes

TINY_ONNX = ROOT / "tests" / "data" / "SRVGGNetCompact.onnx"
"""A tiny x4 SRVGG (8 features, 2 convs): the model of ``--quick`` and of the giant case."""
SCALING = {"0.25 MP": (577, 433), "1 MP": (1155, 866), "4 MP": (2309, 1732), "16 MP": (4619, 3464)}
TARGETS = {"2000x1500": (2000, 1500), "3000x2000": (3000, 2000)}
GIANT = (20000, 20000)
MODES = {
    "whole": ["--tile", "0", "--stream", "off"],
    "tiled": ["--tile", "256", "--batch", "4", "--stream", "off"],
    "streamed": ["--tile", "256", "--batch", "4", "--stream", "on"],
    "streamed, --max-memory 96M": ["--tile", "auto", "--batch", "4", "--max-memory", "96M"],
    "streamed, --max-memory 256M": ["--tile", "auto", "--batch", "4", "--max-memory", "256M"],
}
TIMEOUT_S = {"targets": 1800, "scaling": 1800, "giant": 7200}


# --------------------------------------------------------------------------- inputs (in a child process)
def _tiles_of(base: Any, h: int, w: int, t: int):
    """Row-major ``t`` x ``t`` tiles of a ``h`` x ``w`` RGB image made by mirroring ``base`` (never held whole)."""
    import numpy as np

    bh, bw = base.shape[:2]
    for y in range(0, h, t):
        for x in range(0, w, t):
            ys = np.arange(y, min(y + t, h)) % (2 * bh)
            xs = np.arange(x, min(x + t, w)) % (2 * bw)
            ys = np.where(ys < bh, ys, 2 * bh - 1 - ys)
            xs = np.where(xs < bw, xs, 2 * bw - 1 - xs)
            yield base[ys][:, xs]


def make_inputs(folder: Path, sizes: list[tuple[int, int]], giant: bool) -> None:
    """PNGs of ``sizes`` and, with ``giant``, the 20000x20000 tiled TIFF (written tile by tile)."""
    import cv2

    from benchmarks.run import _structured_image

    folder.mkdir(parents=True, exist_ok=True)
    for w, h in sizes:
        p = folder / f"{w}x{h}.png"
        if not p.is_file():
            cv2.imwrite(str(p), _structured_image(w, h))
    p = folder / f"{GIANT[0]}x{GIANT[1]}.tif"
    if giant and not p.is_file():
        import tifffile

        base = _structured_image(2048, 2048)[..., ::-1]
        tmp = p.with_suffix(".part")
        with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
            tw.write(_tiles_of(base, GIANT[1], GIANT[0], 256), shape=(GIANT[1], GIANT[0], 3), dtype="uint8",
                     tile=(256, 256), photometric="rgb", compression="zlib", predictor=True, metadata=None)
        tmp.rename(p)


# --------------------------------------------------------------------------- jobs
def _jobs(only: set[str], quick: bool, model: Path, inputs: Path, outputs: Path, threads: int) -> list[Job]:
    def cli(section: str, label: str, mode: str, src: Path, ext: str, mdl: Path) -> Job:
        out = outputs / f"{label.replace(' ', '')}_{mode.split(',')[0]}.{ext}"
        argv = [str(src), str(out), "--model", str(mdl), "--threads", str(threads), "--backend", "ort",
                "--overwrite", "-q", *MODES[mode]]
        return Job(f"{section}/{label}/{mode}", mdl.stem, mode, label, "cli", {"argv": argv, "out": str(out)})

    jobs = []
    if "targets" in only:
        for label, (w, h) in TARGETS.items():
            for mode in ("tiled", "streamed", "streamed, --max-memory 96M"):
                jobs.append(cli("targets", label, mode, inputs / f"{w}x{h}.png", "png", model))
    if "scaling" in only:
        for label, (w, h) in list(SCALING.items())[: 3 if quick else 4]:
            for mode in ("whole", "tiled", "streamed"):
                jobs.append(cli("scaling", label, mode, inputs / f"{w}x{h}.png", "png", model))
    if "giant" in only:
        jobs.append(cli("giant", f"{GIANT[0]}x{GIANT[1]}", "streamed, --max-memory 256M",
                        inputs / f"{GIANT[0]}x{GIANT[1]}.tif", "tif", TINY_ONNX))
    return jobs


def _row(job: Job, res: dict[str, Any]) -> dict[str, Any]:
    w, h = (int(v) for v in Path(job.args["argv"][0]).stem.split("x"))
    out = Path(job.args["out"])
    row = {"section": job.id.split("/")[0], "input": job.input, "mode": job.path, "model": job.model,
           "megapixels": w * h / 1e6, "seconds": res["wall_s"], "rss_mb": res["rss_peak_mb"],
           "output_pixels_mb": w * h * 16 * 3 / 1e6, "output_file_mb": out.stat().st_size / 1e6 if out.is_file() else None,
           "foreign_cpu_s": res["foreign_cpu_s"], "error": res.get("error")}
    out.unlink(missing_ok=True)  # the giant output is 8+ GB: keep the disk free
    return row


# --------------------------------------------------------------------------- report
def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| input | mode | model | s | s per MP in | peak RSS MB | output pixels MB | output file MB | "
             "other processes' CPU s |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["error"]:
            lines.append(f"| {r['input']} | {r['mode']} | {r['model']} | refused or failed: {r['error'][:160]} "
                         f"| | {r['rss_mb']:.0f} | {r['output_pixels_mb']:.0f} | | |")
            continue
        lines.append(f"| {r['input']} | {r['mode']} | {r['model']} | {r['seconds']:.1f} | "
                     f"{r['seconds'] / r['megapixels']:.1f} | {r['rss_mb']:.0f} | {r['output_pixels_mb']:.0f} | "
                     f"{r['output_file_mb'] or 0:.0f} | {r['foreign_cpu_s']:.0f} |")
    return lines


def write_report(data: dict[str, Any], out_dir: Path) -> list[Path]:
    """``bigimage.md`` (always) and ``bigimage.png`` (with matplotlib): tables by section, time and RSS vs size."""
    meta, rows = data["meta"], data["rows"]
    md = [f"# Big images ({meta['date_utc']}, {meta['cpu']['model']} x{meta['cpu']['logical_cpus']}, "
          f"{meta['threads']} threads)", ""]
    for section in ("targets", "scaling", "giant"):
        part = [r for r in rows if r["section"] == section]
        if part:
            md += [f"## {section}", "", *_table(part), ""]
    written = [out_dir / "bigimage.md"]
    atomic_write_bytes(written[0], "\n".join(md).encode())
    scaling = [r for r in rows if r["section"] == "scaling" and not r["error"]]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for mode in MODES:
        pts = sorted((r["megapixels"], r["seconds"], r["rss_mb"]) for r in scaling if r["mode"] == mode)
        if pts:
            a.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=mode)
            b.plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=mode)
    a.set(xlabel="input MP", ylabel="seconds (x4, PNG out)", xscale="log", yscale="log")
    b.set(xlabel="input MP", ylabel="peak RSS MB", xscale="log", yscale="log")
    a.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "bigimage.png", dpi=100)
    return written + [out_dir / "bigimage.png"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bigimage", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the tiny model, inputs up to 4 MP")
    ap.add_argument("--slow", action="store_true", help="add the 20000x20000 -> x4 TIFF case (tiny model)")
    ap.add_argument("--only", default="", help="comma-separated sections: targets, scaling, giant")
    ap.add_argument("--model", type=Path, default=None, help="model of targets and scaling (default: shipped)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results[/quick])")
    ap.add_argument("--prepare", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.prepare:
        spec = json.loads(a.prepare)
        make_inputs(Path(spec["folder"]), [tuple(s) for s in spec["sizes"]], spec["giant"])
        return 0
    only = set(filter(None, a.only.split(","))) or {"targets", "scaling"} | ({"giant"} if a.slow else set())
    model = a.model or (TINY_ONNX if a.quick else DEFAULT_ONNX)
    out_dir = a.out or (RESULTS / "quick" if a.quick else RESULTS)
    inputs, outputs = CACHE / "big", CACHE / "big" / "out"
    outputs.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[big {time.time() - t0:6.1f}s] {msg}", flush=True)

    sizes = list(SCALING.values()) + list(TARGETS.values())
    subprocess.run([sys.executable, "-m", "benchmarks.bigimage", "--prepare",
                    json.dumps({"folder": str(inputs), "sizes": sizes, "giant": "giant" in only})],
                   cwd=ROOT, check=True)
    rows = []
    for job in _jobs(only, a.quick, model, inputs, outputs, a.threads):
        res = run_child(job, a.threads, CACHE, log, timeout=TIMEOUT_S[job.id.split("/")[0]])
        rows.append(_row(job, res))
        r = rows[-1]
        log(f"{job.id}: {r['seconds']:.1f} s, peak RSS {r['rss_mb']:.0f} MB" + (f", {r['error']}" if r["error"] else ""))
    meta = {"date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "threads": a.threads, "cpu": cpu_info(),
            "model": str(model)}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "bigimage.json"
    old = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    keep = [r for r in old["rows"] if r["section"] not in only]  # other sections of an earlier run stay
    data = {"meta": meta, "rows": keep + rows}
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())
    log(f"wrote {', '.join(str(p) for p in [path, *write_report(data, out_dir)])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
