"""Upscaler.enhance: every image mode with a golden expectation (nearest-neighbour fake model), outscale,
alpha upsamplers, tiny images, fp32 redo, auto tiles, threads, and the real tiny models through ORT."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from sr_runtime import api
from sr_runtime.api import Upscaler
from sr_runtime.backends.base import Backend, BackendBase
from sr_runtime.compare import Tol, compare
from sr_runtime.errors import ImageError, ModelFileError, SrError
from sr_runtime.info import ModelInfo
from tests.runtime.fakes import FakeBackend, FakeModel

TOL = {("ort", "tiled-vs-whole-uint8"): Tol(max_abs=1 / 255, min_psnr=60)}
"""Auto-tiled (pad = radius, batch 3) vs whole-image uint8 output of the tiny models through ORT CPU: measured
identical (max_abs 0, 0 differing pixels, SRVGGNetCompact and RRDBNet x2); 1 LSB allowed because fp32 noise of
~1e-7 can flip a rounding."""


def nn(img: np.ndarray, s: int) -> np.ndarray:
    return np.repeat(np.repeat(img, s, 0), s, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 1), (7, 9, 2), (7, 9, 3), (7, 9, 4)])
def test_modes_golden(shape, dtype):
    """Nearest x2 model: every mode comes back as exactly the nearest-upscaled input, in its layout/dtype."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    up = Upscaler(FakeBackend(scale=2), tile=4, tile_pad=0, pre_pad=3, batch=2)
    out, mode = up.enhance(img)
    plain = img[..., 0] if img.ndim == 3 and img.shape[2] == 1 else img
    assert mode == {(7, 9): "L", (7, 9, 1): "L", (7, 9, 2): "LA", (7, 9, 3): "RGB", (7, 9, 4): "RGBA"}[shape]
    assert out.dtype == dtype and out.shape == (14, 18) + plain.shape[2:]
    assert np.array_equal(out, nn(plain, 2)), f"max diff {np.abs(out.astype(int) - nn(plain, 2)).max()}"


def test_dark_16bit_keeps_range():
    """Upstream's `max > 256` treats this as 8-bit; we keep uint16 and its values."""
    img = np.random.default_rng(0).integers(0, 200, (5, 6, 3), dtype=np.uint16)
    out, _ = Upscaler(FakeBackend(scale=2)).enhance(img)
    assert out.dtype == np.uint16 and np.array_equal(out, nn(img, 2))


def test_bgr_order_reaches_the_model_as_rgb():
    seen = []

    def fn(x):
        seen.append(x[0, :, 0, 0].copy())
        return np.repeat(np.repeat(x, 2, 2), 2, 3)

    img = np.zeros((2, 2, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    Upscaler(FakeBackend(fn, scale=2)).enhance(img)
    assert np.allclose(seen[0], [0, 0, 1])


@pytest.mark.parametrize("alpha", ["model", "realesrgan", "bicubic", "lanczos"])
def test_alpha_upsamplers(alpha):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (6, 8, 4), dtype=np.uint8)
    out, mode = Upscaler(FakeBackend(scale=2)).enhance(img, alpha_upsampler=alpha)
    assert mode == "RGBA" and out.shape == (12, 16, 4)
    assert np.array_equal(out[..., :3], nn(img[..., :3], 2))
    a = img[..., 3]
    expect = {"model": nn(a, 2), "realesrgan": nn(a, 2),
              "bicubic": cv2.resize(a, (16, 12), interpolation=cv2.INTER_CUBIC),
              "lanczos": cv2.resize(a, (16, 12), interpolation=cv2.INTER_LANCZOS4)}[alpha]
    assert np.array_equal(out[..., 3], expect)


def test_bad_inputs():
    up = Upscaler(FakeBackend(scale=2))
    with pytest.raises(ImageError, match="alpha upsampler"):
        up.enhance(np.zeros((2, 2, 4), np.uint8), alpha_upsampler="bilinear")  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="pixel type"):
        up.enhance(np.zeros((2, 2, 3), np.int64))
    with pytest.raises(SrError, match="tile"):
        Upscaler(FakeBackend(scale=2), tile=-1)


@pytest.mark.parametrize("outscale", [1.0, 3.5, 4.0])
def test_outscale_is_lanczos_after_the_model(outscale):
    img = np.random.default_rng(2).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    out, _ = Upscaler(FakeBackend(scale=4)).enhance(img, outscale=outscale)
    assert out.shape == (int(10 * outscale), int(12 * outscale), 3)
    if outscale != 4.0:
        ref = cv2.resize(nn(img, 4), (int(12 * outscale), int(10 * outscale)), interpolation=cv2.INTER_LANCZOS4)
        assert np.array_equal(out, ref)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 5, 3), (5, 1), (2, 2, 4)])
def test_tiny_images(shape):
    """Smaller than pre_pad and tile_pad (upstream's reflect padding raises here)."""
    img = np.full(shape, 77, np.uint8)
    for m in (1, 4):
        up = Upscaler(FakeBackend(scale=2, size_multiple=m), tile=4, tile_pad=10, pre_pad=10)
        out, _ = up.enhance(img)
        assert out.shape == (shape[0] * 2, shape[1] * 2) + shape[2:] and (out == 77).all()


def test_nan_tiles_redone_with_fp32_model_once():
    good = FakeModel(scale=2, layers=1)

    def fp16(x):
        y = good(x)
        y[:, :, :2] = np.nan
        return y

    msgs: list[str] = []
    img = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    up = Upscaler(FakeBackend(fp16, scale=2, precision="float16"), tile=8, tile_pad=2,
                  fp32_model=FakeBackend(good, scale=2), notify=msgs.append)
    out, _ = up.enhance(img)
    ref, _ = Upscaler(FakeBackend(good, scale=2), tile=8, tile_pad=2).enhance(img)
    assert np.array_equal(out, ref)
    assert len(msgs) == 1 and "fp32" in msgs[0]
    with pytest.raises(SrError, match="NaN"):
        Upscaler(FakeBackend(fp16, scale=2), tile=8).enhance(img)


def test_auto_tile_uses_the_budget():
    be = FakeBackend(scale=2, hparams={"num_feat": 64})
    img = np.zeros((200, 300, 3), np.uint8)
    assert Upscaler(be, tile="auto", max_memory="1G").plan(200, 300) == (0, 1)
    up = Upscaler(be, tile="auto", tile_pad=10, max_memory="4M", batch=2)
    tile, batch = up.plan(200, 300)
    assert 32 <= tile < 200 and batch == 2
    up.enhance(img)
    shapes = {c[2:] for c in be.calls}  # one window shape, balanced cores: at most tile + 2 * pad a side
    assert len(shapes) == 1 and max(next(iter(shapes))) <= tile + 20


def test_default_pad_notes_and_warnings():
    """tile_pad None takes the model's radius where cheap; --tile auto says what it chose (once per choice); a
    pad larger than the tile is warned about once."""
    msgs: list[str] = []
    assert Upscaler(FakeBackend(scale=2, radius=18), tile=64, tile_pad=None).tile_pad == 18
    assert Upscaler(FakeBackend(scale=2, radius=349, arch="RRDBNet"), tile=64, tile_pad=None).tile_pad == 10
    up = Upscaler(FakeBackend(scale=2), tile="auto", max_memory="1G", notify=msgs.append)
    up.plan(200, 300)
    up.plan(200, 300)
    up.plan(200, 300, reserved=2**20)  # a video's second call: another budget, the same choice, no second note
    assert msgs == ["--tile auto: whole image for 300x200 (memory budget 1024 MB)"]
    msgs.clear()
    up = Upscaler(FakeBackend(scale=2), tile=8, tile_pad=30, notify=msgs.append)
    up.plan(100, 100)
    up.plan(100, 100)
    assert len(msgs) == 1 and "larger than the tile 8" in msgs[0]


def test_engine_profile_limits_tile_and_batch():
    be = FakeBackend(scale=2, size_multiple=2, max_shape=(2, 3, 64, 64))
    msgs: list[str] = []
    up = Upscaler(be, tile=0, tile_pad=9, batch=8, notify=msgs.append)
    assert up.plan(500, 500) == (44, 2)  # 64 - 2 * 10 (pad rounded up to the size multiple)
    up.enhance(np.zeros((100, 90, 3), np.uint8))
    assert max(c[2] for c in be.calls) <= 64 and max(c[0] for c in be.calls) <= 2
    assert Upscaler(be, tile=128, tile_pad=9, notify=msgs.append).plan(500, 500)[0] == 44 and msgs


class ThirdBackend(BackendBase):
    """A new backend written against the protocol only (as OpenVINO's will be): run/close plus declarations."""

    def __init__(self, fn, *, reduced=False, free=None, windows="same", max_shape=None):
        self.info = ModelInfo(arch="SRVGGNetCompact", scale=2, hparams={"num_feat": 64})
        self.provider, self.fn, self.calls = "ThirdProvider", fn, []
        self._reduced, self._free, self._windows, self._max = reduced, free, windows, max_shape

    def run(self, batch):
        self.calls.append(batch.shape)
        return self.fn(batch)

    def close(self):
        pass

    reduced_precision = property(lambda self: self._reduced)
    window_shapes = property(lambda self: self._windows)
    max_shape = property(lambda self: self._max)

    def free_memory(self):
        return self._free


def test_a_third_backend_gets_every_feature_through_the_protocol():
    good = FakeModel(scale=2, layers=1)
    img = np.random.default_rng(6).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    ref, _ = Upscaler(ThirdBackend(good), tile=16, tile_pad=2).enhance(img)
    assert isinstance(ThirdBackend(good), Backend) and repr(ThirdBackend(good)).startswith("ThirdBackend(provider=")

    def overflow(x):
        y = good(x)
        y[:, :, :1] = np.inf
        return y

    # reduced precision: non-finite tiles are redone with the fp32 model
    msgs: list[str] = []
    up = Upscaler(ThirdBackend(overflow, reduced=True), tile=16, tile_pad=2, fp32_model=FakeBackend(good),
                  notify=msgs.append)
    assert np.array_equal(up.enhance(img)[0], ref) and any("fp32" in m for m in msgs)
    # free device memory sizes --tile auto (a tiny budget gives a small tile, a huge one the whole image)
    assert Upscaler(ThirdBackend(good, free=1 << 40), tile="auto").plan(40, 40)[0] == 0
    assert 0 < Upscaler(ThirdBackend(good, free=1 << 22), tile="auto", tile_pad=2).plan(400, 400)[0] < 400
    # the shape limit caps tile and batch
    assert Upscaler(ThirdBackend(good, max_shape=(2, 3, 24, 24)), tile=0, tile_pad=2, batch=4).plan(99, 99) == (20, 2)
    # one fixed shape: a small image is padded up to the full window
    fixed = ThirdBackend(good, windows="fixed")
    out, _ = Upscaler(fixed, tile=16, tile_pad=2, pre_pad=0).enhance(img[:5, :7])
    assert fixed.calls == [(1, 3, 20, 20)] and out.shape == (10, 14, 3)


def test_no_default_model(monkeypatch, tmp_path):
    monkeypatch.setattr(api, "DEFAULT_MODEL", tmp_path / "default.onnx")
    with pytest.raises(ModelFileError) as err:
        Upscaler()
    assert err.value.one_line().startswith("no default model is shipped yet. Pass --model")


# --------------------------------------------------------------------------- real tiny models through ORT
@pytest.mark.parametrize("case", ["SRVGGNetCompact", "RRDBNet-x2"])
def test_ort_auto_tiles_equal_whole_image(case, onnx_model):
    img = np.random.default_rng(4).integers(0, 256, (45, 38, 3), dtype=np.uint8)
    whole = Upscaler(onnx_model(case), tile=0, pre_pad=0, backend="ort")
    radius = whole.info.receptive_radius
    ref, _ = whole.enhance(img)
    tiled = Upscaler(onnx_model(case), tile="auto", tile_pad=radius, pre_pad=0, batch=3, backend="ort",
                     max_memory=1 << 19)
    assert 0 < tiled.plan(45, 38)[0] < 38
    out, _ = tiled.enhance(img)
    r = compare(f"{case} auto-tiled vs whole", out.astype(np.float32) / 255, ref.astype(np.float32) / 255,
                TOL[("ort", "tiled-vs-whole-uint8")])
    assert r.passed, r.line()


def test_threads_share_one_upscaler(onnx_model):
    up = Upscaler(onnx_model("SRVGGNetCompact"), tile=8, tile_pad=4, backend="ort", threads=1)
    imgs = [np.random.default_rng(i).integers(0, 256, (20, 17, 3), dtype=np.uint8) for i in range(4)]
    expect = [up.enhance(i)[0] for i in imgs]
    got: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        got[k] = up.enhance(imgs[k])[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(got[k], expect[k]) for k in range(4))


def test_upscale_and_open_model(onnx_model, image_files):
    import sr_runtime

    out = sr_runtime.upscale(image_files["rgb"], onnx_model("SRVGGNetCompact"), backend="ort")
    assert out.shape == (48, 40, 3)
    with sr_runtime.open_model(onnx_model("SRVGGNetCompact"), backend="ort") as up:
        assert up.scale == 4 and up.provider == "CPUExecutionProvider"
