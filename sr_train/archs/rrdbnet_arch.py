"""The RRDBNet network (upstream ``basicsr/archs/rrdbnet_arch.py``); its spec is in :mod:`sr_train.archs.rrdbnet`."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sr_train.archs.blocks import RRDB, pixel_unshuffle
from sr_train.archs.rrdbnet import UNSHUFFLE


class RRDBNet(nn.Module):
    """Upstream ``basicsr.archs.rrdbnet_arch.RRDBNet``.

    Scale 2 and 1 pixel-unshuffle the input first (by 2 and 4), so H and W must be multiples of 2 and 4.
    Input ``(N, num_in_ch, H, W)`` in [0, 1]; output ``(N, num_out_ch, H*scale, W*scale)``.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in UNSHUFFLE:
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4, got {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_block = num_block
        self.num_grow_ch = num_grow_ch
        self.conv_first = nn.Conv2d(num_in_ch * UNSHUFFLE[scale] ** 2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = UNSHUFFLE[self.scale]
        feat = pixel_unshuffle(x, factor) if factor > 1 else x
        feat = self.conv_first(feat)
        body_feat = self.conv_body(self.body(feat))
        feat = feat + body_feat
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))
