"""The SRVGGNetCompact network (upstream ``realesrgan/archs/srvgg_arch.py``); its spec is in :mod:`sr_train.archs.srvgg`."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

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
