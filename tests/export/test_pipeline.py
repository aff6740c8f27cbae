"""Export as a library call (sr_export.export): the same files, parity reports and errors as sr-export, no click."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sr_export import ExportOptions, ExportResult, ParityError, export
from sr_export.pipeline import plan
from sr_runtime.errors import ModelFileError, SrError
from tests.export.conftest import tiny_checkpoint


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_export_with_parity_returns_what_it_wrote(tmp_path):
    from sr_runtime.info import read_onnx_info

    ckpt = tiny_checkpoint(tmp_path)
    (tmp_path / "out").mkdir()
    lines: list[str] = []
    result = export(ckpt, ExportOptions(output=tmp_path / "out"), say=lines.append)  # a folder
    assert isinstance(result, ExportResult)
    assert result.onnx == tmp_path / "out" / "tiny.onnx" and result.written == (result.onnx,)
    assert result.engine is None and result.sidecar is None and result.triton_entry is None
    assert _files(tmp_path / "out") == ["tiny.onnx"]
    assert result.info == read_onnx_info(result.onnx)
    assert result.info.arch == "SRVGGNetCompact" and result.info.precision == "float32"
    assert [r.name.split()[:3] for r in result.parity] == [["ort", "float32", "test"], ["ort", "float32", "random"]]
    assert all(r.passed for r in result.parity)
    # the progress lines are the CLI's, through the callback
    assert lines[0] == f"loading {ckpt}" and lines[1].startswith("  SRVGGNetCompact x4 {")
    assert lines[2].startswith("exported ONNX (torchscript, opset 17) in ")
    assert lines[3:] == [f"  parity {r.line()}" for r in result.parity]


def test_fp16_dni_and_triton(tmp_path):
    a = tiny_checkpoint(tmp_path, name="a.pth")
    b = tiny_checkpoint(tmp_path, "SRVGGNetCompact", "b.pth", num_conv=2)
    opts = ExportOptions(output=tmp_path / "m.onnx", dni=b, dni_weight=0.25, fp16=True, triton_repo=tmp_path / "repo")
    result = export(a, opts, say=lambda _: None)
    entry = tmp_path / "repo" / "a_dni0.25_fp16"
    assert result.triton_entry == entry
    assert result.written == (tmp_path / "m.onnx", entry / "config.pbtxt", entry / "1" / "model.onnx")
    assert result.info.precision == "float16" and result.info.dni["weight"] == 0.25
    assert [r.name.split()[:2] for r in result.parity] == [["ort", "float16"]] * 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the temp folder is gone


def test_no_check_and_default_logger(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    ckpt = tiny_checkpoint(tmp_path)
    with caplog.at_level(logging.INFO, logger="sr_export"):
        result = export(ckpt, ExportOptions(check=False))
    assert result.onnx == tmp_path / "tiny.onnx" and result.parity == ()
    assert any(m.startswith("loading ") for m in caplog.messages)
    assert not any("parity" in m for m in caplog.messages)


def test_parity_failure_raises_with_reports_and_writes_nothing(tmp_path, monkeypatch):
    from sr_export import parity
    from sr_runtime.compare import Tol

    monkeypatch.setitem(parity.TOL, ("ort", "float32"), Tol(max_abs=-1.0, min_psnr=1e9))  # nothing can pass
    ckpt = tiny_checkpoint(tmp_path)
    with pytest.raises(ParityError, match="x.onnx fails the parity check") as err:
        export(ckpt, ExportOptions(output=tmp_path / "x.onnx"), say=lambda _: None)
    assert len(err.value.reports) == 2 and not any(r.passed for r in err.value.reports)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pth"]


@pytest.mark.parametrize(("options", "error", "needle"), [
    (ExportOptions(dni_weight=0.3), SrError, "--dni-weight needs --dni"),
    (ExportOptions(output="x.engine"), SrError, "must be an .onnx file or a folder"),
    (ExportOptions(output="junk.pth/x.onnx"), SrError, "is a file, not a folder"),  # a missing folder is made
    (ExportOptions(max_batch=0), SrError, "--max-batch must be >= 1"),
])
def test_plan_checks_options_before_anything_is_loaded(tmp_path, monkeypatch, options, error, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.pth").write_bytes(b"never read: the options are checked first")
    with pytest.raises(error, match=needle):
        plan(tmp_path / "junk.pth", options)
    with pytest.raises(ModelFileError, match="file not found"):
        plan(tmp_path / "nope.pth", ExportOptions())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pth"]

