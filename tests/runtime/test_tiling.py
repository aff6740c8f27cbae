"""Tiling is exact: tiled == whole-image output bit for bit with fake models of known radius (no backend)."""

from __future__ import annotations

import numpy as np
import pytest

from sr_runtime.errors import OutOfMemory, SrError
from sr_runtime.tiling import (
    TileSettings,
    core_side,
    default_pad,
    max_core,
    pad_input,
    pad_side,
    plan_clipped,
    plan_for,
    plan_tiles,
    run_tiled,
    window_side,
    with_fp32_redo,
)
from tests.runtime.fakes import FakeModel


def whole(img: np.ndarray, fn, scale: int, pre_pad: int, m: int, dtype) -> np.ndarray:
    """Reference: the whole padded image in one call, cropped, clipped and quantised like the tiler."""
    src = pad_input(img, pre_pad, m)
    top_in = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
    x = (src.astype(np.float32) / np.float32(top_in)).transpose(2, 0, 1)[None]
    y = fn(x)[0][:, : img.shape[0] * scale, : img.shape[1] * scale].transpose(1, 2, 0)
    y = np.clip(y, 0.0, 1.0)
    if np.dtype(dtype).kind == "f":
        return y.astype(dtype)
    top = 255.0 if np.dtype(dtype) == np.uint8 else 65535.0
    return np.rint(y * np.float32(top)).astype(dtype)


@pytest.mark.parametrize("m", [1, 2, 4])
def test_plan_invariants(m):
    rng = np.random.default_rng(m)
    for _ in range(200):
        h, w = int(rng.integers(1, 60)) * m, int(rng.integers(1, 60)) * m
        tile, pad = int(rng.integers(1, 50)), int(rng.integers(0, 12))
        plan = plan_tiles(h, w, tile=tile, pad=pad, size_multiple=m)
        cover = np.zeros((h, w), np.int32)
        for t in plan.tiles:
            assert (t.src.height, t.src.width) == plan.window
            assert t.src.y0 % m == 0 and t.src.x0 % m == 0 and plan.window[0] % m == 0
            assert 0 <= t.src.y0 and t.src.y1 <= h and 0 <= t.src.x0 and t.src.x1 <= w
            cover[t.core.slices()] += 1
            # at least `pad` real context on each side, or the image border
            for lo, hi, clo, chi, size in ((t.src.y0, t.src.y1, t.core.y0, t.core.y1, h),
                                           (t.src.x0, t.src.x1, t.core.x0, t.core.x1, w)):
                assert lo == 0 or clo - lo >= pad
                assert hi == size or hi - chi >= pad
        assert (cover == 1).all(), "cores must partition the image"


def test_plan_balances_cores_so_edge_tiles_waste_little():
    # upstream's clipped windows execute 1.11x the pixels of 640x480 at tile 256 / pad 10; same-shape windows
    # over 256, 256, 128 cores executed 1.49x; balanced cores (214 x 3, 240 x 2) bring it to 1.19x
    plan = plan_tiles(480, 640, tile=256, pad=10)
    assert len(plan) == 6 and plan.window == (260, 234) and plan.tile == 240
    assert sorted({t.core.width for t in plan.tiles}) == [212, 214]
    executed = sum(t.src.height * t.src.width for t in plan.tiles)
    assert executed / (480 * 640) < 1.2
    for size, tile, m in ((1000, 256, 1), (257, 256, 1), (96, 40, 4), (512, 256, 2)):
        p = plan_tiles(size, size, tile=tile, pad=4, size_multiple=m)
        n = -(-size // (tile // m * m))
        cores = sorted({t.core.height for t in p.tiles})
        assert len(p) == n * n and max(cores) <= tile and max(cores) - min(cores) <= m, (size, tile, cores)


def test_clipped_plan_executes_what_upstream_does():
    """Tile 256 / pad 10 on 640x448: six windows clipped at the border, 1.11x the image's pixels (same-shape
    windows: 1.19x); the windows come in two shapes, and batches never mix shapes."""
    plan = plan_clipped(448, 640, tile=256, pad=10)
    executed = sum(t.src.height * t.src.width for t in plan.tiles)
    assert len(plan) == 6 and executed / (640 * 448) <= 1.12
    assert {(t.src.height, t.src.width) for t in plan.tiles} == {(234, 227), (234, 226)}
    model = FakeModel(scale=2, layers=1)
    img = np.random.default_rng(0).integers(0, 256, (448, 640, 3), dtype=np.uint8)
    run_tiled(img, model, TileSettings(scale=2, tile=256, pad=10, batch=4, windows="any"))
    assert model.calls == [(4, 3, 234, 227), (2, 3, 234, 226)]
    # an axis that fits one window is not cut; tile 0 is the whole image
    assert len(plan_clipped(266, 100, tile=256, pad=10)) == 1
    assert len(plan_clipped(30, 20, tile=0, pad=10)) == 1


def test_plan_follows_what_the_backend_declares():
    base = dict(scale=2, tile=8, pad=2)
    assert plan_for(40, 30, TileSettings(**base, windows="any")) == plan_clipped(40, 30, tile=8, pad=2)
    assert plan_for(40, 30, TileSettings(**base, windows="same")) == plan_tiles(40, 30, tile=8, pad=2)
    fixed = plan_for(40, 30, TileSettings(**base, windows="fixed"))
    assert {(t.src.height, t.src.width) for t in fixed.tiles} == {(12, 12)}


def test_default_pad_is_the_radius_where_cheap():
    from sr_runtime.info import ModelInfo

    assert default_pad(ModelInfo("SRVGGNetCompact", 4, receptive_radius=18)) == 18
    assert default_pad(ModelInfo("SRVGGNetCompact", 4, receptive_radius=34)) == 34
    assert default_pad(ModelInfo("RRDBNet", 4, receptive_radius=349)) == 10
    assert default_pad(ModelInfo("unknown", 4)) == 10  # no radius in the metadata (older export, probed)


def test_plan_whole_image():
    plan = plan_tiles(30, 20, tile=0, pad=10)
    assert len(plan) == 1 and plan.window == (30, 20)


def test_tiled_equals_whole_bit_for_bit():
    """Property test over random sizes, tiles, pads, batches, pre-pads and size multiples (seeded loop)."""
    rng = np.random.default_rng(1234)
    for case in range(60):
        m = int(rng.choice([1, 1, 2, 4]))
        scale = int(rng.choice([1, 2, 4])) if m == 1 else (2 if m == 2 else 1)
        model = FakeModel(scale=scale, layers=int(rng.integers(1, 4)), m=m, seed=case)
        h, w = int(rng.integers(1, 41)), int(rng.integers(1, 41))
        dtype = [np.uint8, np.uint16, np.float32][case % 3]
        img = rng.random((h, w, 3)).astype(np.float32)
        if dtype != np.float32:
            img = np.round(img * np.iinfo(dtype).max).astype(dtype)
        tile = int(rng.integers(1, 33))
        pad = model.radius + int(rng.integers(0, 4))
        batch, pre_pad = int(rng.integers(1, 5)), int(rng.integers(0, 6))
        got = run_tiled(img, model, scale=scale, tile=tile, pad=pad, batch=batch, pre_pad=pre_pad,
                        size_multiple=m)
        ref = whole(img, model, scale, pre_pad, m, dtype)
        assert got.shape == (h * scale, w * scale, 3) and got.dtype == dtype
        assert np.array_equal(got, ref), (
            f"case {case}: {h}x{w} m={m} s={scale} tile={tile} pad={pad} batch={batch} pre_pad={pre_pad}: "
            f"max diff {np.abs(got.astype(np.float64) - ref).max()} at "
            f"{np.unravel_index(np.argmax(np.abs(got.astype(np.float64) - ref)), got.shape)}")


def test_too_small_pad_is_detected():
    """Sanity check of the property test: with pad < radius tiles do differ from the whole image."""
    model = FakeModel(scale=2, layers=3)
    img = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    got = run_tiled(img, model, scale=2, tile=8, pad=0)
    assert not np.array_equal(got, whole(img, model, 2, 0, 1, np.float32))


def test_bgr_views_and_out_canvas():
    """A reversed-channel input view and a strided BGRA canvas work without copies by the caller."""
    model = FakeModel(scale=2, layers=1)
    img = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    canvas = np.zeros((18, 26, 4), np.uint8)
    run_tiled(img[..., ::-1], model, scale=2, tile=4, pad=model.radius, out=canvas[..., 2::-1])
    ref = whole(np.ascontiguousarray(img[..., ::-1]), model, 2, 0, 1, np.uint8)[..., ::-1]
    assert np.array_equal(canvas[..., :3], ref) and (canvas[..., 3] == 0).all()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 3)])
def test_tiny_images(shape):
    """Images smaller than pre_pad/tile_pad (reflect padding fails upstream)."""
    model = FakeModel(scale=4, layers=2, m=1)
    img = np.full(shape + (3,), 100, np.uint8)
    out = run_tiled(img, model, scale=4, tile=2, pad=10, pre_pad=10, batch=3)
    assert out.shape == (shape[0] * 4, shape[1] * 4, 3)
    assert np.array_equal(out, whole(img, model, 4, 10, 1, np.uint8))
    model4 = FakeModel(scale=1, layers=1, m=4)
    assert run_tiled(img, model4, scale=1, tile=4, pad=8, size_multiple=4).shape == shape + (3,)


def test_batches_have_one_shape_and_pad_to_tile():
    model = FakeModel(scale=2, layers=1)
    img = np.zeros((37, 23, 3), np.uint8)
    run_tiled(img, model, scale=2, tile=8, pad=4, batch=4)
    assert {c[1:] for c in model.calls} == {(3, 16, 16)}
    assert [c[0] for c in model.calls] == [4, 4, 4, 3]  # 5 x 3 tiles
    model.calls.clear()
    small = np.zeros((5, 6, 3), np.uint8)
    out = run_tiled(small, model, scale=2, tile=8, pad=4, windows="fixed")
    assert model.calls == [(1, 3, 16, 16)] and out.shape == (10, 12, 3)
    model.calls.clear()  # "any" and "same" get the same-shape plan (clipped windows for "any": issue 12)
    for kind in ("any", "same"):
        run_tiled(small, model, TileSettings(scale=2, tile=8, pad=4, windows=kind))
    assert model.calls == [(1, 3, 5, 6)] * 2


def test_non_finite_tiles_rerun_in_fp32():
    good = FakeModel(scale=2, layers=1)

    def half(x):  # a reduced-precision model that overflows on bright tiles
        y = good(x)
        y[x.reshape(len(x), -1).mean(1) > 0.5] = np.inf
        return y

    img = np.zeros((16, 16, 3), np.uint8)
    img[8:] = 250
    msgs: list[str] = []
    out = run_tiled(img, with_fp32_redo(half, good, msgs.append), scale=2, tile=8, pad=2, batch=2)
    ref = run_tiled(img, good, scale=2, tile=8, pad=2)
    assert np.array_equal(out, ref)
    assert len(msgs) == 1 and "fp32" in msgs[0]
    with pytest.raises(SrError, match="NaN"):
        run_tiled(img, half, scale=2, tile=8, pad=2)
    with pytest.raises(SrError, match="even in fp32"):
        run_tiled(img, with_fp32_redo(half, half), scale=2, tile=8, pad=2)


def test_out_of_memory_halves_batch_then_tile():
    model = FakeModel(scale=2, layers=1)

    def limited(x):
        if x.size > 3 * 20 * 20:
            raise OutOfMemory("Failed to allocate memory")
        return model(x)

    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    msgs: list[str] = []
    out = run_tiled(img, limited, scale=2, tile=32, pad=model.radius, batch=4, min_tile=8, notify=msgs.append)
    assert np.array_equal(out, run_tiled(img, model, scale=2, tile=0, pad=0))
    assert msgs and "tile 16" in msgs[-1]

    def never(x):
        raise OutOfMemory("Failed to allocate memory")

    with pytest.raises(OutOfMemory, match="batch 1"):
        run_tiled(img, never, scale=2, tile=0, pad=2, min_tile=8)


def test_bad_model_output_shape():
    with pytest.raises(SrError, match="scale"):
        run_tiled(np.zeros((4, 4, 3), np.uint8), lambda x: x, scale=2, tile=0, pad=0)


def test_window_arithmetic_has_one_home():
    """core = tile rounded down (at least one multiple), pad rounded up, window = core + 2 pad; max_core inverts it."""
    assert (core_side(256, 1), pad_side(10, 1), window_side(256, 10)) == (256, 10, 276)
    assert (core_side(130, 4), pad_side(10, 4), window_side(130, 10, 4)) == (128, 12, 152)
    assert core_side(3, 4) == 4 and window_side(3, 0, 4) == 4
    for m in (1, 2, 4):
        for tile in range(m, 80, 3):
            for pad in range(0, 13):
                assert max_core(window_side(tile, pad, m), pad, m) == core_side(tile, m)
                # a plan's windows never exceed window_side, and reach it on a large image
                plan = plan_tiles(160 * m, 160 * m, tile=tile, pad=pad, size_multiple=m)
                assert max(plan.window) <= window_side(tile, pad, m)
    assert max_core(20, 10, 1) == 0  # no room beside the pad: the caller decides


def test_settings_object_and_keyword_form_agree():
    model = FakeModel(scale=2, layers=1)
    img = np.random.default_rng(5).integers(0, 256, (21, 17, 3), dtype=np.uint8)
    settings = TileSettings(scale=2, tile=8, pad=2, batch=3, pre_pad=1)
    a = run_tiled(img, model, settings)
    b = run_tiled(img, model, scale=2, tile=8, pad=2, batch=3, pre_pad=1)
    assert np.array_equal(a, b)
    assert plan_for(22, 18, settings) == plan_tiles(22, 18, tile=8, pad=2)
    with pytest.raises(TypeError, match="not both"):
        run_tiled(img, model, settings, tile=4)
    with pytest.raises(ValueError, match="batch"):
        TileSettings(scale=2, batch=0)
    with pytest.raises(ValueError, match="windows"):
        TileSettings(scale=2, windows="clipped")  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        settings.tile = 4  # type: ignore[misc]  # frozen
