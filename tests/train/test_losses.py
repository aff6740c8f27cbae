"""Losses: VGG19 keys match torchvision's, weights load from a local file only, missing file -> ConfigError;
perceptual/GAN/pixel values behave as BasicSR's; EMA blends as upstream."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sr_train.config_schema import GANLossConfig, PerceptualLossConfig, PixelLossConfig
from sr_train.ema import ModelEma
from sr_train.errors import ConfigError
from sr_train.losses import GANLoss, PerceptualLoss, PixelLoss, VGG19Features, build_vgg

# torchvision vgg19().features: Conv2d at these indices (16 convs), ReLU after each, MaxPool at 4, 9, 18, 27, 36
TV_CONV_IDX = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
SMALL = {"conv1_2": 0.1, "conv2_2": 0.1}


def test_vgg19_keys_match_torchvision_layout():
    vgg = VGG19Features(["conv5_4"])
    keys = list(vgg.state_dict())
    assert keys == [f"features.{i}.{w}" for i in TV_CONV_IDX for w in ("weight", "bias")]
    assert isinstance(vgg.features[36 - 2], nn.Conv2d) and len(vgg.features) == 35  # truncated after conv5_4
    assert tuple(vgg.state_dict()["features.34.weight"].shape) == (512, 512, 3, 3)


def test_vgg_weights_from_local_file(tmp_path):
    src = VGG19Features(["conv2_2"])
    with torch.no_grad():
        for p in src.parameters():
            p.normal_()
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(2, 2)  # a full torchvision file also has the classifier
    path = tmp_path / "vgg19.pth"
    torch.save(sd, path)
    vgg = build_vgg(PerceptualLossConfig(layer_weights=SMALL, vgg_weights=str(path)))
    assert torch.equal(vgg.state_dict()["features.7.weight"], sd["features.7.weight"])
    assert not any(p.requires_grad for p in vgg.parameters()) and not vgg.training


def test_vgg_missing_file_and_unset_are_config_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        build_vgg(PerceptualLossConfig(layer_weights=SMALL, vgg_weights=str(tmp_path / "nope.pth")))
    assert "train.perceptual_opt.vgg_weights" in err.value.one_line() and "not found" in err.value.one_line()
    with pytest.raises(ConfigError, match="train.perceptual_opt.vgg_weights is not set"):
        build_vgg(PerceptualLossConfig(layer_weights=SMALL))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, wrong)
    with pytest.raises(ConfigError, match="features.0.weight"):
        build_vgg(PerceptualLossConfig(layer_weights=SMALL, vgg_weights=str(wrong)))


def test_perceptual_loss_zero_for_equal_and_grad_flows():
    loss = PerceptualLoss(PerceptualLossConfig(layer_weights=SMALL, allow_random_init=True))
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    assert loss(x, x.detach()).item() == 0.0
    y = torch.rand(1, 3, 16, 16)
    val = loss(x, y)
    val.backward()
    assert val.item() > 0 and x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.vgg.parameters())
    # features before ReLU can be negative (the pre-activation, as upstream's conv*_* layers)
    feats = loss.vgg(torch.rand(1, 3, 8, 8))
    assert feats["conv1_2"].min() < 0


def test_pixel_and_gan_losses():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert PixelLoss(PixelLossConfig(loss_weight=2.0))(a, b).item() == pytest.approx(1.0)
    gan = GANLoss(GANLossConfig(loss_weight=0.1))
    pred = torch.zeros(2, 1, 4, 4)
    bce = torch.log(torch.tensor(2.0)).item()  # BCE-with-logits at logit 0
    assert gan(pred, True, is_disc=True).item() == pytest.approx(bce)
    assert gan(pred, True, is_disc=False).item() == pytest.approx(0.1 * bce)
    assert gan(torch.full_like(pred, 20.0), False, is_disc=True).item() == pytest.approx(20.0, abs=1e-6)


def test_ema_blend():
    net = nn.Linear(2, 2)
    ema = ModelEma(net, decay=0.9)
    assert torch.equal(ema.module.weight, net.weight) and not ema.module.weight.requires_grad
    before = ema.module.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)
    expected = 0.9 * before + 0.1 * net.weight.detach()
    assert torch.allclose(ema.module.weight, expected)
    assert set(ema.state_dict()) == set(net.state_dict())
