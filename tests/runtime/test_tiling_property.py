"""Property tests of the tiler (hypothesis): every plan kind and window kind that tiling.py declares, over random
sizes, tiles, pads, pre-pads, size multiples, scales 1/2/4, batch sizes, channels and dtypes.

The kinds are read from tiling.py (``PLAN_KINDS`` where it exists, else ``plan_tiles``; the ``WindowShapes``
literal), so a new plan kind is tested here without edits. Examples are derandomised: CI runs the same ones.
"""

from __future__ import annotations

import typing

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sr_runtime import tiling
from tests.runtime.fakes import FakeModel
from tests.runtime.test_tiling import whole

PLANNERS: dict[str, typing.Callable] = dict(getattr(tiling, "PLAN_KINDS", None) or {"same": tiling.plan_tiles})
"""Plan kind -> planner ``(height, width, *, tile, pad, size_multiple) -> TilePlan``."""
WINDOWS: tuple[str, ...] = typing.get_args(tiling.WindowShapes)
"""What a backend may declare; ``plan_for`` picks the plan kind from it."""
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def requests(draw) -> tuple[int, int, int, int, int]:
    """(height, width, tile, pad, size_multiple) with sizes already multiples of the size multiple."""
    m = draw(st.sampled_from([1, 2, 4]))
    h = draw(st.integers(1, 48)) * m
    w = draw(st.integers(1, 48)) * m
    return h, w, draw(st.integers(0, 40)), draw(st.integers(0, 12)), m


@SETTINGS
@given(kind=st.sampled_from(sorted(PLANNERS)), req=requests())
def test_every_plan_kind_partitions_the_image_with_enough_context(kind, req):
    h, w, tile, pad, m = req
    plan = PLANNERS[kind](h, w, tile=tile, pad=pad, size_multiple=m)
    cover = np.zeros((h, w), np.int32)
    limit = tiling.window_side(tile, pad, m)
    for t in plan.tiles:
        s, c = t.src, t.core
        assert 0 <= s.y0 <= c.y0 < c.y1 <= s.y1 <= h and 0 <= s.x0 <= c.x0 < c.x1 <= s.x1 <= w, (t, plan)
        assert s.y0 % m == 0 and s.x0 % m == 0 and s.height % m == 0 and s.width % m == 0
        if tile and not (tile >= h and tile >= w):
            assert s.height <= limit and s.width <= limit, (t, limit)
        for lo, hi, clo, chi, size in ((s.y0, s.y1, c.y0, c.y1, h), (s.x0, s.x1, c.x0, c.x1, w)):
            assert lo == 0 or clo - lo >= pad, f"{kind}: less than pad {pad} of context above/left of {t}"
            assert hi == size or hi - chi >= pad, f"{kind}: less than pad {pad} of context below/right of {t}"
        cover[c.slices()] += 1
    assert (cover == 1).all(), f"{kind}: the cores do not partition {h}x{w}"
    if kind == "same":
        assert {(t.src.height, t.src.width) for t in plan.tiles} == {plan.window}
    if kind == "clipped":
        _check_clipped(plan, h, w, tile, pad, m)


def _check_clipped(plan, h, w, tile, pad, m):
    """Windows are their core plus the pad, clipped at the border (never shifted), at most two sides per axis a
    multiple apart, and the plan executes no more pixels than upstream's grid of ``tile`` cores."""
    p, t = tiling.pad_side(pad, m), tiling.core_side(tile, m)
    for x in plan.tiles:
        s, c = x.src, x.core
        assert (s.y0, s.x0) == (max(c.y0 - p, 0), max(c.x0 - p, 0)) and (s.y1, s.x1) == (min(c.y1 + p, h),
                                                                                         min(c.x1 + p, w)), x
    for sides in ({x.src.height for x in plan.tiles}, {x.src.width for x in plan.tiles}):
        assert len(sides) <= 2 and max(sides) - min(sides) <= m, sides
    executed = sum(x.src.height * x.src.width for x in plan.tiles)
    upstream = 1
    for size in (h, w):
        n = -(-size // t) if tile else 1
        upstream *= size + 2 * p * (n - 1)
    assert executed <= upstream, (executed, upstream)


@st.composite
def runs(draw) -> dict:
    m = draw(st.sampled_from([1, 1, 2, 4]))
    scale = draw(st.sampled_from([1, 2, 4])) if m == 1 else {2: 2, 4: 1}[m]
    layers = draw(st.integers(1, 3))
    radius = m * (layers + 1) - 1
    return {
        "m": m, "scale": scale, "layers": layers,
        "h": draw(st.integers(1, 40)), "w": draw(st.integers(1, 40)),
        "channels": draw(st.sampled_from([1, 3, 4])),
        "dtype": draw(st.sampled_from(["uint8", "uint16", "float32"])),
        "tile": draw(st.integers(0, 32)),
        "pad": radius + draw(st.integers(0, 3)),
        "batch": draw(st.integers(1, 5)),
        "pre_pad": draw(st.integers(0, 5)),
        "windows": draw(st.sampled_from(WINDOWS)),
        "seed": draw(st.integers(0, 2**16)),
    }


@SETTINGS
@given(r=runs())
def test_tiled_equals_whole_image_for_every_window_kind(r):
    """Shape and dtype always; bit-for-bit equality with the whole-image run whenever pad >= radius. A
    ``fixed`` window is edge-padded up to the engine's one shape when the image is smaller, which a zero-padding
    model sees near the bottom/right border: there the comparison leaves out the last ``radius`` pixels."""
    rng = np.random.default_rng(r["seed"])
    model = FakeModel(scale=r["scale"], layers=r["layers"], m=r["m"], channels=r["channels"], seed=r["seed"])
    dtype = np.dtype(r["dtype"])
    img = rng.random((r["h"], r["w"], r["channels"])).astype(np.float32)
    if dtype.kind == "u":
        img = np.round(img * np.iinfo(dtype).max).astype(dtype)
    s = tiling.TileSettings(scale=r["scale"], tile=r["tile"], pad=r["pad"], batch=r["batch"], pre_pad=r["pre_pad"],
                            size_multiple=r["m"], windows=r["windows"])
    got = tiling.run_tiled(img, model, s)
    assert got.shape == (r["h"] * r["scale"], r["w"] * r["scale"], r["channels"]) and got.dtype == dtype
    ref = whole(img, model, r["scale"], r["pre_pad"], r["m"], dtype)
    if r["windows"] == "fixed" and r["tile"]:
        cut = model.radius * r["scale"]
        got, ref = got[: max(0, got.shape[0] - cut), : max(0, got.shape[1] - cut)], \
            ref[: max(0, ref.shape[0] - cut), : max(0, ref.shape[1] - cut)]
    diff = np.abs(got.astype(np.float64) - ref)
    assert np.array_equal(got, ref), f"{r}: max diff {diff.max()} at {np.unravel_index(np.argmax(diff), diff.shape)}"
