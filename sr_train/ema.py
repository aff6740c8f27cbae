"""Exponential moving average of the generator, saved as ``params_ema`` (upstream ``model_ema``)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class ModelEma:
    """A frozen copy of a network whose parameters track ``decay * ema + (1 - decay) * net`` after each step.

    Buffers are copied as they are. The copy starts equal to the network (upstream ``model_ema(0)``).

    Args:
        net: the trained network (unwrapped, not the DDP wrapper).
        decay: EMA decay in [0, 1).
    """

    def __init__(self, net: nn.Module, decay: float = 0.999) -> None:
        self.decay = float(decay)
        self.module = copy.deepcopy(net).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, decay: float | None = None) -> None:
        """Blend ``net``'s parameters into the EMA copy (``decay=0`` copies them)."""
        d = self.decay if decay is None else float(decay)
        ema_p = dict(self.module.named_parameters())
        for k, p in net.named_parameters():
            ema_p[k].mul_(d).add_(p.detach(), alpha=1.0 - d)
        ema_b = dict(self.module.named_buffers())
        for k, b in net.named_buffers():
            ema_b[k].copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA network's state dict (official keys; saved as ``params_ema``)."""
        return self.module.state_dict()

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Restore the EMA weights (strict)."""
        self.module.load_state_dict(sd, strict=True)
