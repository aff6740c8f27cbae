"""sr-run CLI (CliRunner): exit codes, one-line stderr without traceback, no partial output after failures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sr_runtime import api
from sr_runtime.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result) -> str:
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("note:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_pth_model_message(image_files, tmp_path):
    """A .pth that is no checkpoint: one line before torch is even imported (a real one is exported: see
    test_upstream.py)."""
    pth = tmp_path / "model.pth"
    pth.write_bytes(b"PK")
    r = invoke(image_files["rgb"], tmp_path / "o", "--model", pth)
    assert r.exit_code == 1
    assert one_error_line(r).startswith(f"error: {pth}: not a PyTorch checkpoint")
    assert not (tmp_path / "o").exists()


def test_no_default_model(image_files, tmp_path, monkeypatch):
    monkeypatch.setattr(api, "DEFAULT_MODEL", tmp_path / "default.onnx")
    r = invoke(image_files["rgb"], tmp_path / "o")
    assert r.exit_code == 1 and "no default model is shipped yet" in one_error_line(r)


def test_usage_and_bad_tile(image_files, tmp_path):
    assert invoke().exit_code == 2
    r = invoke(image_files["rgb"], tmp_path / "o", "--tile", "big", "--model", tmp_path / "m.onnx")
    assert r.exit_code == 1 and "bad --tile 'big'" in one_error_line(r)


def test_corrupt_model(image_files, tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not an onnx file at all")
    r = invoke(image_files["rgb"], tmp_path / "o", "--model", bad)
    assert r.exit_code == 1 and str(bad) in one_error_line(r)
    r = invoke("--info", bad)
    assert r.exit_code == 1 and str(bad) in one_error_line(r)


class TestWithModel:
    @pytest.fixture(autouse=True)
    def _model(self, onnx_model):
        self.model = onnx_model("SRVGGNetCompact")

    def test_file_to_file(self, image_files, tmp_path):
        dst = tmp_path / "x" / "big.png"
        r = invoke(image_files["rgb16"], dst, "--model", self.model, "-s", "3.5", "--tile", "4", "--tile-pad", "4")
        assert r.exit_code == 0, r.output
        out = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
        assert out.shape == (28, 28, 3) and out.dtype == np.uint16
        assert "done 1, failed 0, skipped 0" in r.stdout

    def test_folder_with_a_bad_file(self, image_files, tmp_path):
        out = tmp_path / "out"
        r = invoke(image_files["rgb"].parent, out, "--model", self.model, "--backend", "ort", "--threads", "1")
        assert r.exit_code == 1
        assert one_error_line(r).startswith(f"error: {image_files['corrupt']}: cannot decode")
        names = sorted(p.name for p in out.iterdir())
        assert names == ["dark16_out.png", "gray_out.png", "photo_out.jpg", "rgb16_out.png", "rgb_out.png",
                         "rgba_out.png"]
        gray = cv2.imread(str(out / "gray_out.png"), cv2.IMREAD_UNCHANGED)
        assert gray.shape == (36, 44)
        rgba = cv2.imread(str(out / "rgba_out.png"), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == (48, 40, 4)
        dark = cv2.imread(str(out / "dark16_out.png"), cv2.IMREAD_UNCHANGED)
        assert dark.dtype == np.uint16
        assert "done 6, failed 1, skipped 0" in r.stdout

    def test_glob_ext_suffix_skip_quiet(self, image_files, tmp_path):
        out = tmp_path / "o"
        args = (str(image_files["rgb"].parent / "rgb*.png"), out, "--model", self.model, "--ext", "jpg",
                "--suffix", "", "-q")
        r = invoke(*args)
        assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
        # explicit --ext jpg is honoured for rgba.png too (composited onto white with a note; auto keeps png)
        assert sorted(p.name for p in out.iterdir()) == ["rgb.jpg", "rgb16.jpg", "rgba.jpg"]
        r = invoke(*args, "--skip-existing")
        assert r.exit_code == 0
        r = invoke(*args[:-1], "--skip-existing")
        assert "skipped 3" in r.stdout

    def test_max_pixels(self, image_files, tmp_path):
        r = invoke(image_files["rgb"], tmp_path / "o", "--model", self.model, "--max-pixels", "10")
        assert r.exit_code == 1 and "--max-pixels 10" in one_error_line(r)
        assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())

    def test_ctrl_c_exit_130_no_partial(self, image_files, tmp_path, monkeypatch):
        calls = {"n": 0}
        real = api.Upscaler.enhance

        def enhance(self, *a, **k):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            return real(self, *a, **k)

        monkeypatch.setattr(api.Upscaler, "enhance", enhance)
        out = tmp_path / "o"
        r = invoke(str(image_files["rgb"].parent / "*16.png"), out, "--model", self.model)
        assert r.exit_code == 130
        assert "interrupted" in one_error_line(r)
        assert [p.name for p in out.iterdir()] == ["dark16_out.png"]  # the finished first file only

    def test_library_call_matches_the_cli(self, image_files, tmp_path):
        from sr_runtime.run import RunOptions, upscale_files

        res = upscale_files(image_files["rgb"], tmp_path / "lib", RunOptions(model=self.model, tile=8, quiet=True))
        assert (res.done, res.failed) == (1, 0) and res.outputs == (tmp_path / "lib" / "rgb_out.png",)
        r = invoke(image_files["rgb"], tmp_path / "cli", "--model", self.model, "--tile", "8", "-q")
        assert r.exit_code == 0
        assert (tmp_path / "cli" / "rgb_out.png").read_bytes() == res.outputs[0].read_bytes()

    def test_info(self):
        r = invoke("--info", self.model)
        assert r.exit_code == 0
        assert "arch: SRVGGNetCompact" in r.stdout and "scale: 4" in r.stdout
        assert "onnxruntime providers:" in r.stdout and "CPUExecutionProvider" in r.stdout

    def test_gpu_backend_unavailable(self, image_files, tmp_path):
        ort = pytest.importorskip("onnxruntime")

        if "CUDAExecutionProvider" in ort.get_available_providers():
            pytest.skip("this onnxruntime has CUDA")
        r = invoke(image_files["rgb"], tmp_path / "o", "--model", self.model, "--backend", "ort-cuda")
        assert r.exit_code == 1 and "sr-deploy[ort-gpu]" in one_error_line(r)

    def test_fp32_flag_uses_the_fp32_sibling(self, image_files, tmp_path, onnx_model):
        half = onnx_model("SRVGGNetCompact", "float16")
        assert half.name == "SRVGGNetCompact_fp16.onnx" and half.with_name("SRVGGNetCompact.onnx").is_file()
        r = invoke(image_files["rgb"], tmp_path / "o", "--model", half, "--fp32")
        assert r.exit_code == 0 and "--fp32: using" in r.stderr and "SRVGGNetCompact.onnx" in r.stderr
        r = invoke(image_files["rgb"], tmp_path / "o2", "--model", half, "--fp16")
        assert r.exit_code == 0 and ("CPUExecutionProvider" in r.stderr or " CPU (" in r.stderr)  # ORT or OpenVINO
