"""Checkpoint loading from untrusted files and atomic saving in the official layout."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from sr_runtime.errors import ModelFileError
from sr_train.archs import REGISTRY
from sr_train.archs.rrdbnet import to_old_layout
from sr_train.checkpoint import load_generator, read_state_dict, save_checkpoint
from tests.conftest import TINY_HPARAMS


def _perturbed(sd, delta=0.01):
    return {k: v + delta if v.is_floating_point() else v for k, v in sd.items()}


def _same(sd_a, sd_b):
    return sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)


@pytest.mark.parametrize("arch_id", REGISTRY.ids())
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_save_load_round_trip(arch_id, suffix, tiny_generator, tmp_path):
    model = tiny_generator(arch_id)
    params = model.state_dict()
    ema = _perturbed(params)
    path = save_checkpoint(tmp_path / f"g{suffix}", params=params, params_ema=ema)
    g = load_generator(path)
    assert g.spec.id == arch_id
    assert g.source_key == ("params_ema" if suffix == ".pth" else "")
    assert _same(g.model.state_dict(), ema), "params_ema must be preferred over params"
    assert g.hparams == {**g.spec.defaults, **TINY_HPARAMS[arch_id]}
    assert len(g.sha256) == 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temp files left behind"


@pytest.mark.parametrize("arch_id", REGISTRY.ids())
def test_saved_file_loads_with_official_semantics(arch_id, tiny_generator, tmp_path):
    """Upstream RealESRGANer: torch.load, take params_ema (else params), load_state_dict(strict=True)."""
    model = tiny_generator(arch_id)
    path = save_checkpoint(tmp_path / "g.pth", params=model.state_dict(), params_ema=_perturbed(model.state_dict()))
    loadnet = torch.load(path, map_location="cpu", weights_only=True)
    keyname = "params_ema" if "params_ema" in loadnet else "params"
    fresh = REGISTRY.get(arch_id).build(**TINY_HPARAMS[arch_id])
    fresh.load_state_dict(loadnet[keyname], strict=True)
    assert set(loadnet) == {"params", "params_ema"}


def test_params_only_bare_and_prefixed(tiny_generator, tmp_path):
    model = tiny_generator("SRVGGNetCompact")
    sd = model.state_dict()
    save_checkpoint(tmp_path / "p.pth", params=sd)
    assert load_generator(tmp_path / "p.pth").source_key == "params"
    torch.save(sd, tmp_path / "bare.pth")
    assert load_generator(tmp_path / "bare.pth").source_key == ""
    torch.save({"params": {f"module._orig_mod.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pth")
    assert _same(load_generator(tmp_path / "ddp.pth").model.state_dict(), sd)


def test_old_esrgan_layout_round_trip(tiny_generator, tmp_path):
    model = tiny_generator("RRDBNet")
    sd = model.state_dict()
    old = to_old_layout(sd)
    assert "model.0.weight" in old and "model.1.sub.0.RDB1.conv1.0.weight" in old and "model.10.bias" in old
    torch.save(old, tmp_path / "old.pth")
    g = load_generator(tmp_path / "old.pth")
    assert g.spec.id == "RRDBNet" and _same(g.model.state_dict(), sd)


def test_rrdb_trunk_layout(tiny_generator, tmp_path):
    sd = tiny_generator("RRDBNet").state_dict()
    names = {"conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv"}
    trunk = {}
    for k, v in sd.items():
        head, _, tail = k.partition(".")
        if head == "body":
            n, rdb, rest = tail.split(".", 2)
            trunk[f"RRDB_trunk.{n}.{rdb.upper()}.{rest}"] = v
        else:
            trunk[f"{names.get(head, head)}.{tail}"] = v
    torch.save(trunk, tmp_path / "trunk.pth")
    assert _same(load_generator(tmp_path / "trunk.pth").model.state_dict(), sd)


def test_official_checkpoint_loads(official_anime):
    g = load_generator(official_anime)
    assert g.spec.id == "SRVGGNetCompact" and g.source_key == "params"
    assert g.hparams == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4,
                         "act_type": "prelu"}
    assert sum(p.numel() for p in g.model.parameters()) == 621_424


class _Payload:
    """Unpickling this runs os.system: weights_only must refuse it before that happens."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"params": {"x": torch.zeros(1)}, "evil": _Payload(marker)}, path)
    with pytest.raises(ModelFileError, match="refused") as info:
        load_generator(path)
    assert not marker.exists(), "the payload ran"
    assert str(path) in info.value.one_line()


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("empty.pth", b"", "empty"),
        ("notes.pth", b"this is a text file, not weights\n" * 4, "not a PyTorch checkpoint"),
        ("image.pth", b"\x89PNG\r\n\x1a\n" + bytes(200), "not a PyTorch checkpoint"),
        ("bad.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage}", "not a valid safetensors"),
    ],
)
def test_not_a_checkpoint(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=match) as info:
        load_generator(path)
    line = info.value.one_line()
    assert "\n" not in line and str(path) in line


def test_truncated_and_missing(tiny_generator, tmp_path):
    path = save_checkpoint(tmp_path / "g.pth", params=tiny_generator("SRVGGNetCompact").state_dict())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated|corrupt|not a PyTorch"):
        load_generator(path)
    with pytest.raises(ModelFileError, match="not found"):
        load_generator(tmp_path / "nope.pth")


def test_unknown_architecture_lists_known(tmp_path):
    torch.save({"params": {"encoder.weight": torch.zeros(4, 3, 3, 3)}}, tmp_path / "edsr.pth")
    with pytest.raises(ModelFileError, match="unknown architecture.*RRDBNet, SRVGGNetCompact"):
        load_generator(tmp_path / "edsr.pth")


def test_wrong_size_key_named(tiny_generator, tmp_path):
    sd = dict(tiny_generator("RRDBNet").state_dict())
    sd["conv_hr.weight"] = torch.zeros(8, 8, 5, 5)
    torch.save({"params": sd}, tmp_path / "mixed.pth")
    with pytest.raises(ModelFileError, match=r"conv_hr\.weight.*shape"):
        load_generator(tmp_path / "mixed.pth")


def test_atomic_save_leaves_nothing_on_failure(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "g.pth", params={"w": torch.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_read_state_dict_strips_and_prefers_ema(tmp_path):
    torch.save({"params": {"a": torch.zeros(1)}, "params_ema": {"module.a": torch.ones(1)}}, tmp_path / "x.pth")
    sd, key = read_state_dict(tmp_path / "x.pth")
    assert key == "params_ema" and torch.equal(sd["a"], torch.ones(1))
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(b"not a pickle")


def test_read_state_dict_honours_a_preferred_key(tmp_path):
    torch.save({"params": {"a": torch.zeros(1)}, "params_ema": {"a": torch.ones(1)}}, tmp_path / "x.pth")
    sd, key = read_state_dict(tmp_path / "x.pth", key="params")
    assert key == "params" and torch.equal(sd["a"], torch.zeros(1))
