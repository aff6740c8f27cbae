"""``--backend triton``: tiles cut here, windows inferred by a server that serves the ``sr-export --triton`` entry.

The server is :mod:`tests.runtime.fake_triton` (loopback HTTP, the real ``tritonclient.http`` client and its real
request encoding): every request must match the names, shapes and dtypes of the written ``config.pbtxt``, and
the output must equal a local ONNX Runtime run of the same file.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sr_runtime.errors import ModelFileError, SrError
from sr_runtime.run import RunOptions, upscale_files

pytest.importorskip("tritonclient.http", reason="tritonclient[http] is not installed (extra 'triton')")
pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from sr_runtime.backends.triton import TritonBackend, info_from_config, split_url  # noqa: E402
from tests.runtime.fake_triton import FakeTriton  # noqa: E402


@pytest.fixture
def repo(tmp_path, onnx_model):
    """A repository as ``sr-export --triton`` writes it: ``sr`` (fp32, max batch 2) and ``sr_fp16`` (fp16 I/O)."""
    from sr_export.fp16 import convert_fp16
    from sr_export.triton import write_triton_entry
    from sr_runtime.info import read_onnx_info

    src = onnx_model("RRDBNet-x2")  # size multiple 2: windows must stay multiples
    half = tmp_path / "h.onnx"
    convert_fp16(src, half, io_dtype="float16")
    repo = tmp_path / "repo"
    repo.mkdir()
    write_triton_entry(repo, "sr", src, read_onnx_info(src), max_batch_size=2)
    write_triton_entry(repo, "sr_fp16", half, read_onnx_info(half), max_batch_size=4)
    return repo


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name, shape in (("a.png", (14, 18, 3)), ("b.png", (9, 7, 4)), ("g.png", (12, 12))):
        cv2.imwrite(str(d / name), rng.integers(0, 256, shape, np.uint8))
    return d


@pytest.mark.parametrize("name", ["sr", "sr_fp16"])
def test_requests_match_config_and_output_equals_local(repo, images, tmp_path, name):
    with FakeTriton(repo) as server:
        opts = RunOptions(model=name, backend="triton", triton_url=server.url, tile=6, tile_pad=4, batch=3,
                          quiet=True)
        remote = upscale_files(images, tmp_path / "remote", opts)
        with TritonBackend(f"http://{server.url}", name) as be:
            assert be.info.scale == 2 and be.info.size_multiple == 2 and be.window_shapes == "any"
            assert be.info.io_dtype == ("float16" if name.endswith("fp16") else "float32")
            n = be.max_batch + 1  # one more than the server takes: split into max_batch + 1
            x = np.random.default_rng(0).random((n, 3, 8, 6), np.float32)
            assert be.run(x).shape == (n, 3, 16, 12)
            assert [r[3][0] for r in server.requests[-2:]] == [be.max_batch, 1]
    assert (remote.done, remote.failed) == (3, 0), remote.errors
    assert server.violations == []
    cfg = server.entries[name].config
    dtype = "FP16" if name.endswith("fp16") else "FP32"
    assert server.requests and all(r[0] == name and r[1] == cfg.input[0].name and r[2] == dtype
                                   and r[4] == [cfg.output[0].name] for r in server.requests)
    shapes = [r[3] for r in server.requests]
    assert all(len(s) == 4 and s[1] == cfg.input[0].dims[0] and 1 <= s[0] <= cfg.max_batch_size for s in shapes)
    local = upscale_files(images, tmp_path / "local", RunOptions(
        model=repo / name / "1" / "model.onnx", backend="ort", tile=6, tile_pad=4, batch=3, quiet=True, threads=1))
    assert local.done == 3
    for p in (tmp_path / "local").iterdir():
        assert (tmp_path / "remote" / p.name).read_bytes() == p.read_bytes(), p.name


def test_cli_and_errors(repo, images, tmp_path):
    from click.testing import CliRunner

    from sr_runtime.cli import main

    def run(*args):
        return CliRunner().invoke(main, [str(images / "a.png"), str(tmp_path / "o.png"), *map(str, args)])

    with FakeTriton(repo) as server:
        r = run("--backend", "triton", "--triton-url", server.url, "-m", "sr", "-q")
        assert r.exit_code == 0, r.stderr
        assert cv2.imread(str(tmp_path / "o.png")).shape == (28, 36, 3)
        r = run("--triton-url", server.url, "-m", "nope", "--overwrite")  # --triton-url alone selects triton
        assert r.exit_code == 1
        assert r.stderr.strip() == (f"error: model 'nope' is not ready on the Triton server at {server.url}. "
                                    "Check the model name (-m) and the server's log for why it did not load.")
    r = run("--backend", "triton", "--overwrite")
    assert r.exit_code == 1 and r.stderr.startswith("error: --backend triton needs the model's name on the server.")
    r = run("--backend", "triton", "--triton-url", "127.0.0.1:9", "-m", "sr", "--overwrite")
    assert r.exit_code == 1 and r.stderr.startswith("error: cannot reach Triton at 127.0.0.1:9 (")
    assert "Traceback" not in r.stderr
    with pytest.raises(SrError, match="bad --triton-url 'grpc://h:8001'"):
        split_url("grpc://h:8001")
    assert split_url(None) == ("localhost:8000", False) and split_url("https://h:443") == ("h:443", True)


def test_config_without_sr_parameters_is_refused(repo):
    with FakeTriton(repo) as server:
        cfg = dict(server.entries["sr"].as_json)
    assert info_from_config(cfg, "x").arch == "RRDBNet"
    with pytest.raises(ModelFileError, match="carries no sr-deploy parameters"):
        info_from_config({k: v for k, v in cfg.items() if k != "parameters"}, "x")
    with pytest.raises(ModelFileError, match="needs a batch axis"):
        info_from_config({**cfg, "max_batch_size": 0}, "x")
