"""Smoke tests of the benchmark harness: the reference algorithm is right, the report renders.

No timing is asserted here; speed is measured by ``make bench`` only.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks import report, run  # noqa: E402
from benchmarks.reference import Reference, reference_folder  # noqa: E402

TOL_LEVELS = {"whole": 0, "tiled_pad_ge_radius": 1}
"""Max |difference| in 8-bit levels against the model run directly (measured: 0 and 0; one level of slack
for tiles because oneDNN may pick another conv algorithm for another tile shape)."""


def _direct(model, img_bgr: np.ndarray, pre_pad: int = 0, mod: int = 1) -> np.ndarray:
    """The model on the whole image, upstream's conversions, written independently of Reference."""
    x = torch.from_numpy(img_bgr[..., ::-1].astype(np.float32).transpose(2, 0, 1).copy() / 255.0)[None]
    h, w = x.shape[2:]
    ph = pre_pad + (-(h + pre_pad)) % mod
    pw = pre_pad + (-(w + pre_pad)) % mod
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), "reflect")
    with torch.no_grad():
        y = model(x)
    s = y.shape[2] // x.shape[2]
    y = y[:, :, : h * s, : w * s].clamp(0, 1)[0].numpy().transpose(1, 2, 0)[..., ::-1]
    return np.round(y * 255.0).astype(np.uint8)


def _check(name: str, out: np.ndarray, ref: np.ndarray, tol: int) -> None:
    assert out.shape == ref.shape, f"{name}: shape {out.shape} != {ref.shape}"
    diff = np.abs(out.astype(np.int32) - ref.astype(np.int32))
    worst = np.unravel_index(int(diff.argmax()), diff.shape)
    assert diff.max() <= tol, f"{name}: max abs {diff.max()} levels > {tol} at {worst}"


def test_reference_whole_and_tiled_match_the_model(tiny_generator, rgb_image):
    model = tiny_generator("SRVGGNetCompact")
    img = rgb_image(20, 27)
    want = _direct(model, img)
    out, mode = Reference(model, 4, tile=0, pre_pad=0).enhance(img)
    assert mode == "RGB" and out.dtype == np.uint8
    _check("whole", out, want, TOL_LEVELS["whole"])
    radius = 2 + 2  # tiny SRVGG: num_conv 2 -> radius num_conv + 2
    ref = Reference(model, 4, tile=8, tile_pad=radius, pre_pad=0)
    tiled, _ = ref.enhance(img)
    _check("tiled", tiled, want, TOL_LEVELS["tiled_pad_ge_radius"])
    assert ref.model_calls == 3 * 4, "one forward per tile, one tile at a time"
    assert ref.model_pixels > 20 * 27, "tiles carry their context"


def test_reference_pre_pad_and_mod_pad_for_scale_2(tiny_generator, rgb_image):
    model = tiny_generator("RRDBNet", scale=2)
    img = rgb_image(13, 15)
    out, _ = Reference(model, 2, tile=0, pre_pad=3).enhance(img)
    assert out.shape == (26, 30, 3)
    _check("scale-2 pre/mod pad", out, _direct(model, img, pre_pad=3, mod=2), TOL_LEVELS["whole"])


def test_reference_modes_and_16_bit(tiny_generator, rgb_image):
    model = tiny_generator("SRVGGNetCompact")
    gray, mode = Reference(model, 4, pre_pad=0).enhance(rgb_image(9, 11, channels=1))
    assert mode == "L" and gray.shape == (36, 44)
    rgba = np.dstack([rgb_image(9, 11), np.full((9, 11), 200, np.uint8)])
    out, mode = Reference(model, 4, pre_pad=0).enhance(rgba, alpha_upsampler="bicubic")
    assert mode == "RGBA" and out.shape == (36, 44, 4)
    deep, _ = Reference(model, 4, pre_pad=0).enhance(rgb_image(9, 11, dtype=np.uint16))
    assert deep.dtype == np.uint16


def test_reference_folder_writes_one_png_per_input(tiny_generator, rgb_image, tmp_path):
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"im{i}.png"), rgb_image(8, 10, seed=i))
    written = reference_folder(Reference(tiny_generator("SRVGGNetCompact"), 4, pre_pad=0),
                               sorted(src.glob("*.png")), tmp_path / "out")
    assert [p.name for p in written] == ["im0_out.png", "im1_out.png"]
    assert cv2.imread(str(written[0])).shape == (32, 40, 3)


# --------------------------------------------------------------------------- report
def _fake() -> dict:
    models = [{"name": "M", "arch": "SRVGGNetCompact", "hparams": {"num_conv": 32, "num_feat": 64},
               "flops_per_pixel": 1e6, "onnx_bytes": 2_000_000, "weights_note": "random"}]
    res = [
        {"id": "-/probe/-", "model": "-", "path": "probe", "input": "-", "seconds": 1.0, "peak_gflops": 100.0,
         "torch_gflops": 100.0, "numpy_gflops": 80.0, "conv_gemm_gflops": 60.0, "n": 64, "threads": 2,
         "rss_peak_mb": 50},
        {"id": "M/ref-t0/photo", "model": "M", "path": "ref-t0", "input": "photo", "seconds": 2.0,
         "model_seconds": 1.9, "megapixels": 0.1, "executed_pixels": 100000, "rss_peak_mb": 300},
        {"id": "M/ref-tiled/photo", "model": "M", "path": "ref-tiled", "input": "photo", "seconds": 3.0,
         "model_seconds": 2.9, "megapixels": 0.1, "executed_pixels": 120000, "rss_peak_mb": 300,
         "max_abs_vs_ref": 1.0},
        {"id": "M/ort-tiled/photo", "model": "M", "path": "ort-tiled", "input": "photo", "seconds": 1.5,
         "model_seconds": 1.4, "megapixels": 0.1, "executed_pixels": 120000, "rss_peak_mb": 100,
         "max_abs_vs_ref": 0.0},
        {"id": "M/ort-fp16/photo", "model": "M", "path": "ort-fp16", "input": "photo", "error": "boom",
         "rss_peak_mb": 90},
        {"id": "M/ort-folder-model/folder", "model": "M", "path": "ort-folder-model", "input": "folder",
         "seconds": 1.0, "model_seconds": 1.0, "megapixels": 0.1, "images": 16, "rss_peak_mb": 90},
        {"id": "M/cli-startup/tiny", "model": "M", "path": "cli-startup", "input": "tiny", "seconds": 0.5,
         "rss_peak_mb": 80},
        {"id": "M/cli-folder/folder#0", "model": "M", "path": "cli-folder", "input": "folder", "seconds": 1.6,
         "megapixels": 0.1, "images": 16, "rss_peak_mb": 95},
        {"id": "M/cli-folder/folder#1", "model": "M", "path": "cli-folder", "input": "folder", "seconds": 1.8,
         "megapixels": 0.1, "images": 16, "rss_peak_mb": 97},
        {"id": "M/ref-folder/folder#0", "model": "M", "path": "ref-folder", "input": "folder", "seconds": 6.0,
         "startup_s": 2.0, "megapixels": 0.1, "images": 16, "rss_peak_mb": 310},
        {"id": "M/pipeline/folder", "model": "M", "path": "pipeline", "input": "folder", "seconds": 2.0,
         "model_seconds": 1.8, "megapixels": 0.1, "images": 16, "rss_peak_mb": 99},
        {"id": "M/rss-cli/big", "model": "M", "path": "rss-cli", "input": "big", "seconds": 9.0,
         "megapixels": 3.0, "rss_peak_mb": 250},
    ]
    meta = {"date_utc": "2026-01-01T00:00:00Z", "quick": True, "threads": 2, "total_s": 12,
            "cpu": {"model": "Test CPU", "logical_cpus": 2, "flags": ["avx2"]}, "versions": {"torch": "x"},
            "tier": {"big": [100, 50], "srvgg_photo": [64, 48], "folder_grid": 4}, "models": models,
            "load_before": [0.1], "load_after": [0.2], "tile_pad": 10, "batch": 4, "pre_pad": 0}
    return {"meta": meta, "results": res}


def test_report_renders_ratios_targets_and_failures():
    md = report.render_markdown(_fake(), plot_name=None)
    assert "Test CPU" in md and "100 GFLOP/s" in md
    line = next(s for s in md.splitlines() if s.startswith("| M | sr-run ORT fp32, tiled |"))
    cells = [c.strip() for c in line.split("|")]
    assert cells[5:7] == ["1.33", "2.00"], cells  # 2.0/1.5 and 3.0/1.5
    assert "failed: boom" in md
    folder = next(s for s in md.splitlines() if s.startswith("| M | sr-run CLI (cold) |"))
    assert "| 1.70 |" in folder  # the median of the two cold runs
    assert "peak RSS, 100×50" in md and "**no**" in md  # 250 MB > 1.3 x 0.24 MB + 2 MB
    target = next(s for s in md.splitlines() if "folder throughput vs pure model" in s)
    assert "90.0%" in target and "**no**" in target  # 1.8 s of 2.0 s < 95%


def test_write_report_with_and_without_matplotlib(tmp_path, monkeypatch):
    p = tmp_path / "bench.json"
    p.write_text(json.dumps(_fake()))
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    written = report.write_report(p)
    assert [w.name for w in written] == ["bench.md"]
    assert "bench.png" not in (tmp_path / "bench.md").read_text()
    monkeypatch.delitem(sys.modules, "matplotlib")
    pytest.importorskip("matplotlib")
    written = report.write_report(p)
    assert (tmp_path / "bench.png").stat().st_size > 1000
    assert "![" in (tmp_path / "bench.md").read_text()


# --------------------------------------------------------------------------- run helpers
def test_plan_has_unique_ids_and_the_listed_paths(tmp_path):
    specs = [run.ModelSpec(**{**s.__dict__, "onnx": "m.onnx", "onnx_fp16": "m16.onnx", "weights": "m.pt"})
             for s in run.model_specs(run.QUICK, None)]
    inputs = {"photo": {f"{s.photo[0]}x{s.photo[1]}": "p.png" for s in specs},
              "folder": {f"{s.photo[0]}x{s.photo[1]}": "f" for s in specs},
              "photos": {f"{s.photo[0]}x{s.photo[1]}": "ph" for s in specs}, "big": "b.png", "tiny": "t.png"}
    jobs = run.plan_jobs(specs, inputs, run.QUICK, tmp_path, 2, with_rss=True, with_profile=True)
    ids = [j.id for j in jobs]
    assert len(ids) == len(set(ids))
    paths = {j.path for j in jobs}
    assert {"ref-t0", "ref-tiled", "ort-whole", "ort-tiled", "ort-batched", "ort-fp16", "ref-folder",
            "cli-folder", "rss-cli", "probe", "ref-photos-tiled", "cli-photos-tiled", "cli-photos-default"} <= paths
    if importlib.util.find_spec("openvino") is not None:
        assert {"ov-whole", "ov-tiled", "ov-batched", "vsmlrt-whole", "vsmlrt-tiled"} <= paths
    cli = next(j for j in jobs if j.worker == "cli")
    assert "--model" in cli.args["argv"] and "--threads" in cli.args["argv"]


def test_cli_jobs_rerun_into_an_existing_single_file(tmp_path):
    """A second ``make bench`` writes the same single-file outputs again: sr-run must be told --overwrite."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    import cv2
    from click.testing import CliRunner

    from sr_runtime.cli import main
    from tests.corpus.models import TINY_ONNX

    img = tmp_path / "t.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    out = tmp_path / "o.png"
    argv = run.cli_argv(str(img), str(out), str(TINY_ONNX), 0, 4, 1, 1)
    for _ in range(2):
        res = CliRunner().invoke(main, [*argv, "-q"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
    assert out.is_file()


def test_vsmlrt_peer_tiles_like_vsov_and_matches_ours():
    """The peer's tiled output equals its whole-image output where overlap >= radius, and ours."""
    if importlib.util.find_spec("openvino") is None:  # not imported here: the backend imports it its own way
        pytest.skip("the openvino extra is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from benchmarks.peers import VsMlrtOv
    from sr_runtime.api import Upscaler
    from tests.corpus.models import TINY_ONNX as path
    img = np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    whole = VsMlrtOv(path, img.shape[:2], 4, threads=1).enhance(img)
    peer = VsMlrtOv(path, img.shape[:2], 4, tile=12, overlap=6, threads=1)
    tiled = peer.enhance(img)
    assert peer.model_calls == 2 * 3 and peer.model_pixels == 2 * 3 * 24 * 24  # rows at 0, 6; columns 0, 12, 17
    ours = Upscaler(str(path), tile=0, pre_pad=0, backend="ort").enhance(img)[0]
    assert np.abs(tiled.astype(int) - whole).max() <= 1 and np.abs(whole.astype(int) - ours).max() <= 1


def test_synthetic_photo_is_deterministic():
    a, b = run._structured_image(40, 30), run._structured_image(40, 30)
    assert a.shape == (30, 40, 3) and a.dtype == np.uint8 and np.array_equal(a, b) and a.std() > 10


# gpu.py: tests/test_gpu_check.py


# --------------------------------------------------------------------------- exporters.py
def test_exporters_table_on_a_tiny_model(monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    from benchmarks import exporters

    monkeypatch.setattr(exporters, "MODELS", {"tiny": ("SRVGGNetCompact", {"num_feat": 4, "num_conv": 1})})
    monkeypatch.setattr(exporters, "EXPORTERS", ("torchscript",))
    exporters.main(["--size", "8", "--runs", "1", "--threads", "1", "--out", str(tmp_path)])
    md = (tmp_path / "exporters.md").read_text().splitlines()
    row = next(s for s in md if s.startswith("| tiny | torchscript |"))
    assert float(row.split("|")[-2]) < 1e-5  # max abs vs torch


def test_bigimage_report_and_giant_tiles(tmp_path, monkeypatch):
    """benchmarks/bigimage.py: the report renders (also a refused job; the table without matplotlib), the giant
    input's tiles cover the image."""
    import numpy as np

    from benchmarks import bigimage

    monkeypatch.setitem(sys.modules, "matplotlib", None)

    row = {"section": "scaling", "input": "1 MP", "mode": "streamed", "model": "m", "megapixels": 1.0, "seconds": 2.0,
           "rss_mb": 300.0, "output_pixels_mb": 48.0, "output_file_mb": 20.0, "foreign_cpu_s": 0.1, "error": None}
    data = {"meta": {"date_utc": "2026-12-03", "cpu": {"model": "cpu", "logical_cpus": 2}, "threads": 2},
            "rows": [row, {**row, "mode": "whole", "error": "needs about 9 GiB"}]}
    written = bigimage.write_report(data, tmp_path)
    text = (tmp_path / "bigimage.md").read_text()
    assert "| 1 MP | streamed | m | 2.0 | 2.0 | 300 |" in text and "refused or failed: needs about 9 GiB" in text
    assert written[0] == tmp_path / "bigimage.md"
    base = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    tiles = list(bigimage._tiles_of(base, 9, 11, 4))
    assert len(tiles) == 3 * 3 and tiles[0].shape == (4, 4, 3) and tiles[-1].shape == (1, 3, 3)
    assert np.array_equal(tiles[0], base[:4, :4])


def test_int8_report_renders_quality_frontier_and_speed():
    from benchmarks.int8 import to_markdown

    q = {"psnr_y_fp32": 29.5, "psnr_y": 29.48, "d_psnr_y": -0.02, "psnr_vs_fp32": 44.4, "min_psnr_vs_fp32": 43.2,
         "max_levels": 49, "mean_levels": 0.99}
    report = {"meta": {"date_utc": "2026-12-03T00:00:00Z", "cpu": {"model": "cpu", "logical_cpus": 2, "flags": ["avx2"]},
                       "threads": 2, "load_before": [1], "load_after": [2], "rounds": 3, "speed_photos": 4},
              "models": [{"name": "m", "export_s": 12.0, "gate": {"psnr_db": 44.0}, "quality_ort": q,
                          "frontier": [{"recipe": "naive", **q}],
                          "speed": [{"backend": "ONNX Runtime", "precision": p, "best_s": t, "median_s": t,
                                     "worst_s": t, "input_mp_s": 0.1} for p, t in (("fp32", 3.0), ("int8", 1.0))]}]}
    md = to_markdown(report)
    assert "(**-0.020 dB**)" in md and "| naive | 44.40 | 49 |" in md and "| ONNX Runtime | int8 | 1.00 |" in md
    assert "3.00x" in md


def test_cold_folder_runs_interleave_and_keep_the_best_of_their_rounds():
    job = lambda m, p, i: run.Job(f"{m}/{p}/{i}", m, p, i, "cli", {})  # noqa: E731
    jobs = [job("-", "probe", "-"), job("A", "x", "photo"), job("A", "u", "photos"), job("A", "v", "photos"),
            job("B", "u", "photos")]
    order = [j.id for j in run.interleave_rounds(jobs, 2)]
    assert order == ["-/probe/-", "A/x/photo", "A/u/photos", "A/v/photos", "A/u/photos", "A/v/photos",
                     "B/u/photos", "B/u/photos"]
    res = lambda t, rss: {"seconds": t, "times": [t], "rss_peak_mb": rss, "foreign_cpu_s": 0.0}  # noqa: E731
    merged = run.add_round(run.add_round(res(5.0, 100), res(4.0, 120)), {"error": "killed"})
    assert merged["times"] == [5.0, 4.0] and merged["seconds"] == 4.0 and merged["rss_peak_mb"] == 120
