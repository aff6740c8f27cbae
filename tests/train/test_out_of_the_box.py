"""Issue 18 row 'sr-train --config tiny_cpu': it runs as it is, on the images shipped beside the config, and its
checkpoint goes through sr-export and sr-run (``make train-demo`` does the same with more iterations)."""

from __future__ import annotations

import cv2
import pytest
from click.testing import CliRunner

from sr_train.config import CONFIG_DIR, from_yaml

pytest.importorskip("torch")


def test_tiny_cpu_finds_its_shipped_images(tmp_path, monkeypatch):
    """Relative dataset paths stay relative to the current folder (upstream's rule) when they exist there;
    otherwise a folder beside the config is taken."""
    monkeypatch.chdir(tmp_path)
    assert from_yaml("tiny_cpu").datasets.train.dataroot_gt == str(CONFIG_DIR / "tiny_gt")
    assert len(list((CONFIG_DIR / "tiny_gt").glob("*.png"))) == 4
    (tmp_path / "tiny_gt").mkdir()
    assert from_yaml("tiny_cpu").datasets.train.dataroot_gt == "tiny_gt"


def test_tiny_cpu_trains_exports_and_runs(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from sr_export.cli import main as export_main
    from sr_runtime.cli import main as run_main
    from sr_train.cli import main as train_main

    monkeypatch.chdir(tmp_path)  # no datasets/ here: the shipped crops must be found
    r = CliRunner().invoke(train_main, ["--config", "tiny_cpu", "--output", "run", "--no-progress"])
    assert r.exit_code == 0, r.output
    ckpt = tmp_path / "run" / "models" / "net_g_latest.pth"
    assert ckpt.is_file() and "done: 4 iterations" in r.stdout
    r = CliRunner().invoke(export_main, [str(ckpt), "-o", "tiny.onnx"])
    assert r.exit_code == 0 and "PASS" in r.stdout, r.output
    crop = CONFIG_DIR / "tiny_gt" / "chelsea_0.png"
    r = CliRunner().invoke(run_main, [str(crop), "x4.png", "-m", "tiny.onnx", "-q"])
    assert r.exit_code == 0, r.output
    assert cv2.imread("x4.png").shape == (256, 256, 3)
