"""The torchscript vs dynamo ONNX exporters on full-size models (a benchmark, run by hand).

    .venv/bin/python -m benchmarks.exporters [--size 64] [--runs 5] [--threads 2] [--out benchmarks/results]

For each architecture (RRDBNet x4 and x2 with the official default sizes, SRVGGNetCompact as
realesr-animevideov3) and each exporter: export time, node count, file size, op histogram, ORT CPU latency
(median of ``--runs`` after one warm-up, 1x3xSxS input, the two exporters' sessions timed interleaved) and max
abs error against torch. Prints the rows and a Markdown table, and writes the table to ``<out>/exporters.md``.
The figures and the choice they led to are in docs/export.md ("Exporter choice").
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sr_export.onnx import export_onnx
from sr_runtime.fileio import atomic_write_bytes
from sr_train.archs import REGISTRY
from sr_train.archs.registry import ArchSpec

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = {
    "RRDBNet x4 (x4plus)": ("RRDBNet", {"scale": 4}),
    "RRDBNet x2 (x2plus)": ("RRDBNet", {"scale": 2}),
    "SRVGGNetCompact (animevideov3)": ("SRVGGNetCompact", {"num_feat": 64, "num_conv": 16, "upscale": 4}),
}
EXPORTERS = ("torchscript", "dynamo")


def export_timed(model: nn.Module, spec: ArchSpec, hparams: dict[str, Any], path: str | Path,
                 **kwargs: Any) -> float:
    """Run :func:`sr_export.onnx.export_onnx` and return the wall time it took in seconds."""
    t0 = time.perf_counter()
    export_onnx(model, spec, hparams, path, **kwargs)
    return time.perf_counter() - t0


@dataclass
class Row:
    """One (model, exporter) measurement."""

    label: str
    exporter: str
    export_s: float
    nodes: int
    mb: float
    max_abs: float
    ops: dict[str, int]
    times: list[float] = field(default_factory=list)

    @property
    def ort_ms(self) -> float:
        return statistics.median(self.times) * 1000


def measure_model(label: str, arch: str, over: dict[str, Any], args: argparse.Namespace, tmp: Path) -> list[Row]:
    """Export one architecture with both exporters, check each against torch, time both interleaved."""
    import onnx
    import onnxruntime as ort

    spec = REGISTRY.get(arch)
    hp = {**spec.defaults, **over}
    torch.manual_seed(0)
    model = spec.build(**hp).eval()
    x = torch.rand(1, 3, args.size, args.size)
    with torch.no_grad():
        ref = model(x).numpy()
    rows, sessions = [], []
    for exporter in EXPORTERS:
        path = tmp / f"{arch}_{exporter}.onnx"
        secs = export_timed(model, spec, hp, path, exporter=exporter)
        proto = onnx.load(str(path))
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        err = float(np.abs(sess.run(None, {"input": x.numpy()})[0] - ref).max())
        ops = dict(collections.Counter(n.op_type for n in proto.graph.node))
        rows.append(Row(label, exporter, secs, len(proto.graph.node), path.stat().st_size / 1e6, err, ops))
        sessions.append(sess)
    # interleaved timing, so that load from other processes hits both exporters alike
    for _ in range(args.runs):
        for row, sess in zip(rows, sessions):
            t0 = time.perf_counter()
            sess.run(None, {"input": x.numpy()})
            row.times.append(time.perf_counter() - t0)
    return rows


def table(rows: list[Row], size: int, threads: int) -> list[str]:
    """The Markdown table of docs/export.md."""
    lines = [f"| model | exporter | export s | nodes | MB | ORT ms ({size}x{size}, {threads} thr) | max abs vs torch |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.label} | {r.exporter} | {r.export_s:.1f} | {r.nodes} | {r.mb:.1f} | {r.ort_ms:.0f} "
              f"| {r.max_abs:.1e} |" for r in rows]
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.exporters", description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS, help="results folder (exporters.md)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (arch, over) in MODELS.items():
            for row in measure_model(label, arch, over, args, Path(tmp)):
                print((row.label, row.exporter, row.export_s, row.nodes, row.mb, row.ort_ms, row.max_abs, row.ops),
                      flush=True)
                rows.append(row)
    lines = table(rows, args.size, args.threads)
    print("\n" + "\n".join(lines))
    for row in rows:
        print(row.label, row.exporter, row.ops)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    args.out.mkdir(parents=True, exist_ok=True)
    head = [f"# ONNX exporters ({stamp}, torch {torch.__version__})", ""]
    atomic_write_bytes(args.out / "exporters.md", ("\n".join(head + lines) + "\n").encode())


if __name__ == "__main__":
    main()
