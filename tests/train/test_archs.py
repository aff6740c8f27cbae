"""Architectures: parameter counts, registry round trips, detection and receptive radius (over REGISTRY)."""

from __future__ import annotations

import pytest
import torch

from sr_train.archs import REGISTRY
from sr_train.archs.discriminator import UNetDiscriminatorSN
from tests.conftest import TINY_HPARAMS

OFFICIAL_PARAMS = [
    ("SRVGGNetCompact", {"num_feat": 64, "num_conv": 16, "upscale": 4}, 621_424),
    ("SRVGGNetCompact", {"num_feat": 64, "num_conv": 32, "upscale": 4}, 1_213_296),
    ("RRDBNet", {"num_feat": 64, "num_block": 23, "num_grow_ch": 32, "scale": 4}, 16_697_987),
]

VARIANTS = [
    ("RRDBNet", {"scale": 1}),
    ("RRDBNet", {"scale": 2}),
    ("RRDBNet", {"scale": 4, "num_block": 2}),
    ("RRDBNet", {"num_in_ch": 1, "num_out_ch": 1}),
    ("SRVGGNetCompact", {"upscale": 2}),
    ("SRVGGNetCompact", {"act_type": "prelu", "num_conv": 3}),
    ("SRVGGNetCompact", {"act_type": "leakyrelu"}),
    ("SRVGGNetCompact", {"num_in_ch": 1, "num_out_ch": 1}),
]


@pytest.mark.parametrize(("arch_id", "hp", "count"), OFFICIAL_PARAMS)
def test_official_parameter_counts(arch_id, hp, count):
    model = REGISTRY.get(arch_id).build(**hp)
    assert sum(p.numel() for p in model.parameters()) == count


def test_every_registered_arch_has_tiny_hparams():
    assert set(REGISTRY.ids()) <= set(TINY_HPARAMS), "add tiny hyperparameters for new archs in tests/conftest.py"


def test_registry_rejects_duplicates_and_lists_known_ids():
    from sr_runtime.errors import ModelFileError
    from sr_train.archs.registry import ArchRegistry
    from sr_train.archs.srvgg import SRVGG_COMPACT

    reg = ArchRegistry()
    reg.add(SRVGG_COMPACT)
    with pytest.raises(ValueError, match="twice"):
        reg.add(SRVGG_COMPACT)
    with pytest.raises(ModelFileError, match="Known architectures: SRVGGNetCompact"):
        reg.get("EDSR")


@pytest.mark.parametrize("arch_id", REGISTRY.ids())
def test_round_trip_tiny(arch_id, tiny_generator):
    """build -> state_dict -> detect -> infer_hparams -> identical model and output."""
    model = tiny_generator(arch_id)
    spec = REGISTRY.get(arch_id)
    sd = model.state_dict()
    assert REGISTRY.detect(sd) is spec
    hp = spec.infer_hparams(sd)
    assert hp == {**spec.defaults, **TINY_HPARAMS[arch_id]}
    rebuilt = spec.build(**hp).eval()
    rebuilt.load_state_dict(sd, strict=True)
    x = torch.rand(1, hp["num_in_ch"], 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


@pytest.mark.parametrize(("arch_id", "overrides"), VARIANTS)
def test_detect_recovers_variant_hparams(arch_id, overrides):
    spec = REGISTRY.get(arch_id)
    hp = {**spec.defaults, **TINY_HPARAMS[arch_id], **overrides}
    sd = spec.build(**hp).state_dict()
    assert REGISTRY.detect(sd) is spec
    assert spec.infer_hparams(sd) == hp
    mult = spec.size_multiple(hp)
    x = torch.rand(1, hp["num_in_ch"], 4 * mult, 4 * mult)
    with torch.no_grad():
        y = spec.build(**hp)(x)
    s = spec.scale(hp)
    assert y.shape == (1, hp["num_out_ch"], 4 * mult * s, 4 * mult * s)


def test_relu_reads_as_non_prelu():
    """relu and leakyrelu carry no weights: both read back as leakyrelu (documented in infer_hparams)."""
    spec = REGISTRY.get("SRVGGNetCompact")
    sd = spec.build(**{**TINY_HPARAMS["SRVGGNetCompact"], "act_type": "relu"}).state_dict()
    assert spec.infer_hparams(sd)["act_type"] == "leakyrelu"


@pytest.mark.parametrize("arch_id", REGISTRY.ids())
def test_receptive_radius_bounds_influence(arch_id, tiny_generator):
    """Changing one input pixel changes no output pixel farther than receptive_radius input pixels away."""
    model = tiny_generator(arch_id)
    spec = REGISTRY.get(arch_id)
    hp = spec.infer_hparams(model.state_dict())
    radius, s, mult = spec.receptive_radius(hp), spec.scale(hp), spec.size_multiple(hp)
    size = ((2 * radius + 8) // mult + 1) * mult
    x = torch.rand(1, 3, size, size)
    c = size // 2
    x2 = x.clone()
    x2[..., c, c] += 0.5
    with torch.no_grad():
        diff = (model(x2) - model(x)).abs().amax(dim=(0, 1))
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    assert len(ys) > 0
    reach = max((ys // s - c).abs().max().item(), (xs // s - c).abs().max().item())
    assert reach <= radius, f"{arch_id}: influence reaches {reach} > radius {radius}"


def test_discriminator_keys_and_output():
    d = UNetDiscriminatorSN(3, num_feat=8)
    keys = set(d.state_dict())
    assert {"conv0.weight", "conv1.weight_orig", "conv1.weight_u", "conv1.weight_v", "conv9.bias"} <= keys
    assert d(torch.rand(2, 3, 32, 32)).shape == (2, 1, 32, 32)
    assert REGISTRY.detect(d.state_dict()) is None, "the discriminator is not a registered generator"


def test_flops_are_positive_and_scale_with_depth():
    spec = REGISTRY.get("SRVGGNetCompact")
    assert spec.flops_per_pixel({"num_conv": 32}) > spec.flops_per_pixel({"num_conv": 16}) > 0
    rr = REGISTRY.get("RRDBNet")
    assert rr.flops_per_pixel({"num_block": 23}) > rr.flops_per_pixel({"num_block": 6}) > 0
