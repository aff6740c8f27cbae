"""sr-export end to end on tiny checkpoints: outputs, metadata, DNI, and one-line errors that leave nothing."""

from __future__ import annotations

import json
import os
import sys

import pytest
from click.testing import CliRunner

from sr_export.cli import main
from tests.export.conftest import tiny_checkpoint as _ckpt


def _run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, *needles):
    assert result.exit_code != 0, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in result.output, err
    for n in needles:
        assert n in err, err
    return err


def _no_leftovers(folder, allowed=()):
    left = sorted(p.name for p in folder.iterdir() if p.name not in allowed)
    assert left == [], left


def test_export_default_output_and_metadata(tmp_path, monkeypatch):
    from sr_runtime.info import read_onnx_info
    from sr_train.checkpoint import file_sha256

    ckpt = _ckpt(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.chdir(out)
    r = _run([ckpt])
    assert r.exit_code == 0, r.output + r.stderr
    assert "parity ort float32 test image" in r.stdout and "PASS" in r.stdout and "wrote" in r.stdout
    assert "done in" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["tiny.onnx"]
    info = read_onnx_info(out / "tiny.onnx")
    assert info.arch == "SRVGGNetCompact" and info.scale == 4 and info.source_sha256 == file_sha256(ckpt)
    assert info.dni is None and info.name == "tiny"
    assert (out / "tiny.onnx").stat().st_mode & 0o077 != 0  # not mkstemp's private 0o600


def test_fp16_trt_rtx_and_triton(tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="the [trt-rtx] extra is not installed")
    from sr_runtime.info import read_onnx_info

    ckpt = _ckpt(tmp_path, "RRDBNet", "rrdb.safetensors")
    r = _run([ckpt, "-o", tmp_path / "m.onnx", "--fp16", "--trt", "--trt-flavor", "rtx", "--tile", "32",
              "--tile-pad", "4", "--max-batch", "2", "--workspace", "128"])
    assert r.exit_code == 0, r.output + r.stderr
    assert "parity ort float16" in r.stdout and "parity trt: skipped, no CUDA device" in r.stdout
    assert read_onnx_info(tmp_path / "m.onnx").precision == "float16"
    side = json.loads((tmp_path / "m.engine.json").read_text())
    assert side["flavor"] == "rtx" and side["precision"] == "float16" and side["workspace_mib"] == 128
    assert side["profile"] == {"min": [1, 3, 1, 1], "opt": [2, 3, 40, 40], "max": [2, 3, 40, 40]}
    assert (tmp_path / "m.engine").stat().st_size > 10_000
    # Triton with the ONNX (a TensorRT-RTX engine cannot be served by Triton)
    r = _run([ckpt, "-o", tmp_path / "t.onnx", "--triton", tmp_path / "repo", "--no-check"])
    assert r.exit_code == 0, r.output + r.stderr
    assert (tmp_path / "repo" / "rrdb" / "config.pbtxt").is_file()
    assert (tmp_path / "repo" / "rrdb" / "1" / "model.onnx").is_file()
    r = _run([ckpt, "-o", tmp_path / "u.onnx", "--trt", "--trt-flavor", "rtx", "--triton", tmp_path / "repo2"])
    _one_line_error(r, "not TensorRT-RTX", "--trt-flavor tensorrt")
    assert not (tmp_path / "u.onnx").exists() and not (tmp_path / "repo2").exists()


def test_dni_metadata(tmp_path):
    from sr_runtime.info import read_onnx_info
    from sr_train.checkpoint import file_sha256

    a = _ckpt(tmp_path, name="general.pth")
    b = _ckpt(tmp_path, "SRVGGNetCompact", "wdn.pth", num_conv=2)  # same shapes, other weights
    r = _run([a, "--dni", b, "--dni-weight", "0.7", "-o", tmp_path / "blend.onnx"])
    assert r.exit_code == 0, r.output + r.stderr
    info = read_onnx_info(tmp_path / "blend.onnx")
    assert info.dni == {"sources": [file_sha256(a), file_sha256(b)], "names": ["general.pth", "wdn.pth"],
                        "weight": 0.7}


def test_help_explains_denoise_strength():
    r = _run(["--help"])
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "--dni realesr-general-wdn-x4v3.pth --dni-weight 0.7" in text and "denoise strength" in text
    for flag in ("--fp16", "--trt", "--trt-flavor", "--tile", "--tile-pad", "--max-batch", "--opset", "--triton",
                 "--no-check", "--debug"):
        assert flag in r.output


# ------------------------------------------------------------------------------------------- bad input
def test_unknown_file(tmp_path):
    _one_line_error(_run([tmp_path / "nope.pth", "-o", tmp_path / "x.onnx"]), "nope.pth", "file not found")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    _one_line_error(_run([junk, "-o", tmp_path / "x.onnx"]), "junk.pth")
    _no_leftovers(tmp_path, {"junk.pth"})


def test_dni_of_two_architectures(tmp_path):
    a = _ckpt(tmp_path, name="a.pth")
    b = _ckpt(tmp_path, "RRDBNet", "b.pth")
    err = _one_line_error(_run([a, "--dni", b, "-o", tmp_path / "x.onnx"]), "b.pth", "SRVGGNetCompact",
                          "RRDBNet", "key 'body.0.weight'")
    assert "same architecture" in err
    _no_leftovers(tmp_path, {"a.pth", "b.pth"})


def test_dni_of_two_shapes(tmp_path):
    a = _ckpt(tmp_path, name="a.pth")
    b = _ckpt(tmp_path, "SRVGGNetCompact", "b.pth", num_feat=16)
    _one_line_error(_run([a, "--dni", b, "-o", tmp_path / "x.onnx"]), "b.pth", "key 'body.0.weight'", "shape")
    _no_leftovers(tmp_path, {"a.pth", "b.pth"})


def test_dni_weight_without_dni(tmp_path):
    _one_line_error(_run([_ckpt(tmp_path), "--dni-weight", "0.3"]), "--dni-weight needs --dni")


def test_output_in_missing_folder(tmp_path):
    """Issue 18 row 'sr-export -o missing/dir/x.onnx': the folders are created, as sr-run creates OUT."""
    ckpt = _ckpt(tmp_path)
    r = _run([ckpt, "-o", tmp_path / "missing" / "dir" / "x.onnx"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "missing" / "dir").iterdir()) == ["x.onnx"]


def test_output_under_a_regular_file(tmp_path):
    ckpt = _ckpt(tmp_path)
    (tmp_path / "file").write_text("x")
    _one_line_error(_run([ckpt, "-o", tmp_path / "file" / "x.onnx"]), "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits (the regular-file case covers it)")
def test_output_in_read_only_folder(tmp_path):
    ckpt = _ckpt(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _one_line_error(_run([ckpt, "-o", ro / "x.onnx"]), "not writable")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_bad_output_suffix(tmp_path):
    _one_line_error(_run([_ckpt(tmp_path), "-o", tmp_path / "x.engine"]), "must be an .onnx file or a folder")


def test_trt_without_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    r = _run([_ckpt(tmp_path), "--trt", "-o", tmp_path / "x.onnx"])
    assert r.exit_code == 1
    assert r.stderr == "error: --trt needs the [trt] or [trt-rtx] extra\n"
    _no_leftovers(tmp_path, {"tiny.pth"})


def test_bad_profile_flags(tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="the [trt-rtx] extra is not installed")
    _one_line_error(_run([_ckpt(tmp_path), "--trt", "--tile", "0", "-o", tmp_path / "x.onnx"]), "--tile")
    _no_leftovers(tmp_path, {"tiny.pth"})


def test_parity_failure_writes_nothing(tmp_path, monkeypatch):
    from sr_export import parity
    from sr_runtime.compare import Tol

    monkeypatch.setitem(parity.TOL, ("ort", "float32"), Tol(max_abs=-1.0, min_psnr=1e9))  # nothing can pass
    ckpt = _ckpt(tmp_path)
    r = _run([ckpt, "-o", tmp_path / "x.onnx", "--triton", tmp_path / "repo"])
    err = _one_line_error(r, "x.onnx", "fails the parity check", "max_abs=", "psnr=", "Nothing was written")
    assert "FAIL" in r.stdout
    assert err.count("error:") == 1
    _no_leftovers(tmp_path, {"tiny.pth"})
    # --no-check skips it
    assert _run([ckpt, "-o", tmp_path / "x.onnx", "--no-check"]).exit_code == 0
    assert (tmp_path / "x.onnx").is_file()
