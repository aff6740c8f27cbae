"""TensorRT engine building, tested without a GPU through TensorRT-RTX (ahead-of-time build on the CPU).

Running the engines needs a GPU: see tests/runtime/test_trt_backend.py and the ``trt`` rows of test_parity.py.
"""

from __future__ import annotations

import json
import sys

import pytest

from sr_runtime.backends.trt import (
    ShapeOutsideProfileError,
    ShapeProfile,
    TrtMissingError,
    build_engine,
    cached_engine,
    export_engine,
    load_flavor,
    profile_for,
    read_sidecar,
    sidecar_path,
)
from sr_runtime.errors import SrError
from sr_runtime.info import ModelInfo
from tests.export.conftest import registry_cases

rtx = pytest.importorskip("tensorrt_rtx", reason="the [trt-rtx] extra (tensorrt-rtx) is not installed")


# ------------------------------------------------------------------------------------------- profiles
def test_profile_from_tile():
    p = ShapeProfile.from_tile(256, 10, 4)
    assert p.min == (1, 3, 1, 1) and p.opt == p.max == (4, 3, 276, 276)
    q = ShapeProfile.from_tile(30, 1, 1, channels=1, size_multiple=4)
    # the tiler's windows (sr_runtime.tiling.window_side): tile 30 -> core 28, pad 1 -> 4 on a multiple of 4
    assert q.min == (1, 1, 4, 4) and q.max == (1, 1, 36, 36)
    assert ShapeProfile.from_dict(p.to_dict()) == p
    assert p.key() == "1x3x1x1-4x3x276x276-4x3x276x276"


def test_profile_covers_the_tilers_windows():
    """sr-export's profile and sr-run's engine cache cover exactly the windows the tiler makes."""
    from sr_runtime.tiling import core_side, plan_tiles, window_side

    for m in (1, 2, 4):
        info = ModelInfo(arch="RRDBNet", scale=4 // m, size_multiple=m)
        for tile, pad in ((256, 10), (130, 9), (30, 1), (64, 0)):
            p = profile_for(info, tile, pad, 2)
            assert p.max == (2, 3, window_side(tile, pad, m), window_side(tile, pad, m))
            size = 4 * core_side(tile, m)  # full-size cores: the largest windows a run makes
            plan = plan_tiles(size, size, tile=tile, pad=pad, size_multiple=m)
            assert p.contains((2, 3, *plan.window)) and plan.window == p.max[2:]


@pytest.mark.parametrize("args, flag", [((0, 10, 4), "--tile"), ((64, -1, 4), "--tile-pad"),
                                        ((64, 10, 0), "--max-batch"), ((64.5, 10, 4), "--tile"),
                                        ((True, 10, 4), "--tile")])
def test_profile_rejects_bad_flags(args, flag):
    with pytest.raises(SrError, match=flag):
        ShapeProfile.from_tile(*args)


def test_profile_rejects_unordered_shapes():
    with pytest.raises(SrError, match="axis H"):
        ShapeProfile((1, 3, 64, 8), (1, 3, 32, 32), (1, 3, 64, 64))
    with pytest.raises(SrError, match="channel"):
        ShapeProfile((1, 1, 8, 8), (1, 3, 32, 32), (1, 3, 64, 64))


def test_shape_outside_profile_is_a_clear_error():
    p = ShapeProfile.from_tile(64, 8, 2)
    p.check((2, 3, 80, 17))
    with pytest.raises(ShapeOutsideProfileError) as e:
        p.check((1, 3, 81, 32), "m.engine")
    text = e.value.one_line()
    assert text.startswith("m.engine: input 1x3x81x32: height 81 is outside the engine's profile [1, 80]")
    assert "sr-export --trt" in text and "\n" not in text
    with pytest.raises(ShapeOutsideProfileError, match="batch 3"):
        p.check((3, 3, 8, 8))


# ------------------------------------------------------------------------------------------- builds
@pytest.mark.parametrize("precision", ["float32", "float16"])
@pytest.mark.parametrize("case", registry_cases())
def test_rtx_engine_builds_on_cpu(case, precision, exported, tmp_path):
    from sr_runtime.info import read_onnx_info

    _, path = exported(case, fp16=precision == "float16")
    info = read_onnx_info(path)
    profile = ShapeProfile.from_tile(32, 4, 2, info.in_channels, info.size_multiple)
    engine = tmp_path / f"{case}.engine"
    sidecar = export_engine(path, engine, profile, flavor="rtx", workspace_mib=256)
    assert engine.stat().st_size > 10_000
    on_disk = read_sidecar(engine)
    assert on_disk == json.loads(sidecar_path(engine).read_text()) == sidecar
    assert on_disk["flavor"] == "rtx" and on_disk["trt_version"] == rtx.__version__
    assert on_disk["precision"] == precision and on_disk["model"]["precision"] == precision
    assert on_disk["profile"] == profile.to_dict() and on_disk["model"]["extra"]["profile"] == profile.to_dict()
    assert "8.6" in on_disk["built_for"]["compute_capabilities"] and on_disk["built_for"]["gpu"] is None
    assert on_disk["model"]["arch"] == info.arch and on_disk["model"]["scale"] == info.scale
    assert on_disk["workspace_mib"] == 256 and len(on_disk["onnx_sha256"]) == 64
    assert (on_disk["input_name"], on_disk["output_name"]) == ("input", "output")


def test_rtx_explicit_targets_and_unknown_target(exported):
    _, path = exported("SRVGGNetCompact")
    p = ShapeProfile.from_tile(16, 0, 1)
    _, side = build_engine(path, p, flavor="rtx", compute_capabilities=["8.9"])
    assert side["built_for"]["compute_capabilities"] == ["8.9"]
    with pytest.raises(SrError, match="knows no compute capability SM42"):
        build_engine(path, p, flavor="rtx", compute_capabilities=["4.2"])


def test_profile_channels_must_match_model(exported):
    _, path = exported("SRVGGNetCompact")
    with pytest.raises(SrError, match="profile has 1 channels"):
        build_engine(path, ShapeProfile.from_tile(16, 0, 1, channels=1), flavor="rtx")


def test_build_from_a_bad_onnx(tmp_path):
    from sr_runtime.errors import ModelFileError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf\xff\xff")
    with pytest.raises(ModelFileError):
        build_engine(bad, ShapeProfile.from_tile(16, 0, 1), flavor="rtx")
    with pytest.raises(ModelFileError, match="not found"):
        build_engine(tmp_path / "missing.onnx", ShapeProfile.from_tile(16, 0, 1), flavor="rtx")


def test_cached_engine_reuses_the_build(exported, tmp_path, monkeypatch):
    import sr_runtime.backends.trt.cache as tc

    _, path = exported("SRVGGNetCompact")
    p = ShapeProfile.from_tile(16, 2, 1)
    first = cached_engine(path, p, flavor="rtx", cache_dir=tmp_path)
    assert first.parent == tmp_path and first.name.endswith("_portable.engine")
    assert f"rtx-{rtx.__version__}" in first.name and p.key() in first.name
    calls = []
    monkeypatch.setattr(tc, "build_engine", lambda *a, **k: calls.append(a))
    assert cached_engine(path, p, flavor="rtx", cache_dir=tmp_path) == first and calls == []
    other = ShapeProfile.from_tile(24, 2, 1)  # another profile is another key
    with pytest.raises(TypeError):  # the stub returns None: proves a rebuild was attempted
        cached_engine(path, other, flavor="rtx", cache_dir=tmp_path)
    assert len(calls) == 1


def test_missing_extra_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    with pytest.raises(TrtMissingError) as e:
        load_flavor("auto")
    assert e.value.one_line() == "--trt needs the [trt] or [trt-rtx] extra"
    with pytest.raises(TrtMissingError) as e:
        load_flavor("tensorrt")
    assert e.value.one_line() == "--trt needs the [trt] extra"


def test_tensorrt_flavour_needs_a_gpu(exported, monkeypatch):
    """Full TensorRT autotunes on the GPU it builds on: without one the error says so and offers rtx."""
    import sr_runtime.backends.trt.build as tb
    from sr_runtime.backends.trt import TrtFlavor

    fake = TrtFlavor("tensorrt", rtx)  # the same API; only the flavour name differs
    monkeypatch.setattr(tb, "load_flavor", lambda flavor="auto": fake)
    monkeypatch.setattr(tb, "current_gpu", lambda device=0: None)
    _, path = exported("SRVGGNetCompact")
    with pytest.raises(SrError, match="no CUDA device.*--trt-flavor rtx"):
        build_engine(path, ShapeProfile.from_tile(16, 0, 1), flavor="tensorrt")


def test_network_flags_per_version():
    import types

    from sr_runtime.backends.trt import TrtFlavor

    def fake(version, has_flag=True):
        flags = types.SimpleNamespace(STRONGLY_TYPED=1) if has_flag else types.SimpleNamespace()
        return TrtFlavor("tensorrt", types.SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=flags))

    assert fake("10.13.0").network_flags() == 1 << 1  # 10.x: strongly typed for the fp16 ONNX
    assert fake("11.1.0").network_flags() == 0  # 11.x: always strongly typed, the flag is deprecated
    assert TrtFlavor("rtx", rtx).network_flags() == 1 << int(rtx.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
