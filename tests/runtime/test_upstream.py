"""Issue 18: users of upstream inference_realesrgan.py / realesrgan-ncnn-vulkan at home.

One test (or a few) per row of the issue's table; the row is named in each docstring.
"""

from __future__ import annotations

import importlib.util
import warnings

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sr_runtime.cli import main
from sr_runtime.errors import ModelFileError, SrError
from sr_runtime.probe import NotSuperResolution, TensorSpec, measure_radius, probe_model, scale_from
from tests.runtime.conftest import build_torch

needs_ort = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error_lines(result) -> list[str]:
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("note:")]
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    return lines


# ------------------------------------------------------------------------------ foreign ONNX fixtures
@pytest.fixture(scope="session")
def plain_onnx(tmp_path_factory):
    """``plain_onnx(kind)``: the tiny SRVGGNetCompact exported as upstream's scripts/pytorch2onnx.py does:
    a plain ``torch.onnx.export`` of the net, no metadata; ``dynamic`` (dynamic_axes on batch, height, width)
    or ``fixed`` (1x3x32x32)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("plain")
    made: dict[str, object] = {}

    def get(kind: str = "dynamic"):
        if kind not in made:
            model = build_torch("SRVGGNetCompact")
            path = root / f"plain_{kind}.onnx"
            x = torch.rand(1, 3, 32, 32)
            axes = ({"input": {0: "batch_size", 2: "height", 3: "width"},
                     "output": {0: "batch_size", 2: "height", 3: "width"}} if kind == "dynamic" else None)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, as upstream uses it
                torch.onnx.export(model, x, str(path), opset_version=11, export_params=True, input_names=["input"],
                                  output_names=["output"], dynamic_axes=axes, dynamo=False)
            made[kind] = path
        return made[kind]

    return get


def _classifier(path, forged_x4: bool = False):
    """An ImageNet-style classifier graph: N x 3 x 224 x 224 -> N x 1000 (optionally with forged x4 metadata)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from sr_runtime.info import ModelInfo

    w = numpy_helper.from_array(np.full((1000, 3), 0.01, np.float32), "w")
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w"], ["output"], transB=1)]
    graph = helper.make_graph(nodes, "classifier",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1000])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if forged_x4:
        info = ModelInfo(arch="SRVGGNetCompact", scale=4, receptive_radius=18)
        for k, v in info.to_metadata_props().items():
            model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


# ------------------------------------------------------------------------------ row: a foreign ONNX
@needs_ort
def test_foreign_onnx_runs_like_the_exported_one(plain_onnx, onnx_model, image_files, tmp_path):
    """Row 'ran an ONNX not made by sr-export': a plain dynamic export runs (scale probed), and gives what the
    sr-export ONNX of the same net gives."""
    plain = plain_onnx("dynamic")
    for model, name in ((plain, "plain.png"), (onnx_model("SRVGGNetCompact"), "ours.png")):
        r = invoke(image_files["rgb"], tmp_path / name, "--model", model, "--tile", "0")
        assert r.exit_code == 0, r.output
    a = cv2.imread(str(tmp_path / "plain.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(tmp_path / "ours.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (48, 40, 3) and np.abs(a.astype(int) - b.astype(int)).max() <= 1
    r = invoke("--info", plain)
    assert r.exit_code == 0 and "scale: 4" in r.stdout and "no sr-deploy metadata" in r.stdout


@needs_ort
def test_foreign_fixed_shape_onnx_tiles_into_its_window(plain_onnx, onnx_model, rgb_image):
    """A static 1x3x32x32 export runs through windows of exactly its input shape: an image smaller than one
    window is padded up (edge pixels, so its borders differ from a whole-image run), a larger one is tiled
    with full windows of real context and equals the dynamic model's whole-image output (pad >= radius)."""
    from sr_runtime.api import Upscaler

    fixed = Upscaler(plain_onnx("fixed"), tile=0, tile_pad=4, pre_pad=0)
    assert fixed.backend.window_shapes == "fixed" and fixed.backend.max_shape == (1, 3, 32, 32)
    whole = Upscaler(onnx_model("SRVGGNetCompact"), tile=0, tile_pad=4, pre_pad=0)
    for h, w in ((9, 7), (50, 70), (32, 45)):
        img = rgb_image(h, w)
        a, b = fixed.enhance(img)[0], whole.enhance(img)[0]
        assert a.shape == b.shape == (4 * h, 4 * w, 3)
        if min(h, w) >= 32:
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_probe_scale_and_refusals():
    """The probe's rules without any engine: scale from shapes, refusals with one line."""
    assert scale_from((1, 3, 16, 24), (1, 3, 64, 96), "m.onnx") == 4
    assert scale_from((1, 3, 16, 24), (1, 3, 16, 24), "m.onnx") == 1
    for y in ((1, 3, 8, 12), (1, 3, 64, 48), (1, 1000), (1, 21, 64, 96)):
        with pytest.raises(NotSuperResolution) as err:
            scale_from((1, 3, 16, 24), y, "m.onnx")
        assert err.value.one_line().startswith("m.onnx: not a")
    inp = TensorSpec("input", (None, 3, None, None), "float32")
    out = TensorSpec("output", (None, 3, None, None), "float32")
    info = probe_model(lambda x: np.repeat(np.repeat(x, 2, 2), 2, 3), inp, out, "m.onnx")
    assert (info.scale, info.size_multiple, info.arch, info.extra["probed"]) == (2, 2, "unknown", True)
    with pytest.raises(SrError, match="--scale 4 was given, but the model upscales x2"):
        probe_model(lambda x: np.repeat(np.repeat(x, 2, 2), 2, 3), inp, out, "m.onnx", scale=4)


def test_measure_radius_of_a_known_model():
    """sr-export --metadata and --info measure a foreign model's receptive radius from a one-pixel change."""
    from sr_runtime.info import ModelInfo
    from tests.runtime.fakes import FakeModel

    for layers, m in ((3, 1), (2, 2)):
        fake = FakeModel(scale=2, layers=layers, m=m)
        info = ModelInfo(arch="unknown", scale=2, size_multiple=m)
        assert measure_radius(fake, info) == fake.radius
    wide = FakeModel(scale=2, layers=30)
    assert measure_radius(wide, ModelInfo(arch="unknown", scale=2), sides=(24,)) is None


@needs_ort
@pytest.mark.parametrize("forged", [False, True])
def test_classifier_refused_up_front(forged, image_files, tmp_path):
    """A classifier, with or without forged x4 metadata, is refused before any image with one line."""
    pytest.importorskip("onnx")
    model = _classifier(tmp_path / "classifier.onnx", forged_x4=forged)
    out = tmp_path / "out"
    r = invoke(image_files["rgb"].parent, out, "--model", model)
    assert r.exit_code == 1
    (line,) = error_lines(r)
    assert line.startswith(f"error: {model}: not an image super-resolution model: its output 'output' has shape "
                           "[?, 1000] (a classifier?)")
    assert not out.exists()


# ------------------------------------------------------------------------------ row: validate before inference
def test_bad_outscale_is_refused_before_the_model(image_files, tmp_path):
    """Row 'sr-run inputs out -s 0': one line before any model loads (the model path does not even exist)."""
    for bad in ("0", "-2", "nan"):
        r = invoke(image_files["rgb"].parent, tmp_path / "o", "-s", bad, "--model", tmp_path / "missing.onnx")
        assert r.exit_code == 1
        (line,) = error_lines(r)
        assert line.startswith(f"error: bad --outscale {bad.lstrip('-') if bad == 'nan' else bad}")
    assert not (tmp_path / "o").exists()


def test_several_inputs_and_a_file_out(image_files, tmp_path):
    """Row 'several inputs with OUT = one.png': an error, not a directory named one.png."""
    r = invoke(image_files["rgb"].parent, tmp_path / "one.png", "--model", tmp_path / "missing.onnx")
    assert r.exit_code == 1
    (line,) = error_lines(r)
    assert "OUT has a file suffix (.png), but IN has 7 files" in line and "Give a folder as OUT" in line
    assert not (tmp_path / "one.png").exists()


def test_existing_out_file_found_before_the_model(image_files, tmp_path, monkeypatch):
    """Row 'OUT is an existing file': refused before the model loads (folder input, or one input without
    --overwrite); --overwrite replaces it."""
    from sr_runtime import api

    def no_model(*a, **k):
        raise AssertionError("the model must not load")

    existing = tmp_path / "taken"
    existing.write_bytes(b"keep me")
    monkeypatch.setattr(api, "open_backend", no_model)
    r = invoke(image_files["rgb"].parent, existing)
    assert r.exit_code == 1 and "OUT is an existing file, but IN has 7 files" in error_lines(r)[0]
    png = tmp_path / "x.png"
    png.write_bytes(b"keep me too")
    r = invoke(image_files["rgb"], png)
    assert r.exit_code == 1
    assert error_lines(r) == [f"error: {png}: OUT exists. Pass --overwrite to replace it (or --skip-existing to "
                              "keep it)."]
    r = invoke(image_files["rgb"], tmp_path / "taken" / "sub" / "y.png")
    assert r.exit_code == 1 and f"{existing} is a file, not a folder" in error_lines(r)[0]
    assert existing.read_bytes() == b"keep me" and png.read_bytes() == b"keep me too"


@needs_ort
def test_overwrite_replaces_an_existing_out_file(image_files, onnx_model, tmp_path):
    png = tmp_path / "x.png"
    png.write_bytes(b"old")
    r = invoke(image_files["rgb"], png, "--model", onnx_model("SRVGGNetCompact"), "--overwrite")
    assert r.exit_code == 0, r.output
    assert cv2.imread(str(png)).shape == (48, 40, 3)


def test_one_image_in_a_folder_may_go_to_a_file(image_files, tmp_path):
    """One input found through a folder or glob and OUT with an image suffix: OUT is the output file."""
    from sr_runtime.batch import plan_jobs

    jobs = plan_jobs([image_files["rgb"]], tmp_path / "single.png")
    assert [j.dst for j in jobs] == [tmp_path / "single.png"]
    with pytest.raises(SrError, match="but IN has 2 files"):
        plan_jobs([image_files["rgb"], image_files["gray"]], tmp_path / "single.png")
    assert ModelFileError  # the probe's refusals are ModelFileErrors (exit 1, one line)
