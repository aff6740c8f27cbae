"""Losses of the two Real-ESRGAN stages: L1 pixel loss, VGG19 perceptual loss and the vanilla GAN loss.

The VGG19 is our own module (torchvision does not install beside our torch) with torchvision's state-dict keys
(``features.N.weight``/``.bias``), so an ImageNet ``vgg19`` weights file saved from torchvision loads as is.
Weights come only from a local file named in the config (``train.perceptual_opt.vgg_weights``), read with
``torch.load(weights_only=True)``; nothing is downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from sr_train.config_schema import VGG19_LAYERS, GANLossConfig, PerceptualLossConfig, PixelLossConfig
from sr_train.errors import ConfigError

LOG = logging.getLogger("sr_train")

VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
"""torchvision's ``cfgs["E"]``: conv widths, ``M`` = 2x2 max-pool."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG_WEIGHTS_KEY = "train.perceptual_opt.vgg_weights"
VGG19_KEY_MSG = f"{VGG_WEIGHTS_KEY}:"


class PixelLoss(nn.Module):
    """Weighted L1 loss (BasicSR ``L1Loss``). Inputs ``(N, C, H, W)`` float, same shape."""

    def __init__(self, cfg: PixelLossConfig) -> None:
        super().__init__()
        self.weight = cfg.loss_weight
        self.reduction = cfg.reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weight * F.l1_loss(pred, target, reduction=self.reduction)


class VGG19Features(nn.Module):
    """torchvision ``vgg19().features`` (same keys), truncated after the deepest requested layer.

    ``forward(x)`` takes ``(N, 3, H, W)`` RGB in [0, 1] (or [-1, 1] with ``range_norm``) and returns
    ``{layer_name: feature}`` for the requested BasicSR layer names (``conv1_2`` ... ``conv5_4``: before ReLU).
    """

    def __init__(self, layers: list[str], use_input_norm: bool = True, range_norm: bool = False) -> None:
        super().__init__()
        self.layers = list(layers)
        idx = {name: i for i, name in enumerate(VGG19_LAYERS)}
        last = max(idx[n] for n in self.layers)
        modules: list[nn.Module] = []
        cin = 3
        for v in VGG19_CFG:
            if v == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = nn.Sequential(*modules[: last + 1])
        self._wanted = {idx[n]: n for n in self.layers}
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def load_torchvision(self, sd: Mapping[str, torch.Tensor], path: Path | str) -> None:
        """Load the ``features.*`` tensors of a torchvision vgg19 state dict (classifier keys are ignored).

        Raises:
            ConfigError: a needed key is missing or has the wrong shape.
        """
        own = self.state_dict()
        picked = {}
        for k, v in own.items():
            src = sd.get(k)
            if src is None:
                src = sd.get(f"vgg.{k}")  # BasicSR-style wrappers
            if src is None:
                raise ConfigError(f"VGG19 key '{k}' is missing", "Use torchvision's vgg19 ImageNet state dict.", path)
            if tuple(src.shape) != tuple(v.shape):
                raise ConfigError(f"VGG19 key '{k}' has shape {tuple(src.shape)}, expected {tuple(v.shape)}",
                                  "Use torchvision's vgg19 (not vgg16 or vgg19_bn) weights.", path)
            picked[k] = src
        self.load_state_dict(picked, strict=True)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._wanted:
                out[self._wanted[i]] = x  # ReLUs are not in-place, so pre-ReLU features stay intact
        return out


def load_vgg_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a local VGG19 weights file (weights-only pickle or .safetensors).

    Raises:
        ConfigError: the file is missing or unreadable; the message names ``train.perceptual_opt.vgg_weights``.
    """
    from sr_runtime.errors import ModelFileError
    from sr_train.checkpoint import read_state_dict

    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"{VGG19_KEY_MSG} file not found",
            f"Set {VGG_WEIGHTS_KEY} to a local torchvision vgg19 ImageNet weights file (vgg19-dcbb9e9d.pth); "
            "nothing is downloaded.", p,
        )
    try:
        sd, _ = read_state_dict(p)
    except ModelFileError as exc:
        raise ConfigError(f"{VGG19_KEY_MSG} {exc.message}", exc.hint, p) from None
    return sd


def build_vgg(cfg: PerceptualLossConfig) -> VGG19Features:
    """The frozen VGG19 feature extractor for a perceptual-loss config.

    Raises:
        ConfigError: no ``vgg_weights`` and no ``allow_random_init``, or a missing/bad weights file.
    """
    vgg = VGG19Features(list(cfg.layer_weights), cfg.use_input_norm, cfg.range_norm)
    if cfg.vgg_weights:
        vgg.load_torchvision(load_vgg_state(cfg.vgg_weights), cfg.vgg_weights)
    elif cfg.allow_random_init:
        LOG.warning("perceptual loss uses a RANDOMLY INITIALISED VGG19 (train.perceptual_opt.allow_random_init); "
                    "fine for tests, useless for real training")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            vgg = VGG19Features(list(cfg.layer_weights), cfg.use_input_norm, cfg.range_norm)
    else:
        raise ConfigError(
            f"{VGG_WEIGHTS_KEY} is not set",
            "Point it to a local torchvision vgg19 ImageNet weights file (vgg19-dcbb9e9d.pth).",
        )
    vgg.eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    return vgg


class PerceptualLoss(nn.Module):
    """BasicSR ``PerceptualLoss`` without the style term: sum over layers of ``w_l * criterion(f_l(x), f_l(gt))``
    times ``perceptual_weight``. Inputs ``(N, 3, H, W)`` RGB in [0, 1]. The VGG stays frozen and in eval mode."""

    def __init__(self, cfg: PerceptualLossConfig) -> None:
        super().__init__()
        self.vgg = build_vgg(cfg)
        self.layer_weights = dict(cfg.layer_weights)
        self.weight = cfg.perceptual_weight
        self.criterion = cfg.criterion

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.vgg.eval()
        return self

    def _dist(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.criterion == "l1":
            return F.l1_loss(a, b)
        if self.criterion == "l2":
            return F.mse_loss(a, b)
        return torch.norm(a - b, p="fro")

    def forward(self, x: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        fx = self.vgg(x)
        with torch.no_grad():
            fg = self.vgg(gt.detach())
        loss = x.new_zeros(())
        for k, w in self.layer_weights.items():
            loss = loss + self._dist(fx[k], fg[k]) * w
        return loss * self.weight


class GANLoss(nn.Module):
    """Vanilla GAN loss (BCE with logits) as BasicSR ``GANLoss(gan_type='vanilla')``.

    ``forward(pred, target_is_real, is_disc)``: ``pred`` is the discriminator's raw map; the generator's term
    is multiplied by ``loss_weight``, the discriminator's is not.
    """

    def __init__(self, cfg: GANLossConfig) -> None:
        super().__init__()
        self.real = cfg.real_label_val
        self.fake = cfg.fake_label_val
        self.weight = cfg.loss_weight

    def forward(self, pred: torch.Tensor, target_is_real: bool, is_disc: bool = False) -> torch.Tensor:
        target = torch.full_like(pred, self.real if target_is_real else self.fake)
        loss = F.binary_cross_entropy_with_logits(pred, target)
        return loss if is_disc else loss * self.weight


__all__ = ["GANLoss", "PerceptualLoss", "PixelLoss", "VGG19Features", "build_vgg", "load_vgg_state"]
