"""``sr-run --ray``: one local Ray (``num_cpus=2``) for the module; the folder goes through the read tasks and the
actor pool and comes out bit-identical to a local ``sr-run``; a corrupt file is named and the rest completes;
``--skip-existing`` skips on a re-run; a list file and ``file://`` URIs take the pyarrow path.

Ray starts in ~5 s and each run takes a few seconds (actor start-up and model load), so the module shares one Ray
(the runs then join it, as ``--ray-address`` does) and one upscaled folder.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sr_runtime.errors import SrError
from sr_runtime.run import RunOptions, upscale_files

ray = pytest.importorskip("ray", reason="ray is not installed (extra 'ray')")
pytest.importorskip("pyarrow", reason="pyarrow is not installed (extra 'ray')")

from sr_runtime.scale.ray_batch import RayOptions, upscale_files_ray  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")  # Ray Data's own context defaults

OPTS = RunOptions(tile=8, tile_pad=4, batch=2, quiet=True)
"""Tiled (8 px tiles on 8-12 px images): the actors run the same tiler as the local path."""
LOCAL_ERRORS: list[str] = []
"""The error lines of the local run (filled by the ``folder`` fixture)."""


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray for the module; the actors' model cache in a temp folder (set before the workers start)."""
    old = os.environ.get("SR_DEPLOY_CACHE")
    os.environ["SR_DEPLOY_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()
    if old is None:
        del os.environ["SR_DEPLOY_CACHE"]
    else:
        os.environ["SR_DEPLOY_CACHE"] = old


@pytest.fixture(scope="module")
def folder(tmp_path_factory, local_ray, onnx_model):
    """IN: rgb, gray, rgba, 16-bit, jpg, a tiny video and one corrupt png; ``local``: what sr-run wrote without Ray."""
    root = tmp_path_factory.mktemp("ray")
    d = root / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    images = {"rgb.png": rng.integers(0, 256, (12, 10, 3), np.uint8),
              "gray.png": rng.integers(0, 256, (9, 11), np.uint8),
              "rgba.png": rng.integers(0, 256, (10, 10, 4), np.uint8),
              "rgb16.png": rng.integers(0, 65536, (8, 8, 3), np.uint16),
              "photo.jpg": rng.integers(0, 256, (12, 10, 3), np.uint8)}
    for name, arr in images.items():
        assert cv2.imwrite(str(d / name), arr)
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 8)
    if importlib.util.find_spec("av") is not None:
        from tests.runtime.test_video import make_clip

        make_clip(d / "clip.mkv", n=3, audio=False, codec="ffv1", pix_fmt="yuv444p")
    local = upscale_files(d, root / "local", _opts(onnx_model))
    assert (local.done, local.failed) == (len(list(d.iterdir())) - 1, 1)
    LOCAL_ERRORS[:] = local.errors
    return root


def _opts(onnx_model, **changes) -> RunOptions:
    return dataclasses.replace(OPTS, model=onnx_model("SRVGGNetCompact"), **changes)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _same(a: Path, b: Path) -> bool:
    """The same names (rgba -> png, clip.mkv) and contents: images bit for bit, a video frame for frame (the
    container holds a random segment UID)."""
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        if name.endswith(".mkv"):
            from tests.runtime.test_video import decode

            frames_a, frames_b = decode(a / name)[0], decode(b / name)[0]
            assert len(frames_a) == 3 and all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b)), name
        else:
            assert fa[name] == fb[name], name
    return True


def test_actor_pool_output_equals_local_and_skip_existing(folder, onnx_model):
    res = upscale_files_ray(folder / "in", folder / "ray", _opts(onnx_model), RayOptions())
    n = len(_files(folder / "local"))
    assert (res.done, res.failed, res.skipped) == (n, 1, 0)
    assert len(res.errors) == 1 and res.errors[0].startswith(f"{folder / 'in' / 'corrupt.png'}: cannot decode")
    assert list(res.errors) == LOCAL_ERRORS  # the same line as without Ray
    assert _same(folder / "ray", folder / "local")
    assert len(list(Path(os.environ["SR_DEPLOY_CACHE"], "models").iterdir())) == 1  # the model, once per node
    assert {"gray_out.png", "photo_out.jpg", "rgb16_out.png", "rgb_out.png", "rgba_out.png"} <= set(_files(folder / "ray"))

    before = {p.name: p.stat().st_mtime_ns for p in (folder / "ray").iterdir()}
    again = upscale_files_ray(folder / "in", folder / "ray", _opts(onnx_model, skip_existing=True))
    assert (again.done, again.failed, again.skipped) == (0, 1, n)  # the corrupt file has no output: tried again
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "ray").iterdir()} == before


def test_list_file_and_uris_through_pyarrow(folder, onnx_model, tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# two files, one relative\n{folder / 'in' / 'rgba.png'}\n\n"
                       f"{os.path.relpath(folder / 'in' / 'rgb16.png', tmp_path)}\n"
                       f"file://{folder / 'in' / 'gray.png'}\n")
    out = tmp_path / "o u t"  # a space: percent-escaped in the URI
    res = upscale_files_ray(listing, "file://" + str(out).replace(" ", "%20"), _opts(onnx_model))
    assert (res.done, res.failed) == (3, 0), res.errors
    local = _files(folder / "local")
    assert _files(out) == {k: local[k] for k in ("rgba_out.png", "rgb16_out.png", "gray_out.png")}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp objects left


def test_model_that_the_actors_cannot_open_is_one_error(folder, tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(SrError) as err:
        upscale_files_ray(folder / "in", tmp_path / "o", RunOptions(model=bad, quiet=True))
    line = err.value.one_line()  # the CPU engine (ONNX Runtime or OpenVINO) or the ONNX parser names it
    assert line.startswith(f"{bad}: ") and "model" in line and "\n" not in line
    assert "sr-deploy/models" not in line  # named as the driver knows it, not by the node's cache


def test_cli_joins_the_running_ray_and_exits_1_for_a_bad_file(folder, onnx_model, tmp_path):
    from click.testing import CliRunner

    from sr_runtime.cli import main

    r = CliRunner().invoke(main, [str(folder / "in"), str(tmp_path / "o"), "--ray", "--workers", "1", "-q",
                                  "--model", str(onnx_model("SRVGGNetCompact")), "--tile", "8", "--tile-pad", "4"])
    assert r.exit_code == 1
    assert r.stderr.strip() == f"error: {LOCAL_ERRORS[0]}"
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(_files(folder / "local"))


@pytest.mark.slow
def test_cli_starts_and_stops_its_own_ray(folder, onnx_model, tmp_path):
    """A separate process: the command starts a local Ray, reports the bad file, and leaves no Ray behind."""
    r = subprocess.run([sys.executable, "-m", "sr_runtime.cli", str(folder / "in" / "rgb.png"), str(tmp_path / "o"),
                        "--ray", "-q", "--model", str(onnx_model("SRVGGNetCompact"))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["rgb_out.png"]
    assert "Traceback" not in r.stderr
