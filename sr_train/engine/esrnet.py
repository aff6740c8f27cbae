"""RealESRNet step: L1 pixel loss on the generator (the first Real-ESRGAN stage).

A step owns the optimizers, schedulers and (on CUDA with ``use_amp``) the gradient scalers of its stage; the
Trainer owns the data, the EMA and the checkpoints. ``state_dict``/``load_state_dict`` cover everything the step
owns, for exact resume.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from sr_train.config_schema import OptimConfig, TrainConfig
from sr_train.engine.distributed import unwrap
from sr_train.losses import PixelLoss


def make_optimizer(params: Any, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam with the config's lr, betas and weight decay."""
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.MultiStepLR:
    """MultiStepLR stepped once per iteration (milestones are iteration counts, as upstream)."""
    s = cfg.train.scheduler
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(s.milestones), gamma=s.gamma)


class RealESRNetStep:
    """One optimisation step of RealESRNet: ``loss = pixel_opt(net_g(lq), gt_usm or gt)``.

    Args:
        cfg: the training config.
        net_g: the generator (possibly DDP-wrapped), already on ``device``.
        device: the training device.
    """

    name = "RealESRNet"

    def __init__(self, cfg: TrainConfig, net_g: nn.Module, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.net_g = net_g
        self.amp = bool(cfg.train.use_amp and device.type == "cuda")
        self.cri_pix = PixelLoss(cfg.train.pixel_opt).to(device) if cfg.train.pixel_opt else None
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "g": make_optimizer([p for p in unwrap(net_g).parameters() if p.requires_grad], cfg.train.optim_g)
        }
        self.schedulers = {k: make_scheduler(o, cfg) for k, o in self.optimizers.items()}
        self.scalers = {k: torch.amp.GradScaler("cuda") for k in self.optimizers} if self.amp else {}

    # ------------------------------------------------------------------ helpers
    def autocast(self) -> contextlib.AbstractContextManager:
        """fp16 autocast on CUDA with ``use_amp``, else a no-op."""
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _backward_step(self, key: str, loss: torch.Tensor) -> None:
        opt = self.optimizers[key]
        if self.amp:
            scaler = self.scalers[key]
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    def pixel_target(self, gt: torch.Tensor, gt_usm: torch.Tensor) -> torch.Tensor:
        return gt_usm if self.cfg.train.l1_gt_usm else gt

    # ------------------------------------------------------------------ API
    def optimize(self, it: int, lq: torch.Tensor, gt: torch.Tensor, gt_usm: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run one step on a batch.

        Args:
            it: the 1-based iteration being run.
            lq: ``(N, 3, h, w)`` float32 RGB in [0, 1] on the device.
            gt, gt_usm: ``(N, 3, h*scale, w*scale)`` float32 RGB in [0, 1] (plain and USM-sharpened).

        Returns:
            Detached scalar losses by name (``l_g_pix``, ...).
        """
        self.optimizers["g"].zero_grad(set_to_none=True)
        with self.autocast():
            out = self.net_g(lq)
        loss = self.cri_pix(out.float(), self.pixel_target(gt, gt_usm))
        self._backward_step("g", loss)
        return {"l_g_pix": loss.detach()}

    def step_schedulers(self) -> None:
        """Advance every scheduler by one iteration."""
        for s in self.schedulers.values():
            s.step()

    def lr(self) -> float:
        """Current generator learning rate."""
        return float(self.optimizers["g"].param_groups[0]["lr"])

    def extra_nets(self) -> dict[str, nn.Module]:
        """Networks besides the generator that the step trains (none here)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Optimizers, schedulers and scalers."""
        return {
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        for k, o in self.optimizers.items():
            o.load_state_dict(sd["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(sd["schedulers"][k])
        for k, s in self.scalers.items():
            if k in sd.get("scalers", {}):
                s.load_state_dict(sd["scalers"][k])
