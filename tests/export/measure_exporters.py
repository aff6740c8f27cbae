"""Measure the torchscript vs dynamo ONNX exporters on full-size models (not a test; run by hand).

    .venv/bin/python tests/export/measure_exporters.py [--size 64] [--runs 5] [--threads 2]

For each architecture (RRDBNet x4 and x2 with the official default sizes, SRVGGNetCompact as
realesr-animevideov3) and each exporter: export time, node count, file size, op histogram, ORT CPU latency
(median of ``--runs`` after one warm-up, 1x3xSxS input) and max abs error against torch. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sr_export.onnx import export_timed  # noqa: E402
from sr_train.archs import REGISTRY  # noqa: E402

MODELS = {
    "RRDBNet x4 (x4plus)": ("RRDBNet", {"scale": 4}),
    "RRDBNet x2 (x2plus)": ("RRDBNet", {"scale": 2}),
    "SRVGGNetCompact (animevideov3)": ("SRVGGNetCompact", {"num_feat": 64, "num_conv": 16, "upscale": 4}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import onnx
    import onnxruntime as ort

    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, (arch, over) in MODELS.items():
            spec = REGISTRY.get(arch)
            hp = {**spec.defaults, **over}
            torch.manual_seed(0)
            model = spec.build(**hp).eval()
            x = torch.rand(1, 3, args.size, args.size)
            with torch.no_grad():
                ref = model(x).numpy()
            sessions = {}
            for exporter in ("torchscript", "dynamo"):
                path = Path(tmp) / f"{arch}_{exporter}.onnx"
                _, secs = export_timed(model, spec, hp, path, exporter=exporter)
                proto = onnx.load(str(path))
                so = ort.SessionOptions()
                so.intra_op_num_threads = args.threads
                sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
                err = float(np.abs(sess.run(None, {"input": x.numpy()})[0] - ref).max())
                ops = dict(collections.Counter(n.op_type for n in proto.graph.node))
                sessions[exporter] = (sess, secs, len(proto.graph.node), path.stat().st_size / 1e6, err, ops)
            # interleaved timing, so that load from other processes hits both exporters alike
            times: dict[str, list[float]] = {e: [] for e in sessions}
            for _ in range(args.runs):
                for exporter, (sess, *_rest) in sessions.items():
                    t0 = time.perf_counter()
                    sess.run(None, {"input": x.numpy()})
                    times[exporter].append(time.perf_counter() - t0)
            for exporter, (_, secs, nodes, mb, err, ops) in sessions.items():
                rows.append((label, exporter, secs, nodes, mb, statistics.median(times[exporter]) * 1000, err, ops))
                print(rows[-1], flush=True)
    print(f"\n| model | exporter | export s | nodes | MB | ORT ms ({args.size}x{args.size}, {args.threads} thr) "
          "| max abs vs torch |")
    print("|---|---|---|---|---|---|---|")
    for label, exporter, secs, nodes, mb, ms, err, _ in rows:
        print(f"| {label} | {exporter} | {secs:.1f} | {nodes} | {mb:.1f} | {ms:.0f} | {err:.1e} |")
    for label, exporter, *_, ops in rows:
        print(label, exporter, ops)


if __name__ == "__main__":
    main()
