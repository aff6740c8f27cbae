"""Benchmark JSON -> Markdown table with ratios to the reference, target checks, and a PNG plot.

Usage::

    python -m benchmarks.report benchmarks/results/bench.json [--out DIR]

The plot needs matplotlib (the ``bench`` extra); without it the Markdown is still written.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr_runtime.fileio import atomic_write, atomic_write_bytes

PHOTO_PATHS = ("ref-t0", "ref-tiled", "ort-whole", "ort-tiled", "ort-batched", "ort-fp16", "ov-whole", "ov-tiled",
               "ov-batched", "vsmlrt-whole", "vsmlrt-tiled")
FOLDER_PATHS = ("ref-folder", "ort-folder-model", "io", "pipeline", "cli-folder")
PHOTOS_PATHS = ("ref-photos-tiled", "vsmlrt-whole", "vsmlrt-tiled", "cli-photos-tiled", "cli-photos-default")
"""Cold runs on the folder of full-size photos."""
PATH_LABELS = {
    "ref-t0": "reference, whole image",
    "ref-tiled": "reference, tiled",
    "ort-whole": "sr-run ORT fp32, whole",
    "ort-tiled": "sr-run ORT fp32, tiled",
    "ort-batched": "sr-run ORT fp32, batched tiles",
    "ort-fp16": "sr-run ORT fp16, batched tiles",
    "ref-folder": "reference CLI loop (cold)",
    "ort-folder-model": "ORT model only (no I/O)",
    "io": "PNG decode + encode only (no model, one thread)",
    "pipeline": "sr-run pipeline, warm (run_batch; model share of its time)",
    "cli-folder": "sr-run CLI (cold)",
    "ov-whole": "sr-run OpenVINO fp32, whole",
    "ov-tiled": "sr-run OpenVINO fp32, tiled",
    "ov-batched": "sr-run OpenVINO fp32, batched tiles",
    "vsmlrt-whole": "vs-mlrt OV_CPU (peer), whole image",
    "vsmlrt-tiled": "vs-mlrt OV_CPU (peer), tiled",
    "ref-photos-tiled": "reference CLI loop, tiled (upstream)",
    "cli-photos-tiled": "sr-run --tile T (cold, defaults otherwise)",
    "cli-photos-default": "sr-run, default flags (cold)",
}
PEER_TARGET, PEER_FLOOR = 1.2, 1.0
SRVGG_TARGET, RRDB_TARGET, PEAK_TARGET, FOLDER_TARGET, RSS_FACTOR = 1.6, 1.25, 0.80, 0.95, 1.3


@dataclass(frozen=True)
class Row:
    """One configuration after aggregating its repeated processes."""

    model: str
    """Model label."""
    path: str
    """Path label (see :data:`PATH_LABELS`)."""
    input: str
    """``photo``, ``folder`` or ``big``."""
    seconds: float
    """Median seconds per run (whole input: one photo or the whole folder)."""
    megapixels: float
    """Input megapixels per run."""
    images: int
    """Images per run."""
    model_seconds: float | None
    """Median seconds inside the network per run."""
    executed_pixels: int | None
    """Input pixels the network processed per run (tiles include their context)."""
    rss_mb: float
    """Largest peak RSS of the processes (MB)."""
    max_abs: float | None
    """Max |difference| to the reference whole-image output, 8-bit levels."""
    psnr: float | None
    """PSNR (dB, peak 255) against the reference whole-image output."""
    provider: str
    """What ran."""
    error: str | None
    """Error text when the configuration failed."""
    extra: dict[str, Any]
    """The first process's raw result."""

    @property
    def mp_s(self) -> float:
        """Input megapixels per second, end to end."""
        return self.megapixels / self.seconds if self.seconds else math.nan


def aggregate(results: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], Row]:
    """Group results by (model, path, input); median seconds over repeated processes."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r.get("model", "-"), r.get("path", "?"), r.get("input", "-")), []).append(r)
    rows = {}
    for key, rs in groups.items():
        ok = [r for r in rs if not r.get("error") and r.get("seconds") is not None]
        first = ok[0] if ok else rs[0]

        def med(k: str, ok: list[dict[str, Any]] = ok) -> float | None:
            vals = [r[k] for r in ok if r.get(k) is not None]
            return statistics.median(vals) if vals else None

        rows[key] = Row(
            model=key[0], path=key[1], input=key[2],
            seconds=med("seconds") or math.nan, megapixels=first.get("megapixels") or math.nan,
            images=int(first.get("images") or 1), model_seconds=med("model_seconds"),
            executed_pixels=first.get("executed_pixels"), rss_mb=max(r.get("rss_peak_mb", 0.0) for r in rs),
            max_abs=first.get("max_abs_vs_ref"), psnr=first.get("psnr_vs_ref"), provider=first.get("provider", ""),
            error=None if ok else (rs[0].get("error") or "no result"), extra=first)
    return rows


def _f(x: float | None, fmt: str = "{:.2f}", none: str = "–") -> str:
    if x is None or (isinstance(x, float) and (math.isnan(x))):
        return none
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return fmt.format(x)


def _ratio(ref: Row | None, row: Row) -> float | None:
    if ref is None or ref.error or row.error or not row.seconds:
        return None
    return ref.seconds / row.seconds


class Context:
    """Derived figures shared by the tables, the targets and the plot."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.meta = data["meta"]
        self.rows = aggregate(data["results"])
        self.models = [m["name"] for m in self.meta.get("models", [])]
        self.model_meta = {m["name"]: m for m in self.meta.get("models", [])}
        probe = self.rows.get(("-", "probe", "-"))
        self.probe = probe.extra if probe and not probe.error else {}
        self.peak = self.probe.get("peak_gflops")

    def row(self, model: str, path: str, inp: str) -> Row | None:
        return self.rows.get((model, path, inp))

    def gflops(self, row: Row) -> tuple[float | None, float | None]:
        """(useful GFLOP/s over model time, fraction of peak from the executed FLOPs)."""
        fpp = self.model_meta.get(row.model, {}).get("flops_per_pixel")
        if not fpp or not row.model_seconds or row.error:
            return None, None
        useful = fpp * row.megapixels * 1e6 / row.model_seconds / 1e9
        frac = None
        if self.peak and row.executed_pixels:
            frac = fpp * row.executed_pixels / row.model_seconds / 1e9 / self.peak
        return useful, frac

    def cli_startup(self, model: str) -> Row | None:
        """sr-run on a 16x16 image with this model: interpreter start, imports, model load, write."""
        r = self.rows.get((model, "cli-startup", "tiny"))
        return r if r and not r.error else None


# =========================================================================== markdown
def _machine(meta: dict[str, Any], probe: dict[str, Any]) -> list[str]:
    cpu, v = meta.get("cpu", {}), meta.get("versions", {})
    lines = [
        f"- **Machine:** {cpu.get('model', '?')}, {cpu.get('logical_cpus', '?')} logical CPUs "
        f"({', '.join(cpu.get('flags', []))}); {meta.get('threads')} threads for every path; no GPU.",
        f"- **Run:** {meta.get('date_utc')}, {'quick' if meta.get('quick') else 'full'} tier, "
        f"{meta.get('total_s', 0):.0f} s; load average before {meta.get('load_before')}, after "
        f"{meta.get('load_after')}.",
        f"- **Versions:** Python {v.get('python')}, torch {v.get('torch')}, onnxruntime {v.get('onnxruntime')}, "
        f"numpy {v.get('numpy')}, OpenCV {v.get('opencv-python-headless')}, sr-deploy {v.get('sr-deploy')}; "
        f"OpenVINO {v.get('openvino', 'not installed')}; ONNX Runtime providers available "
        f"{meta.get('ort_available_providers', '?')}, used: CPUExecutionProvider; each row's backend and precision "
        "in the JSON (`provider`, `precision`).",
    ]
    if probe:
        lines.append(
            f"- **Measured FMA peak (GEMM probe, fp32, {probe.get('threads')} threads):** "
            f"**{probe['peak_gflops']:.0f} GFLOP/s** (torch {_f(probe.get('torch_gflops'), '{:.0f}')}, "
            f"numpy/OpenBLAS {_f(probe.get('numpy_gflops'), '{:.0f}')}, {probe.get('n')}² matrices); a "
            f"conv-shaped GEMM (16384×576×64) reaches {_f(probe.get('conv_gemm_gflops'), '{:.0f}')} GFLOP/s.")
    for mg in meta.get("merged", []):
        lines.append(f"- **Re-measured** {mg['date_utc']}: rows of {', '.join(mg['models'])} (and that run's probe, "
                     f"where shown), load average before {mg.get('load_before')}.")
    inputs = meta.get("inputs", {})
    tier = meta.get("tier", {})
    if inputs:
        lines.append(
            f"- **Inputs:** photo from {inputs.get('source')}, resized to {tier.get('srvgg_photo')} for SRVGG and "
            f"{tier.get('rrdb_photo')} for RRDBNet (RRDBNet-23 is ~29× the FLOPs of SRVGG-16 per pixel); the "
            f"folder is that photo cut into {tier.get('folder_grid', 4) ** 2} crops; tiled paths use tile "
            f"{tier.get('srvgg_tile')} (SRVGG) / {tier.get('rrdb_tile')} (RRDBNet), tile_pad {meta.get('tile_pad')}, "
            f"pre_pad {meta.get('pre_pad')}; batched paths {meta.get('batch')} tiles per call.")
    return lines


def _models_lines(ctx: Context) -> list[str]:
    out = []
    for m in ctx.meta.get("models", []):
        out.append(f"- `{m['name']}`: {m['arch']} {_hp(m['hparams'])}, {m['flops_per_pixel'] / 1e6:.2f} MFLOP per "
                   f"input pixel, ONNX {m.get('onnx_bytes', 0) / 1e6:.1f} MB; weights: {m.get('weights_note')}.")
    return out


def _hp(hp: dict[str, Any]) -> str:
    keys = ("num_conv", "num_block", "num_feat", "num_grow_ch", "act_type")
    return "(" + ", ".join(f"{k}={hp[k]}" for k in keys if k in hp) + ")"


DISTURBED = 0.15
"""Other processes' CPU time per second of a job above which its row is marked (⚠)."""


def _mark(r: Row) -> str:
    share = r.extra.get("foreign_share")
    return " ⚠" if share is not None and share > DISTURBED else ""


def _ok_rows(ctx: Context, m: str, paths: Iterable[str], kind: str, lines: list[str]) -> Iterator[tuple[str, Row]]:
    """The rows of model `m` on `paths` that ran; a failed one becomes a "failed:" line in `lines` (as many
    cells as the table's separator line), a missing one is skipped."""
    blanks = " |" * (lines[1].count("|") - 4)
    for p in paths:
        r = ctx.row(m, p, kind)
        if r is None:
            continue
        if r.error:
            lines.append(f"| {m} | {PATH_LABELS[p]} | failed: {r.error[:80]} |{blanks}")
            continue
        yield p, r


def photo_table(ctx: Context) -> list[str]:
    lines = ["| model | path | s / image | input MP/s | × ref whole | × ref tiled | model s | executed / image px | "
             "model GFLOP/s | % peak | peak RSS MB | max abs diff vs ref (8-bit) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in ctx.models:
        r0, rt = ctx.row(m, "ref-t0", "photo"), ctx.row(m, "ref-tiled", "photo")
        for p, r in _ok_rows(ctx, m, PHOTO_PATHS, "photo", lines):
            useful, frac = ctx.gflops(r)
            over = r.executed_pixels / (r.megapixels * 1e6) if r.executed_pixels and r.megapixels else None
            lines.append(
                f"| {m} | {PATH_LABELS[p]} | {_f(r.seconds, '{:.3f}')}{_mark(r)} | {_f(r.mp_s, '{:.3g}')} | "
                f"{_f(_ratio(r0, r))} | {_f(_ratio(rt, r))} | {_f(r.model_seconds, '{:.3f}')} | {_f(over)} | "
                f"{_f(useful, '{:.0f}')} | {_f(frac * 100 if frac else None, '{:.0f}')} | {_f(r.rss_mb, '{:.0f}')} | "
                f"{_f(r.max_abs, '{:.0f}', '(ref)' if p == 'ref-t0' else '–')} |")
    return lines


def folder_table(ctx: Context) -> list[str]:
    lines = ["| model | path | images | s (whole folder) | input MP/s | × ref CLI | startup s | input MP/s excl. startup | "
             "time in model | peak RSS MB |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in ctx.models:
        ref = ctx.row(m, "ref-folder", "folder")
        st = ctx.cli_startup(m)
        start = st.seconds if st else None
        for p, r in _ok_rows(ctx, m, FOLDER_PATHS, "folder", lines):
            secs = r.model_seconds if p == "ort-folder-model" else r.seconds
            su = r.extra.get("startup_s") if p == "ref-folder" else (start if p == "cli-folder" else None)
            net = r.megapixels / (secs - su) if su is not None and secs and secs > su else None
            share = r.model_seconds / r.seconds if p in ("pipeline", "ref-folder") and r.model_seconds else None
            lines.append(
                f"| {m} | {PATH_LABELS[p]} | {r.images} | {_f(secs, '{:.2f}')}{_mark(r)} | "
                f"{_f(r.megapixels / secs, '{:.3g}')} | "
                f"{_f(ref.seconds / secs if ref and not ref.error and p in ('ref-folder', 'cli-folder') else None)} | "
                f"{_f(su)} | {_f(net, '{:.3g}')} | {_f(share * 100 if share else None, '{:.0f}%')} | "
                f"{_f(r.rss_mb, '{:.0f}')} |")
    return lines


def photos_table(ctx: Context) -> list[str]:
    """Cold runs on the folder of full-size photos: the upstream loop, vs-mlrt OV_CPU and sr-run."""
    lines = ["| model | path | what ran | images | s (whole folder) | MP/s | × upstream loop | × vs-mlrt whole | "
             "peak RSS MB |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for m in ctx.models:
        ref, peer = ctx.row(m, "ref-photos-tiled", "photos"), ctx.row(m, "vsmlrt-whole", "photos")
        for p, r in _ok_rows(ctx, m, PHOTOS_PATHS, "photos", lines):
            lines.append(f"| {m} | {PATH_LABELS[p]} | {r.provider} | {r.images} | {_f(r.seconds)}{_mark(r)} | "
                         f"{_f(r.mp_s, '{:.3g}')} | {_f(_ratio(ref, r))} | {_f(_ratio(peer, r))} | "
                         f"{_f(r.rss_mb, '{:.0f}')} |")
    return lines


def memory_table(ctx: Context) -> list[str]:
    rows = [r for r in ctx.rows.values() if r.input == "big"]
    if not rows:
        return []
    w, h = ctx.meta.get("tier", {}).get("big", (0, 0))
    m = rows[0].model
    scale = 4
    out_mb = w * scale * h * scale * 3 / 1e6
    model_mb = ctx.model_meta.get(m, {}).get("onnx_bytes", 0) / 1e6
    budget = RSS_FACTOR * out_mb + model_mb
    lines = [f"{w}×{h} → ×{scale} with {m} (uint8 output {out_mb:.0f} MB, model {model_mb:.1f} MB, "
             f"target ≤ {RSS_FACTOR}× output + model = {budget:.0f} MB):", "",
             "| job | s | peak RSS MB | RSS after imports + model load MB (CLI: peak on a 16×16 image) | "
             "peak − loaded MB | peak / target |",
             "|---|---:|---:|---:|---:|---:|"]
    batch = ctx.meta.get("batch")
    labels = {"rss-cli": f"sr-run CLI, tile 256, batch {batch} (read, tiles, write PNG)",
              "rss-ort-tiled": "sr-run in memory (Upscaler), tile 256, batch 1",
              "rss-ref-tiled": "reference, tile 256 (float32 full-size output)"}
    st = ctx.cli_startup(m)
    for r in sorted(rows, key=lambda r: r.path):
        loaded = r.extra.get("rss_loaded_mb") or (st.rss_mb if st and r.path == "rss-cli" else None)
        lines.append(f"| {labels.get(r.path, r.path)} | {_f(r.seconds, '{:.1f}')} | {_f(r.rss_mb, '{:.0f}')} | "
                     f"{_f(loaded, '{:.0f}')} | {_f(r.rss_mb - loaded if loaded else None, '{:.0f}')} | "
                     f"{_f(r.rss_mb / budget if not r.error else None)}× |" if not r.error else
                     f"| {labels.get(r.path, r.path)} | failed: {r.error[:80]} | | | | |")
    return lines


def targets(ctx: Context) -> list[dict[str, Any]]:
    """Each target: name, measured value, goal, met, and a note."""
    out: list[dict[str, Any]] = []
    for m in ctx.models:
        arch = ctx.model_meta.get(m, {}).get("arch", "")
        goal = RRDB_TARGET if arch == "RRDBNet" else SRVGG_TARGET
        rt = ctx.row(m, "ref-tiled", "photo")
        best = [r for p in ("ort-tiled", "ort-batched", "ov-tiled", "ov-batched")
                if (r := ctx.row(m, p, "photo")) and not r.error]
        if rt and best and not rt.error:
            b = min(best, key=lambda r: r.seconds)
            ratio = rt.seconds / b.seconds
            out.append({"target": f"{m}: sr-run tiled fp32 vs reference tiled (photo, end to end)",
                        "measured": f"{ratio:.2f}× ({PATH_LABELS[b.path]})", "goal": f"≥ {goal}×",
                        "met": ratio >= goal,
                        "miss": None if ratio >= goal else f"needs {goal / ratio:.2f}× more speed"})
        out += _photos_targets(ctx, m, goal)
        ours = ("ort-whole", "ort-tiled", "ort-batched", "ov-whole", "ov-tiled", "ov-batched")
        fr = [(f, r) for r in (ctx.row(m, p, "photo") for p in ours)
              if r and not r.error and (f := ctx.gflops(r)[1])]
        if fr:
            f, r = max(fr, key=lambda t: t[0])
            out.append({"target": f"{m}: our model time vs measured FMA peak", "measured":
                        f"{f * 100:.0f}% ({PATH_LABELS[r.path]})", "goal": f"≥ {PEAK_TARGET * 100:.0f}%",
                        "met": f >= PEAK_TARGET,
                        "miss": None if f >= PEAK_TARGET else f"{(PEAK_TARGET - f) * 100:.0f} points short"})
        pipe = ctx.row(m, "pipeline", "folder")
        if pipe and not pipe.error and pipe.model_seconds:
            f = pipe.model_seconds / pipe.seconds
            io = ctx.row(m, "io", "folder")
            out.append({"target": f"{m}: folder throughput vs pure model throughput (warm sr-run pipeline)",
                        "measured": f"{f * 100:.1f}% (model {pipe.model_seconds:.2f} s of {pipe.seconds:.2f} s"
                                    + (f"; PNG I/O alone {io.seconds:.2f} s" if io and not io.error else "") + ")",
                        "goal": f"≥ {FOLDER_TARGET * 100:.0f}%", "met": f >= FOLDER_TARGET,
                        "miss": None if f >= FOLDER_TARGET else f"{(FOLDER_TARGET - f) * 100:.1f} points short"})
            continue
        cli, model_only = ctx.row(m, "cli-folder", "folder"), ctx.row(m, "ort-folder-model", "folder")
        if cli and model_only and not cli.error and not model_only.error and model_only.model_seconds:
            st = ctx.cli_startup(m)
            start = st.seconds if st else 0.0
            thr = cli.megapixels / max(cli.seconds - start, 1e-9)
            mthr = model_only.megapixels / model_only.model_seconds
            f = thr / mthr
            io = ctx.row(m, "io", "folder")
            io_txt = (f"; model {model_only.model_seconds:.2f} s + PNG I/O {io.seconds:.2f} s vs CLI "
                      f"{cli.seconds - start:.2f} s" if io and not io.error else "")
            out.append({"target": f"{m}: folder throughput (sr-run CLI, excl. {start:.2f} s startup) vs model only",
                        "measured": f"{f * 100:.0f}% ({thr:.3g} vs {mthr:.3g} input MP/s; incl. startup "
                                    f"{cli.megapixels / cli.seconds / mthr * 100:.0f}%{io_txt})",
                        "goal": f"≥ {FOLDER_TARGET * 100:.0f}%", "met": f >= FOLDER_TARGET,
                        "miss": None if f >= FOLDER_TARGET else f"{(FOLDER_TARGET - f) * 100:.0f} points short"})
    big = ctx.rows.get(next((k for k in ctx.rows if k[1] == "rss-cli"), ("", "", "")))
    if big and not big.error:
        w, h = ctx.meta.get("tier", {}).get("big", (0, 0))
        budget = RSS_FACTOR * w * h * 16 * 3 / 1e6 + ctx.model_meta.get(big.model, {}).get("onnx_bytes", 0) / 1e6
        out.append({"target": f"peak RSS, {w}×{h} → ×4 with sr-run ({big.model})",
                    "measured": f"{big.rss_mb:.0f} MB", "goal": f"≤ {budget:.0f} MB", "met": big.rss_mb <= budget,
                    "miss": None if big.rss_mb <= budget else f"{big.rss_mb / budget:.2f}× the budget"})
    return out


def _spread(row: Row) -> str:
    """``best of N: a-b s`` over a cold job's interleaved rounds (``times`` of its result)."""
    t = [x for x in row.extra.get("times") or [] if isinstance(x, (int, float))]
    return f"{len(t)} runs {min(t):.1f}-{max(t):.1f} s" if len(t) > 1 else "1 run"


def _photos_targets(ctx: Context, m: str, goal: float) -> list[dict[str, Any]]:
    """sr-run --tile on the photos folder vs the upstream loop; sr-run's defaults vs the fastest peer."""
    out = []
    ref, tiled = ctx.row(m, "ref-photos-tiled", "photos"), ctx.row(m, "cli-photos-tiled", "photos")
    if (ratio := _ratio(ref, tiled) if tiled else None) is not None:
        out.append({"target": f"{m}: sr-run --tile on a folder of photos vs the upstream loop (cold, end to end)",
                    "measured": f"{ratio:.2f}× (best runs; ours {_spread(tiled)}, upstream {_spread(ref)}; "
                                f"{tiled.provider})", "goal": f"≥ {goal}×", "met": ratio >= goal,
                    "miss": None if ratio >= goal else f"needs {goal / ratio:.2f}× more speed"})
    peers = [r for p in ("vsmlrt-whole", "vsmlrt-tiled") if (r := ctx.row(m, p, "photos")) and not r.error]
    default = ctx.row(m, "cli-photos-default", "photos")
    if peers and default and not default.error:
        best = min(peers, key=lambda r: r.seconds)
        ratio = best.seconds / default.seconds
        out.append({"target": f"{m}: sr-run defaults vs the fastest peer ({PATH_LABELS[best.path]}), folder, cold",
                    "measured": f"{ratio:.2f}× (best runs; ours {_spread(default)}, peer {_spread(best)}; "
                                f"{default.provider})",
                    "goal": f"≥ {PEER_TARGET}× (never < {PEER_FLOOR}×)", "met": ratio >= PEER_TARGET,
                    "miss": None if ratio >= PEER_TARGET else f"needs {PEER_TARGET / ratio:.2f}× more speed"
                    + ("" if ratio >= PEER_FLOOR else "; BELOW the peer")})
    return out


def profile_lines(ctx: Context) -> list[str]:
    lines = []
    for m in ctx.models:
        for p, label in (("profile-ort", "ORT"), ("profile-ref", "torch")):
            r = ctx.row(m, p, "photo")
            if not r or r.error or not r.extra.get("by_op"):
                continue
            ops = r.extra["by_op"]
            tot = sum(ops.values()) or 1.0
            top = ", ".join(f"{k} {v:.3f} s ({v / tot * 100:.0f}%)" for k, v in list(ops.items())[:5])
            lines.append(f"- {m}, {label}, whole photo ({r.seconds:.3f} s): {top}")
    return lines


def render_markdown(data: dict[str, Any], plot_name: str | None = "bench.png") -> str:
    """The full Markdown report."""
    ctx = Context(data)
    parts = ["# sr-deploy CPU benchmark", "", *_machine(ctx.meta, ctx.probe), "", "Models:", *_models_lines(ctx), "",
             "## One photo", "", "Ratios are the reference's seconds over ours (higher is faster). *model GFLOP/s* "
             "counts the useful conv FLOPs of the image over time in the network; *executed / image px* is the "
             "work the tiles' context adds; *% peak* counts the FLOPs the network executed against the GEMM probe "
             "(it can pass 100 %: ONNX Runtime's conv kernels can beat the probe's GEMMs). ⚠: other processes used "
             f"more than {DISTURBED:.0%} of a CPU during that job.", "", *photo_table(ctx), "",
             "## Folder, end to end", "", "Cold processes as a user runs them (interpreter start, model load, "
             "read, upscale, write PNG).", "", *folder_table(ctx), ""]
    photos = photos_table(ctx)
    if len(photos) > 2:
        parts += ["## Folder of full-size photos, end to end (cold), with the CPU peer", "",
                  "The photo and its flips; the upstream loop and `sr-run --tile T` tile it (T as in the photo "
                  "table, upstream with tile_pad 10, sr-run with its default pad); vs-mlrt OV_CPU as "
                  "benchmarks/peers.py runs it; *what ran* is the backend each tool reported.", "", *photos, ""]
    mem = memory_table(ctx)
    if mem:
        parts += ["## Memory", "", *mem, ""]
    tg = targets(ctx)
    if tg:
        parts += ["## Targets", "", "| target | measured | goal | met | miss |", "|---|---|---|---|---|"]
        parts += [f"| {t['target']} | {t['measured']} | {t['goal']} | {'yes' if t['met'] else '**no**'} | "
                  f"{t['miss'] or ''} |" for t in tg]
        parts.append("")
    prof = profile_lines(ctx)
    if prof:
        parts += ["## Where the time goes (one whole-photo run, self time per operator)", "", *prof, ""]
    if plot_name:
        parts += [f"![megapixels per second by path and model]({plot_name})", ""]
    return "\n".join(parts)


# =========================================================================== plot
def plot(data: dict[str, Any], path: str | Path) -> bool:
    """Bar chart of end-to-end megapixels/s per path, grouped by model. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ctx = Context(data)
    series = [(p, "photo") for p in PHOTO_PATHS] + [("ref-folder", "folder"), ("cli-folder", "folder")]
    series = [s for s in series if any(ctx.row(m, *s) for m in ctx.models)]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.8 * len(ctx.models) + 3), 5.0), dpi=110)
    width = 0.8 / max(1, len(series))
    for i, (p, inp) in enumerate(series):
        vals = []
        for m in ctx.models:
            r = ctx.row(m, p, inp)
            vals.append(r.mp_s if r and not r.error else 0.0)
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(ctx.models))]
        ax.bar(xs, vals, width, label=PATH_LABELS[p] + (" (folder)" if inp == "folder" else ""))
    ax.set_xticks(range(len(ctx.models)))
    ax.set_xticklabels(ctx.models)
    ax.set_ylabel("input megapixels / s (end to end)")
    ax.set_yscale("log")
    cpu = ctx.meta.get("cpu", {})
    ax.set_title(f"sr-deploy vs upstream algorithm, x4, {cpu.get('model', '?')} ({ctx.meta.get('threads')} threads)",
                 fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
    return True


def _atomic_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_report(json_path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write ``bench.md`` (and ``bench.png`` when matplotlib is installed) next to ``json_path`` or in ``out_dir``.

    Returns:
        The written paths.
    """
    json_path = Path(json_path)
    out = Path(out_dir) if out_dir else json_path.parent
    out.mkdir(parents=True, exist_ok=True)
    data = json.loads(json_path.read_text())
    png = out / "bench.png"
    has_plot = plot(data, png)
    md = out / "bench.md"
    _atomic_text(md, render_markdown(data, png.name if has_plot else None))
    return [md, png] if has_plot else [md]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, nargs="?", default=Path(__file__).parent / "results" / "bench.json")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    for p in write_report(a.json, a.out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
