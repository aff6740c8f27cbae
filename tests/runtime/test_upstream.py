"""Issue 18: users of upstream inference_realesrgan.py / realesrgan-ncnn-vulkan at home.

One test (or a few) per row of the issue's table; the row is named in each docstring.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from sr_runtime.cli import main
from sr_runtime.errors import ImageError, ModelFileError, SrError
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


# ------------------------------------------------------------------------------ row: flags people type
@needs_ort
def test_upstream_and_ncnn_spellings(image_files, onnx_model, tmp_path):
    """Row '-i inputs -o results, --tile_pad, --pre_pad, --alpha_upsampler, ncnn -f png': accepted, same output
    as our spellings; the aliases stay out of --help."""
    model = onnx_model("SRVGGNetCompact")
    src = image_files["rgba"]
    ours = invoke(src, tmp_path / "ours.png", "-m", model, "--tile-pad", "3", "--pre-pad", "2", "--alpha-upsampler",
                  "bicubic", "-t", "8")
    theirs = invoke("-i", src, "-o", tmp_path / "theirs", "--model_path", model, "--tile_pad", "3", "--pre_pad", "2",
                    "--alpha_upsampler", "bicubic", "-t", "8", "-f", "png", "--suffix", "")
    assert ours.exit_code == 0 and theirs.exit_code == 0, theirs.output
    assert (tmp_path / "ours.png").read_bytes() == (tmp_path / "theirs" / "rgba.png").read_bytes()
    mixed = invoke(src, "-o", tmp_path / "mixed.png", "-m", model, "-q")  # a positional fills what -i/-o leave
    assert mixed.exit_code == 0 and (tmp_path / "mixed.png").is_file()
    assert invoke(src, "x", "-o", "y").exit_code == 2
    options = invoke("--help").stdout.split("Options:")[1]
    assert "--tile-pad" in options and "--tile_pad" not in options and "--model_path" not in options


def test_model_by_name(tmp_path, monkeypatch):
    """Row '-n model': found by name in --models-dir, $SR_DEPLOY_MODELS, ./weights (upstream's folder), ncnn's
    '-m DIR -n NAME', with ncnn's spelling of upstream's names; --list-models shows them; a miss is one line."""
    from sr_runtime.model_names import ENV, find_model

    a, b, w = tmp_path / "a", tmp_path / "b", tmp_path / "weights"
    for folder, names in ((a, ["x.onnx", "RealESRGAN_x4plus.pth", "RealESRGAN_x4plus_anime_6B.pth"]), (b, ["y.onnx", "x.onnx"]), (w, ["z.pth"])):
        folder.mkdir()
        for n in names:
            (folder / n).write_bytes(b"m")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV, str(b))
    assert find_model("x", a) == a / "x.onnx" and find_model("x") == b / "x.onnx"
    assert find_model("y", a) == b / "y.onnx" and find_model("z") == Path("weights") / "z.pth"
    assert find_model("realesrgan-x4plus", a) == a / "RealESRGAN_x4plus.pth"  # ncnn's name, upstream's file
    assert find_model("realesrgan-x4plus-anime", a) == a / "RealESRGAN_x4plus_anime_6B.pth"
    assert find_model("x.onnx", a) == a / "x.onnx"
    r = invoke("--list-models", "--models-dir", a)
    assert r.exit_code == 0 and "RealESRGAN_x4plus" in r.stdout and str(b) in r.stdout and "demo model" in r.stdout
    cv2.imwrite(str(tmp_path / "in.png"), np.zeros((4, 4, 3), np.uint8))
    r = invoke(tmp_path / "in.png", tmp_path / "o", "-n", "nothing", "--models-dir", a)
    assert r.exit_code == 1
    (line,) = error_lines(r)
    assert line.startswith("error: nothing: no model named 'nothing' in the models folders (") and str(a) in line
    r = invoke(tmp_path / "in.png", tmp_path / "o", "-m", a / "x.onnx", "-n", "x")
    assert r.exit_code == 1 and "both choose a model" in error_lines(r)[0]


@needs_ort
def test_ncnn_model_folder_and_name(image_files, onnx_model, tmp_path):
    """ncnn's '-m models -n NAME' runs that model; the same as --model FILE."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny.onnx").write_bytes(onnx_model("SRVGGNetCompact").read_bytes())
    r = invoke(image_files["rgb"], tmp_path / "a.png", "-m", models, "-n", "tiny", "-q")
    assert r.exit_code == 0, r.output
    r = invoke(image_files["rgb"], tmp_path / "b.png", "-m", models / "tiny.onnx", "-q")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


# ------------------------------------------------------------------------------ TTA (ncnn -x)
def _tta_reference(model, img: np.ndarray) -> np.ndarray:
    """numpy reference of TTA on the whole image: the model on each of the 8 flips/rotations, turned back,
    averaged, then quantised as sr-run does (RGB model, BGR uint8 image)."""
    x = img[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32) / 255
    outs = []
    for k in range(4):
        for flip in (False, True):
            t = np.rot90(x, k, axes=(2, 3))
            t = t[..., ::-1] if flip else t
            y = np.asarray(model(np.ascontiguousarray(t)))
            y = y[..., ::-1] if flip else y
            outs.append(np.rot90(y, -k, axes=(2, 3)))
    y = np.mean(outs, axis=0)[0].transpose(1, 2, 0)[..., ::-1]
    return np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)


def test_tta_tiled_matches_the_numpy_reference():
    """--tta: tiled TTA (pad >= radius, non-square tiles) equals the whole-image numpy reference, which is
    built from rotations (np.rot90) rather than the transposes the runtime uses."""
    from sr_runtime.api import Upscaler
    from tests.runtime.fakes import FakeBackend, FakeModel

    fake = FakeModel(scale=2, layers=2)
    img = np.random.default_rng(4).integers(0, 256, (21, 34, 3), dtype=np.uint8)
    ref = _tta_reference(fake, img)
    for tile in (0, 9):
        out, _ = Upscaler(FakeBackend(fake, scale=2), tile=tile, tile_pad=fake.radius, pre_pad=0, batch=3,
                          tta=True).enhance(img)
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    plain, _ = Upscaler(FakeBackend(fake, scale=2), tile=0, pre_pad=0).enhance(img)
    assert np.abs(plain.astype(int) - ref.astype(int)).max() > 1  # TTA is not a no-op on this model


@needs_ort
def test_tta_cli_on_a_real_model(image_files, onnx_model, torch_ref, tmp_path):
    """sr-run -x with tiles: the tiny SRVGGNetCompact through ORT against the numpy reference over torch."""
    r = invoke(image_files["rgb"], tmp_path / "x.png", "-m", onnx_model("SRVGGNetCompact"), "-x", "-t", "6",
               "--tile-pad", "4", "--pre-pad", "0", "-q")
    assert r.exit_code == 0, r.output
    img = cv2.imread(str(image_files["rgb"]), cv2.IMREAD_UNCHANGED)
    ref = _tta_reference(torch_ref("SRVGGNetCompact"), img)
    out = cv2.imread(str(tmp_path / "x.png"), cv2.IMREAD_UNCHANGED)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_tta_refuses_a_fixed_non_square_model():
    from sr_runtime.api import Upscaler
    from tests.runtime.fakes import FakeBackend

    class Fixed(FakeBackend):
        window_shapes = "fixed"

    be = Fixed(scale=2, max_shape=(1, 3, 32, 48))
    with pytest.raises(SrError, match="--tta turns tiles by 90 degrees"):
        Upscaler(be, tta=True)


# ------------------------------------------------------------------------------ row: --scale for a foreign ONNX
@needs_ort
def test_scale_flag_for_a_foreign_onnx(plain_onnx, image_files, tmp_path):
    """'or with --scale N': the probe must find that scale; another one is one line before any image."""
    plain = plain_onnx("dynamic")
    r = invoke(image_files["rgb"], tmp_path / "a.png", "-m", plain, "--scale", "4", "-q")
    assert r.exit_code == 0, r.output
    r = invoke(image_files["rgb"], tmp_path / "b.png", "-m", plain, "--scale", "2")
    assert r.exit_code == 1
    assert error_lines(r) == [f"error: {plain}: --scale 2 was given, but the model upscales x4. Drop --scale or "
                              "pass --scale 4."]
    assert not (tmp_path / "b.png").exists()


# ------------------------------------------------------------------------------ row: a .pth as --model
def test_pth_model_is_exported_once_and_runs(image_files, tmp_path, monkeypatch):
    """Row 'sr-run -m model.pth with torch installed': exported once into the cache (parity checked, keyed by
    the checkpoint's hash), the same pixels as sr-export + sr-run; the second run takes the cached file."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from sr_export.cli import main as export_main
    from tests.export.conftest import tiny_checkpoint

    monkeypatch.setenv("SR_DEPLOY_CACHE", str(tmp_path / "cache"))
    pth = tiny_checkpoint(tmp_path)
    r = invoke(image_files["rgb"], tmp_path / "a.png", "-m", pth)
    assert r.exit_code == 0, r.output
    assert "exporting to ONNX once" in r.stderr and "PASS" in r.stderr
    cached = list((tmp_path / "cache" / "checkpoints").glob("tiny_*.onnx"))
    assert len(cached) == 1
    r = invoke(image_files["rgb"], tmp_path / "b.png", "-m", pth)
    assert r.exit_code == 0 and "exporting" not in r.stderr
    assert CliRunner().invoke(export_main, [str(pth), "-o", str(tmp_path / "t.onnx")]).exit_code == 0
    assert invoke(image_files["rgb"], tmp_path / "c.png", "-m", tmp_path / "t.onnx", "-q").exit_code == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes() == (tmp_path / "c.png").read_bytes()
    from sr_runtime.api import Upscaler

    assert Upscaler(model_path=pth).model_path == cached[0]  # upstream's RealESRGANer(model_path="x.pth") too


def test_pth_model_without_torch_names_the_extra(tmp_path):
    """Row '... without it, one line naming the extra': torch hidden from the import system."""
    from tests.torchless import run_blocked, zip_checkpoint

    pth = zip_checkpoint(tmp_path / "x.pth")
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.zeros((4, 4, 3), np.uint8))
    r = run_blocked(tmp_path, "sr_runtime.cli", ["sr-run", img, tmp_path / "o", "-m", pth])
    assert r.returncode == 1 and r.stderr.strip() == (
        f"error: {pth}: a .pth model (exported to ONNX on first use) needs the 'torch' module. Install it with: "
        "pip install 'sr-deploy[export]'")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ row: --ext jpg on RGBA
@needs_ort
def test_jpg_of_an_rgba_image_is_composited(tmp_path):
    """Row '--ext jpg on an RGBA image': transparent pixels show the background (white, or --background),
    not the colour stored under them; a note says so; --ext auto keeps png."""
    from tests.corpus.models import TINY_ONNX

    img = np.zeros((16, 16, 4), np.uint8)
    img[..., :3] = (0, 0, 255)  # red under everything
    img[:8, :, 3] = 255  # the top half opaque, the bottom half fully transparent
    src = tmp_path / "rgba.png"
    cv2.imwrite(str(src), img)
    for bg, want in (("white", (255, 255, 255)), ("black", (0, 0, 0)), ("#0080ff", (255, 128, 0))):
        r = invoke(src, tmp_path / bg, "-m", TINY_ONNX, "-f", "jpg", "--background", bg, "--suffix", "",
                   "--alpha-upsampler", "bicubic")
        assert r.exit_code == 0, r.output
        assert "composited onto" in r.stderr and "--background" in r.stderr
        out = cv2.imread(str(tmp_path / bg / "rgba.jpg"))
        assert np.abs(out[-20:].astype(int) - np.array(want)).max() <= 12, (bg, out[-20:].mean((0, 1)))
    r = invoke(src, tmp_path / "auto", "-m", TINY_ONNX, "-q")
    assert r.exit_code == 0 and cv2.imread(str(tmp_path / "auto" / "rgba_out.png"), -1).shape[2] == 4
    r = invoke(src, tmp_path / "bad", "-m", TINY_ONNX, "-f", "jpg", "--background", "mauve-ish")
    assert r.exit_code == 1 and error_lines(r)[0].startswith("error: bad --background 'mauve-ish'")


# ------------------------------------------------------------------------------ row: the speed line
def test_one_labelled_speed_unit():
    """Row 'read the speed line': sr-run's summary and the demo both say input MP/s."""
    from pathlib import Path as P

    from sr_runtime.batch import BatchResult

    assert BatchResult(3, 0, 0, 2.0, 1.5).summary() == "done 3, failed 0, skipped 0 in 2.0 s (0.75 input MP/s)"
    demo = (P(__file__).resolve().parents[2] / "scripts" / "demo.py").read_text()
    assert "input MP/s" in demo and "output megapixels/s" not in demo


# ------------------------------------------------------------------------------ row: --fp32 with a lone fp16 file
@needs_ort
def test_fp32_with_a_lone_fp16_file(image_files, onnx_model, tmp_path):
    """Row '--fp32 with a lone x_fp16.onnx': the message says that sr-export --fp16 writes only that file."""
    lone = tmp_path / "m_fp16.onnx"
    lone.write_bytes(onnx_model("SRVGGNetCompact", "float16").read_bytes())
    r = invoke(image_files["rgb"], tmp_path / "o", "-m", lone, "--fp32")
    assert r.exit_code == 1
    (line,) = error_lines(r)
    assert "has no fp32 sibling" in line and "sr-export --fp16 writes only the fp16 file" in line
    assert "writes both" not in line


# ------------------------------------------------------------------------------ row: --version, --help
def test_version_and_help_of_the_three_commands():
    """Rows '--version' (all three commands) and 'ran with no --model' (--help says it is a small demo model)."""
    from sr_export.cli import main as export_main
    from sr_runtime import __version__
    from sr_train.cli import main as train_main

    for cmd, name in ((main, "sr-run"), (export_main, "sr-export"), (train_main, "sr-train")):
        for flag in ("--version", "-V"):
            r = CliRunner().invoke(cmd, [flag])
            assert r.exit_code == 0 and r.stdout == f"{name} (sr-deploy) {__version__}\n"
    text = " ".join(invoke("--help").stdout.split())
    assert "a small demo model" in text and "sr-run IN OUT -m RealESRGAN_x4plus.pth" in text


@needs_ort
def test_a_run_on_the_default_model_says_it_is_the_demo(image_files, onnx_model, tmp_path):
    """Row 'ran with no --model': the run's first note says so too (and only then)."""
    r = invoke(image_files["rgb"], tmp_path / "a.png")
    assert r.exit_code == 0 and "the small shipped demo model; -m for an official one" in r.stderr
    r = invoke(image_files["rgb"], tmp_path / "b.png", "-m", onnx_model("SRVGGNetCompact"))
    assert r.exit_code == 0 and "demo model" not in r.stderr


# ------------------------------------------------------------------------------ row: the Python API
def test_upscaler_takes_realesrganer_arguments(image_files, tmp_path):
    """Row 'Upscaler(4, "x.onnx"), Upscaler(scale=4, model_path=...), enhance("path.png")'."""
    from sr_runtime.api import DEFAULT_MODEL, Upscaler

    up = Upscaler(4, str(DEFAULT_MODEL))
    assert (up.scale, up.model_path, up.tile) == (4, DEFAULT_MODEL, 0)
    up = Upscaler(scale=4, model_path=DEFAULT_MODEL, tile=10, tile_pad=10, pre_pad=2, half=False)
    assert (up.tile, up.tile_pad, up.pre_pad, up.half) == (10, 10, 2, False)
    with pytest.raises(SrError, match="--scale 2 was given, but the model's metadata says x4"):
        Upscaler(2, str(DEFAULT_MODEL))
    with pytest.raises(TypeError, match="takes two positional arguments"):
        Upscaler(4, str(DEFAULT_MODEL), None)  # upstream's third positional is dni_weight
    with pytest.raises(TypeError, match=r"got str \(a path: read it with cv2.imread"):
        up.enhance(str(image_files["rgb"]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got PosixPath|got WindowsPath"):
        up.enhance(image_files["rgb"])  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="pixel type int32"):
        up.enhance(np.zeros((2, 2, 3), np.int32))


def test_upstream_enhance_cases():
    """The enhance cases of upstream's tests/test_utils.py (RealESRGANer), with the shipped model in place of
    RealESRGAN_x4plus.pth (no download): float32 arrays (upstream's max > 256 rule), 16-bit, gray, RGBA,
    alpha_upsampler=None; return (output, img_mode)."""
    from sr_runtime.api import DEFAULT_MODEL, Upscaler

    restorer = Upscaler(scale=4, model_path=str(DEFAULT_MODEL), tile=10, tile_pad=10, pre_pad=2, half=False)
    assert restorer.half is False
    # ------------------ test enhance ---------------- #
    img = np.random.random((12, 12, 3)).astype(np.float32)
    result = restorer.enhance(img, outscale=2)
    assert result[0].shape == (24, 24, 3)
    assert result[1] == "RGB"
    # ------------------ test enhance with 16-bit image---------------- #
    img = np.random.random((4, 4, 3)).astype(np.uint16) + 512
    result = restorer.enhance(img, outscale=2)
    assert result[0].shape == (8, 8, 3)
    assert result[1] == "RGB"
    # ------------------ test enhance with gray image---------------- #
    img = np.random.random((4, 4)).astype(np.float32)
    result = restorer.enhance(img, outscale=2)
    assert result[0].shape == (8, 8)
    assert result[1] == "L"
    # ------------------ test enhance with RGBA---------------- #
    img = np.random.random((4, 4, 4)).astype(np.float32)
    result = restorer.enhance(img, outscale=2)
    assert result[0].shape == (8, 8, 4)
    assert result[1] == "RGBA"
    # ------------------ test enhance with RGBA, alpha_upsampler---------------- #
    restorer.tile = 0
    img = np.random.random((4, 4, 4)).astype(np.float32)
    result = restorer.enhance(img, outscale=2, alpha_upsampler=None)
    assert result[0].shape == (8, 8, 4)
    assert result[1] == "RGBA"


def test_float_arrays_follow_upstreams_range_rule():
    """A float image is 8-bit when its maximum is <= 256 (divided by 255, uint8 out), else 16-bit (65535,
    uint16 out): the same pixels as the integer image; alpha_upsampler=None is upstream's bilinear resize."""
    from sr_runtime.api import Upscaler
    from tests.runtime.fakes import FakeBackend

    up = Upscaler(FakeBackend(scale=2))
    rng = np.random.default_rng(5)
    for dtype in (np.uint8, np.uint16):
        img = rng.integers(0, np.iinfo(dtype).max + 1, (5, 6, 4), dtype=dtype)
        img[0, 0, 0] = 300 if dtype == np.uint16 else img[0, 0, 0]  # the 16-bit one must pass the > 256 rule
        out_f, mode = up.enhance(img.astype(np.float32), alpha_upsampler=None)
        out_i, _ = up.enhance(img, alpha_upsampler="linear")
        assert mode == "RGBA" and out_f.dtype == dtype and np.array_equal(out_f[..., :3], out_i[..., :3])
        a = img[..., 3]
        assert np.array_equal(out_i[..., 3], cv2.resize(a, (12, 10), interpolation=cv2.INTER_LINEAR))
        # the float alpha is resized in float and rounded once; OpenCV's integer resize rounds its own way
        assert np.abs(out_f[..., 3].astype(int) - out_i[..., 3].astype(int)).max() <= 1


UPSTREAM_FLAGS = ("-i/--input", "-n/--model_name", "-o/--output", "-dn/--denoise_strength", "-s/--outscale",
                  "--model_path", "--suffix", "-t/--tile", "--tile_pad", "--pre_pad", "--face_enhance", "--fp32",
                  "--alpha_upsampler", "--ext", "-g/--gpu-id")
"""Every flag of upstream's inference_realesrgan.py (its argparse definitions)."""
NCNN_FLAGS = ("-i input-path", "-o output-path", "-s scale", "-t tile-size", "-m model-path", "-n model-name",
              "-g gpu-id", "-j load:proc:save", "-x", "-f format", "-v", "-h")
"""Every flag of realesrgan-ncnn-vulkan (its usage text)."""


def test_flag_mapping_page_names_every_upstream_flag():
    """'A docs page maps every upstream and ncnn flag to ours': each has its row in docs/upstream.md."""
    import re

    page = (Path(__file__).resolve().parents[2] / "docs" / "upstream.md").read_text()
    python, ncnn = page.split("## `realesrgan-ncnn-vulkan`")
    for section, flags in ((python, UPSTREAM_FLAGS), (ncnn, NCNN_FLAGS)):
        firsts = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| `")]
        for flag in flags:
            assert any(re.match(rf"`{re.escape(flag)}[` ]", cell) for cell in firsts), flag
