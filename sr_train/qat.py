"""Quantization-aware fine-tuning (the ``qat`` config of sr-train) and the checkpoint entry it leaves.

A run starts from a float checkpoint (``path.pretrain_network_g``). :func:`prepare_student` turns the generator
into the fake-quant model of :mod:`sr_train.quant` (the quantizers sit exactly where ``sr-export --int8`` puts
its QDQ nodes) and keeps a frozen float copy as the teacher. :class:`QatStep` initialises the quantizers on its
first batch by post-training quantization (equalization, ranges, bias correction), then trains the weights
through the fake quantization (straight-through gradients) with L1 to the teacher's output (``qat.target:
teacher``) or to the ground truth. The activation ranges stay as calibrated.

Checkpoints keep the official layout: ``params`` holds only the network's own keys (loadable by upstream and by
:func:`sr_train.checkpoint.load_generator`); the quantizers, the recipe and the teacher's path and sha256 go
into a separate ``int8`` entry (:func:`split_state`), which ``sr-export --int8`` reads
(:func:`read_int8_entry`): it exports those ranges instead of calibrating, and measures the int8 model
against the teacher (:func:`teacher_model`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sr_train import quant
from sr_train.engine.distributed import unwrap
from sr_train.engine.esrnet import RealESRNetStep

LOG = logging.getLogger("sr_train")
INT8_KEY = "int8"
"""The checkpoint entry written by QAT (next to ``params``)."""
ACT_SUFFIXES = (".act.scale", ".act.zero_point", ".act.enabled")


def recipe_of(cfg: Any) -> quant.Recipe:
    """The :class:`~sr_train.quant.Recipe` of a ``qat`` config section."""
    return quant.Recipe(fp32_convs=tuple(cfg.fp32_convs), equalize=cfg.equalize, ranges=cfg.ranges)


def prepare_student(net: nn.Module, cfg: Any) -> nn.Module:
    """Make ``net`` (in place) the fake-quant student; return a frozen float copy of it, the teacher."""
    teacher = copy.deepcopy(net).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    quant.prepare(net, tuple(cfg.fp32_convs))
    return teacher


def calibrated(net: nn.Module) -> bool:
    """Whether the quantizers of ``net`` have ranges (set at the first step, restored on resume)."""
    return all(bool(q.act.enabled) for _, q in quant.quant_convs(net))


class QatStep(RealESRNetStep):
    """One QAT step: ``loss = L1(student(lq), teacher(lq) or gt)``; the first one calibrates the student.

    Args:
        cfg: the training config (``cfg.qat`` set).
        net_g: the student (prepared by :func:`prepare_student`).
        device: the training device.
        teacher: the frozen float model.
    """

    name = "QAT"

    def __init__(self, cfg: Any, net_g: nn.Module, device: torch.device, teacher: nn.Module) -> None:
        super().__init__(cfg, net_g, device)
        self.teacher = teacher.to(device)

    def _calibrate(self, lq: torch.Tensor) -> None:
        net = unwrap(self.net_g)
        was_training = net.training
        c = quant.quantize(net.eval(), [lq[i:i + 1] for i in range(lq.shape[0])], recipe_of(self.cfg.qat))
        net.train(was_training)
        LOG.info("qat: calibrated on %d crops: %d convs int8, float: %s", lq.shape[0], len(c.quantized),
                 ", ".join(c.fp32) or "none")

    def optimize(self, it: int, lq: torch.Tensor, gt: torch.Tensor, gt_usm: torch.Tensor) -> dict[str, torch.Tensor]:
        """Calibrate once, then one step of L1 through the fake quantization."""
        if not calibrated(unwrap(self.net_g)):
            self._calibrate(lq)
        if self.cfg.qat.target == "teacher":
            with torch.no_grad():
                target = self.teacher(lq)
        else:
            target = self.pixel_target(gt, gt_usm)
        self.optimizers["g"].zero_grad(set_to_none=True)
        out = self.net_g(lq)
        loss = self.cri_pix(out.float(), target)
        self._backward_step("g", loss)
        return {"l_g_pix": loss.detach()}


# ------------------------------------------------------------------------------------------ checkpoints
def split_state(sd: Mapping[str, torch.Tensor], cfg: Any, teacher: str | None) -> tuple[dict[str, torch.Tensor],
                                                                                        dict[str, Any]]:
    """Split a student's state dict into official ``params`` and the ``int8`` checkpoint entry."""
    params = {k: v for k, v in sd.items() if not k.endswith(ACT_SUFFIXES)}
    ranges = {}
    for k, v in sd.items():
        if k.endswith(".act.scale"):
            name = k.removesuffix(".act.scale")
            if bool(sd[f"{name}.act.enabled"]):
                s, z = float(v), int(sd[f"{name}.act.zero_point"])
                ranges[name] = [(quant.QMIN_ACT - z) * s, (quant.QMAX_ACT - z) * s]
    entry: dict[str, Any] = {"format": 1, "recipe": recipe_of(cfg).to_dict(), "ranges": ranges,
                             "summary": {"target": cfg.target}}
    if teacher:
        from sr_train.checkpoint import file_sha256

        entry["teacher"] = {"path": str(Path(teacher).resolve()), "sha256": file_sha256(teacher)}
    return params, entry


def read_int8_entry(path: str | Path) -> dict[str, Any] | None:
    """The ``int8`` entry of a QAT checkpoint (``None`` for any other checkpoint; ``weights_only`` load)."""
    p = Path(path)
    if p.suffix.lower() == ".safetensors":
        return None
    obj = torch.load(p, map_location="cpu", weights_only=True)
    entry = obj.get(INT8_KEY) if isinstance(obj, dict) else None
    return entry if isinstance(entry, dict) and "ranges" in entry and "recipe" in entry else None


def teacher_model(path: str | Path) -> nn.Module | None:
    """The float teacher named by a QAT checkpoint, if that file is still there with the same sha256."""
    entry = read_int8_entry(path)
    t = (entry or {}).get("teacher")
    if not t or not Path(t["path"]).is_file():
        return None
    from sr_train.checkpoint import load_generator

    g = load_generator(t["path"])
    return g.model if g.sha256 == t["sha256"] else None
