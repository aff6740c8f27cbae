"""RealESRGAN step: L1 + perceptual + vanilla GAN loss against UNetDiscriminatorSN, G/D alternation as upstream
``RealESRGANModel.optimize_parameters``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sr_train.config_schema import TrainConfig
from sr_train.engine.distributed import unwrap
from sr_train.engine.esrnet import RealESRNetStep, make_optimizer, make_scheduler
from sr_train.losses import GANLoss, PerceptualLoss


class RealESRGANStep(RealESRNetStep):
    """One step of RealESRGAN.

    The generator is updated when ``it % net_d_iters == 0 and it > net_d_init_iters`` with
    ``pixel + perceptual + gan`` (the discriminator frozen); then the discriminator is updated every iteration
    with the real (``gt``, or ``gt_usm`` with ``gan_gt_usm``) and the detached fake, each backward separately.

    Args:
        cfg: the training config (``model_type: RealESRGANModel``).
        net_g: the generator (possibly DDP-wrapped) on ``device``.
        net_d: the discriminator (possibly DDP-wrapped) on ``device``.
        device: the training device.
    """

    name = "RealESRGAN"

    def __init__(self, cfg: TrainConfig, net_g: nn.Module, net_d: nn.Module, device: torch.device) -> None:
        super().__init__(cfg, net_g, device)
        self.net_d = net_d
        t = cfg.train
        self.cri_perceptual = PerceptualLoss(t.perceptual_opt).to(device) if t.perceptual_opt else None
        self.cri_gan = GANLoss(t.gan_opt).to(device)
        if t.optim_d is None or t.gan_opt is None:
            from sr_train.errors import ConfigError

            raise ConfigError("train.optim_d and train.gan_opt are required for RealESRGANModel")
        self.optimizers["d"] = make_optimizer(unwrap(net_d).parameters(), t.optim_d)
        self.schedulers["d"] = make_scheduler(self.optimizers["d"], cfg)
        if self.amp:
            self.scalers["d"] = torch.amp.GradScaler("cuda")

    def extra_nets(self) -> dict[str, nn.Module]:
        return {"net_d": unwrap(self.net_d)}

    def _set_d_grad(self, flag: bool) -> None:
        for p in unwrap(self.net_d).parameters():
            p.requires_grad_(flag)

    def optimize(self, it: int, lq: torch.Tensor, gt: torch.Tensor, gt_usm: torch.Tensor) -> dict[str, torch.Tensor]:
        t = self.cfg.train
        l1_gt = gt_usm if t.l1_gt_usm else gt
        percep_gt = gt_usm if t.percep_gt_usm else gt
        gan_gt = gt_usm if t.gan_gt_usm else gt
        losses: dict[str, torch.Tensor] = {}
        update_g = it % t.net_d_iters == 0 and it > t.net_d_init_iters

        # ---- generator (discriminator frozen; called unwrapped so DDP does not expect D gradients)
        self._set_d_grad(False)
        self.optimizers["g"].zero_grad(set_to_none=True)
        if update_g:
            with self.autocast():
                output = self.net_g(lq)
                fake_g_pred = unwrap(self.net_d)(output)
            output = output.float()
            total = output.new_zeros(())
            if self.cri_pix is not None:
                l_pix = self.cri_pix(output, l1_gt)
                total = total + l_pix
                losses["l_g_pix"] = l_pix.detach()
            if self.cri_perceptual is not None:
                l_percep = self.cri_perceptual(output, percep_gt)
                total = total + l_percep
                losses["l_g_percep"] = l_percep.detach()
            l_gan = self.cri_gan(fake_g_pred.float(), True, is_disc=False)
            total = total + l_gan
            losses["l_g_gan"] = l_gan.detach()
            self._backward_step("g", total)
        else:
            with torch.no_grad(), self.autocast():
                output = self.net_g(lq).float()

        # ---- discriminator
        self._set_d_grad(True)
        opt_d = self.optimizers["d"]
        opt_d.zero_grad(set_to_none=True)
        scaler = self.scalers.get("d")
        with self.autocast():
            real_pred = self.net_d(gan_gt)
        l_d_real = self.cri_gan(real_pred.float(), True, is_disc=True)
        (scaler.scale(l_d_real) if scaler else l_d_real).backward()
        with self.autocast():
            fake_pred = self.net_d(output.detach().clone())
        l_d_fake = self.cri_gan(fake_pred.float(), False, is_disc=True)
        (scaler.scale(l_d_fake) if scaler else l_d_fake).backward()
        if scaler:
            scaler.step(opt_d)
            scaler.update()
        else:
            opt_d.step()
        losses["l_d_real"] = l_d_real.detach()
        losses["l_d_fake"] = l_d_fake.detach()
        losses["out_d_real"] = real_pred.detach().float().mean()
        losses["out_d_fake"] = fake_pred.detach().float().mean()
        return losses

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        sd["net_d"] = unwrap(self.net_d).state_dict()
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        unwrap(self.net_d).load_state_dict(sd["net_d"], strict=True)
        super().load_state_dict(sd)
