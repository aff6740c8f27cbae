"""SRVGGNetCompact (Real-ESRGAN's compact VGG-style network), official state-dict keys."""

from __future__ import annotations

import math
import re
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from sr_train.archs.registry import ArchSpec, StateDict

ACT_TYPES = ("prelu", "relu", "leakyrelu")


class SRVGGNetCompact(nn.Module):
    """Upstream ``realesrgan.archs.srvgg_arch.SRVGGNetCompact``.

    ``body``: conv3x3(in->feat), act, num_conv x [conv3x3(feat->feat), act], conv3x3(feat->out*upscale^2);
    then PixelShuffle(upscale) plus the nearest-upsampled input.

    Input ``(N, num_in_ch, H, W)`` in [0, 1]; output ``(N, num_out_ch, H*upscale, W*upscale)``.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        if act_type not in ACT_TYPES:
            raise ValueError(f"act_type must be one of {ACT_TYPES}, got {act_type!r}")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_conv = num_conv
        self.upscale = upscale
        self.act_type = act_type

        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
        self.body.append(self._act(act_type, num_feat))
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(self._act(act_type, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    @staticmethod
    def _act(act_type: str, num_feat: int) -> nn.Module:
        if act_type == "relu":
            return nn.ReLU(inplace=True)
        if act_type == "prelu":
            return nn.PReLU(num_parameters=num_feat)
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        return out + base


_CONV_KEY = re.compile(r"^body\.(\d+)\.weight$")


def _conv_indices(sd: StateDict) -> list[int]:
    return sorted(int(m.group(1)) for k in sd if (m := _CONV_KEY.match(k)) and getattr(sd[k], "ndim", 0) == 4)


def detect(sd: StateDict) -> bool:
    """SRVGGNetCompact keys: ``body.0.weight`` (4-D) and no RRDBNet keys."""
    w = sd.get("body.0.weight")
    return w is not None and getattr(w, "ndim", 0) == 4 and "conv_first.weight" not in sd


def infer_hparams(sd: StateDict) -> dict[str, Any]:
    """Recover every hyperparameter from the keys and shapes.

    ``num_out_ch`` cannot be separated from ``upscale`` in the last conv (``out * upscale^2`` channels); as
    upstream models always have ``num_out_ch == num_in_ch``, that is assumed. relu and leakyrelu carry no
    weights and cannot be told apart: non-prelu checkpoints are read as leakyrelu unless told otherwise.
    """
    convs = _conv_indices(sd)
    first = sd["body.0.weight"]
    num_feat, num_in_ch = int(first.shape[0]), int(first.shape[1])
    last = sd[f"body.{convs[-1]}.weight"]
    num_out_ch = num_in_ch
    upscale = int(round(math.sqrt(int(last.shape[0]) / num_out_ch)))
    prelu = "body.1.weight" in sd
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "num_feat": num_feat,
        "num_conv": len(convs) - 2,
        "upscale": upscale,
        "act_type": "prelu" if prelu else "leakyrelu",
    }


def receptive_radius(hp: dict[str, Any]) -> int:
    """num_conv + 2 chained 3x3 convs at input resolution: radius num_conv + 2."""
    return int(hp.get("num_conv", 16)) + 2


def flops_per_pixel(hp: dict[str, Any]) -> float:
    """Conv FLOPs (2 x MACs) per input pixel."""
    f, n = hp.get("num_feat", 64), hp.get("num_conv", 16)
    cin, cout, s = hp.get("num_in_ch", 3), hp.get("num_out_ch", 3), hp.get("upscale", 4)
    return 2.0 * 9 * (cin * f + n * f * f + f * cout * s * s)


DEFAULTS = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}


def build(**hparams: Any) -> SRVGGNetCompact:
    """Build with official defaults for any hyperparameter not given."""
    return SRVGGNetCompact(**{**DEFAULTS, **hparams})


SRVGG_COMPACT = ArchSpec(
    id="SRVGGNetCompact",
    build=build,
    detect=detect,
    infer_hparams=infer_hparams,
    receptive_radius=receptive_radius,
    scale=lambda hp: int(hp.get("upscale", 4)),
    size_multiple=lambda hp: 1,
    flops_per_pixel=flops_per_pixel,
    defaults=DEFAULTS,
)
