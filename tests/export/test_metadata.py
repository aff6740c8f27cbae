"""sr-export --metadata (issue 18, row 'ran an ONNX not made by sr-export'): a foreign ONNX gets sr-deploy metadata
in a checked copy; sr-export on a runtime-only install names the extra."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from sr_export.cli import main

pytest.importorskip("onnxruntime")


def _run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """``foreign(case, names=True)``: the tiny model exported as upstream's pytorch2onnx.py does (plain
    torch.onnx.export, dynamic axes, no metadata); ``names=False`` renames every initializer, as other tools do."""
    torch = pytest.importorskip("torch")
    import onnx

    from tests.export.conftest import build_tiny

    root = tmp_path_factory.mktemp("foreign")

    def make(case: str = "SRVGGNetCompact", names: bool = True):
        path = root / f"{case}_{names}.onnx"
        if not path.exists():
            model = build_tiny(case)[0]
            axes = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}}
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(model, torch.rand(1, 3, 16, 16), str(path), opset_version=11, input_names=["input"],
                                  output_names=["output"], dynamic_axes=axes, dynamo=False)
            if not names:
                proto = onnx.load(str(path))
                renamed = {i.name: f"w{k}" for k, i in enumerate(proto.graph.initializer)}
                for i in proto.graph.initializer:
                    i.name = renamed[i.name]
                for node in proto.graph.node:
                    node.input[:] = [renamed.get(x, x) for x in node.input]
                onnx.save(proto, str(path))
        return path

    return make


@pytest.mark.parametrize("case", ["SRVGGNetCompact", "RRDBNet-x2"])
def test_metadata_copy_is_checked_and_complete(foreign, tmp_path, case):
    """The copy carries the architecture and hyperparameters read from the initializer names and the exact
    receptive radius; the original is untouched; parity with it is reported; sr-run --info says the pad."""
    from sr_runtime.cli import main as run_main
    from sr_runtime.info import read_onnx_info, read_onnx_metadata
    from tests.export.conftest import build_tiny

    src = foreign(case)
    before = src.read_bytes()
    out = tmp_path / "sub" / "copy.onnx"
    r = _run(["--metadata", src, "-o", out])
    assert r.exit_code == 0, r.output
    assert "from its initializer names" in r.stdout and r.stdout.count("copy vs original") == 2
    assert "PASS" in r.stdout and f"wrote {out}" in r.stdout
    _, spec, hparams = build_tiny(case)
    info = read_onnx_info(out)
    assert (info.arch, info.scale, info.hparams) == (spec.id, spec.scale(hparams), hparams)
    assert info.receptive_radius == spec.receptive_radius(hparams)
    assert info.size_multiple == spec.size_multiple(hparams) and info.extra["metadata_from"]["file"] == src.name
    assert src.read_bytes() == before and read_onnx_metadata(src) == {}
    r = CliRunner().invoke(run_main, ["--info", str(out)])
    assert f"safe --tile-pad: >= {info.receptive_radius}" in r.stdout


def test_metadata_without_names_measures_the_radius(foreign, tmp_path, monkeypatch):
    """Initializers renamed: no architecture, the radius measured from a one-pixel change (exact here);
    the default output is ./<stem>_sr.onnx."""
    from sr_runtime.info import read_onnx_info

    src = foreign("SRVGGNetCompact", names=False)
    monkeypatch.chdir(tmp_path)
    r = _run(["--metadata", src, "--scale", "4"])
    assert r.exit_code == 0, r.output
    info = read_onnx_info(tmp_path / f"{src.stem}_sr.onnx")
    assert (info.arch, info.scale, info.receptive_radius) == ("unknown", 4, 2 + 2)  # num_conv 2 -> radius 4
    assert "probed and measured" in r.stdout


def test_metadata_refusals(foreign, tmp_path):
    """One line each: a wrong --scale, a file that already has metadata, an .onnx without --metadata, flags that
    need a checkpoint, a classifier."""
    from tests.runtime.test_upstream import _classifier

    src = foreign()
    cases = [
        (["--metadata", src, "--scale", "2", "-o", tmp_path / "a.onnx"], "--scale 2 was given, but the model upscales x4"),
        ([src, "-o", tmp_path / "b.onnx"], "this is an ONNX, not a checkpoint. sr-export --metadata"),
        (["--metadata", src, "--fp16", "-o", tmp_path / "c.onnx"], "--fp16 needs a checkpoint"),
        (["--metadata", _classifier(tmp_path / "cls.onnx"), "-o", tmp_path / "d.onnx"],
         "not an image super-resolution model"),
    ]
    assert _run(["--metadata", src, "-o", tmp_path / "ok.onnx"]).exit_code == 0
    cases.append((["--metadata", tmp_path / "ok.onnx", "-o", tmp_path / "e.onnx"], "already carries sr-deploy metadata"))
    for args, needle in cases:
        r = _run(args)
        err = r.stderr.strip()
        assert r.exit_code == 1 and err.startswith("error: ") and "\n" not in err and needle in err, (args, err)
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["cls.onnx", "ok.onnx"]


def test_metadata_parity_failure_writes_nothing(foreign, tmp_path, monkeypatch):
    """A copy that would not run like the original is not kept (the check is real, not assumed)."""
    from sr_export import metadata
    from sr_runtime.backends.ort import OrtBackend

    real = OrtBackend.run

    def run(self, x):
        y = real(self, x)
        return y + np.float32(0.01) if self.path.name == "model.onnx" else y  # the staged copy only

    monkeypatch.setattr(OrtBackend, "run", run)
    r = _run(["--metadata", foreign(), "-o", tmp_path / "x.onnx"])
    assert r.exit_code == 1 and "differs from the original" in r.stderr
    assert list(tmp_path.iterdir()) == [] and metadata.METADATA_SUFFIX == "_sr"


def test_sr_export_without_torch_names_the_extra(tmp_path):
    """Issue 18 row 'sr-export x.pth on a runtime-only install': torch made unimportable, one line."""
    from tests.torchless import run_blocked

    pth = tmp_path / "x.pth"
    pth.write_bytes(b"PK\x03\x04")
    r = run_blocked(tmp_path, "sr_export.cli", ["sr-export", pth, "-o", f"{tmp_path / 'out'}/"])
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip() == "error: sr-export needs the 'torch' module. Install it with: pip install 'sr-deploy[export]'"
