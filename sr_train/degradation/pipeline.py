"""SecondOrderDegradation: the Real-ESRGAN batch synthesis (``RealESRGANModel.feed_data``), device-agnostic.

The random choices of one batch are drawn first into a :class:`DegradationPlan` (plain data: tests count
its fields without running an image op), then :meth:`SecondOrderDegradation.apply` runs the ops, drawing
only the pixel noise. Every draw comes from the ``torch.Generator`` passed in, in a fixed order, so the
same generator state gives the same batch bit for bit on the same device.

Order (upstream): USM-sharpen GT -> blur 1 (of the USM GT; of the plain GT with ``lq_from_usm: false``) ->
random resize 1 -> noise 1 -> clamp -> JPEG 1 ->
[p=second_blur_prob] blur 2 -> random resize 2 (relative to GT / scale) -> noise 2 -> either
[resize to GT / scale + sinc] then JPEG 2, or JPEG 2 then [resize + sinc] (p=0.5 each) -> clamp and round
to 8 bits -> paired random crop of GT, USM GT and LQ. With ``clean_prob`` (ours), some samples skip every
noise and JPEG step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sr_train.degradation import ops
from sr_train.degradation.config import RESIZE_MODES, DegradationConfig

Tensor = torch.Tensor
UpDown = Literal["up", "down", "keep"]
UPDOWN: tuple[UpDown, ...] = ("up", "down", "keep")


@dataclass(frozen=True)
class StagePlan:
    """Random choices of one degradation order (first or second)."""

    updown: UpDown
    """Resize direction (drawn with ``resize_prob``)."""
    resize_scale: float
    """Resize factor (1.0 for keep)."""
    resize_mode: str
    """One of :data:`~sr_train.degradation.config.RESIZE_MODES`."""
    noise: Literal["gaussian", "poisson"]
    """Noise type for the whole batch."""
    noise_level: tuple[float, ...]
    """Per sample: Gaussian sigma (8-bit units) or Poisson scale."""
    gray: tuple[bool, ...]
    """Per sample: gray (channel-shared) noise."""
    jpeg_quality: tuple[float, ...]
    """Per sample JPEG quality."""


@dataclass(frozen=True)
class DegradationPlan:
    """Every random choice of one batch except the pixel noise."""

    first: StagePlan
    """First order."""
    second_blur: bool
    """Whether blur 2 runs."""
    second: StagePlan
    """Second order."""
    sinc_first: bool
    """True: [resize back + sinc] then JPEG 2; False: JPEG 2 then [resize back + sinc]."""
    final_mode: str
    """Mode of the resize back to GT / scale."""
    crop_top: int
    """Top of the LQ crop (GT crop at crop_top * scale)."""
    crop_left: int
    """Left of the LQ crop."""
    clean: tuple[bool, ...] = ()
    """Per sample: no noise and no JPEG (``clean_prob``; empty when ``clean_prob`` is 0, nothing drawn)."""


class SecondOrderDegradation:
    """Degrade a batch of GT crops into LQ inputs (Real-ESRGAN second-order model).

    Args:
        cfg: the degradation options.
        scale: super-resolution factor (LQ = GT / scale).
        gt_size: side of the final GT crop (LQ crop = gt_size / scale); must be a multiple of ``scale``.
    """

    def __init__(self, cfg: DegradationConfig, scale: int = 4, gt_size: int = 256) -> None:
        if not isinstance(scale, int) or scale < 1:
            raise ValueError(f"scale: {scale!r} must be a positive integer")
        if not isinstance(gt_size, int) or gt_size < scale or gt_size % scale:
            raise ValueError(f"gt_size: {gt_size!r} must be a positive multiple of scale ({scale})")
        self.cfg = cfg
        self.scale = scale
        self.gt_size = gt_size

    # ----------------------------------------------------------------------------------------- drawing

    def check_shape(self, h: int, w: int) -> None:
        """Raise ``ValueError`` unless an (h, w) GT batch fits: multiples of scale, at least gt_size.

        Call it at start-up with ``crop_pad_size`` to fail before training rather than at the first batch.
        """
        if h % self.scale or w % self.scale:
            raise ValueError(
                f"GT batch {h}x{w} is not a multiple of scale {self.scale}; set crop_pad_size to a multiple of it"
            )
        if h < self.gt_size or w < self.gt_size:
            raise ValueError(f"GT batch {h}x{w} is smaller than gt_size {self.gt_size}; raise crop_pad_size")

    def _stage(self, n: int, gen: torch.Generator, second: bool) -> StagePlan:
        c, s = self.cfg, "2" if second else ""
        resize_prob = getattr(c, "resize_prob" + s)
        lo, hi = getattr(c, "resize_range" + s)
        u = ops.rand((3,), gen).tolist()
        acc, updown = 0.0, UPDOWN[-1]
        for name, p in zip(UPDOWN, resize_prob):
            acc += p
            if u[0] < acc:
                updown = name
                break
        if updown == "up":
            factor = 1.0 + (hi - 1.0) * u[1]
        elif updown == "down":
            factor = lo + (1.0 - lo) * u[1]
        else:
            factor = 1.0
        mode = RESIZE_MODES[min(int(u[2] * len(RESIZE_MODES)), len(RESIZE_MODES) - 1)]
        gaussian = ops.rand((1,), gen).item() < getattr(c, "gaussian_noise_prob" + s)
        nlo, nhi = getattr(c, "noise_range" + s) if gaussian else getattr(c, "poisson_scale_range" + s)
        per = ops.rand((3, n), gen)  # level, gray, jpeg quality
        level = (nlo + (nhi - nlo) * per[0]).tolist()
        gray = (per[1] < getattr(c, "gray_noise_prob" + s)).tolist()
        qlo, qhi = getattr(c, "jpeg_range" + s)
        quality = (qlo + (qhi - qlo) * per[2]).tolist()
        return StagePlan(
            updown=updown,
            resize_scale=float(factor),
            resize_mode=mode,
            noise="gaussian" if gaussian else "poisson",
            noise_level=tuple(level),
            gray=tuple(bool(g) for g in gray),
            jpeg_quality=tuple(quality),
        )

    def sample_plan(self, n: int, h: int, w: int, gen: torch.Generator) -> DegradationPlan:
        """Draw every choice of a batch of ``n`` GT images of size ``h`` x ``w`` (no image work)."""
        self.check_shape(h, w)
        first = self._stage(n, gen, second=False)
        second_blur = ops.rand((1,), gen).item() < self.cfg.second_blur_prob
        second = self._stage(n, gen, second=True)
        u = ops.rand((4,), gen).tolist()
        # drawn only when used, so that clean_prob 0 leaves upstream's sequence of draws unchanged
        clean = (ops.rand((n,), gen) < self.cfg.clean_prob).tolist() if self.cfg.clean_prob > 0 else []
        lh, lw, lq_size = h // self.scale, w // self.scale, self.gt_size // self.scale
        return DegradationPlan(
            first=first,
            second_blur=bool(second_blur),
            second=second,
            sinc_first=u[0] < 0.5,
            final_mode=RESIZE_MODES[min(int(u[1] * len(RESIZE_MODES)), len(RESIZE_MODES) - 1)],
            crop_top=min(int(u[2] * (lh - lq_size + 1)), lh - lq_size),
            crop_left=min(int(u[3] * (lw - lq_size + 1)), lw - lq_size),
            clean=tuple(bool(c) for c in clean),
        )

    # ---------------------------------------------------------------------------------------- applying

    def _noise(self, x: Tensor, st: StagePlan, gen: torch.Generator, clean: tuple[bool, ...]) -> Tensor:
        level = torch.tensor(st.noise_level, dtype=torch.float32)
        if any(clean):  # level 0 adds exactly nothing; the noise is still drawn (same draws either way)
            level = level * (1.0 - torch.tensor(clean, dtype=torch.float32))
        gray = torch.tensor(st.gray, dtype=torch.float32)
        if st.noise == "gaussian":
            return ops.add_gaussian_noise(x, level, gray, gen)
        return ops.add_poisson_noise(x, level, gray, gen)

    def _jpeg(self, x: Tensor, quality: tuple[float, ...], clean: tuple[bool, ...]) -> Tensor:
        q = torch.tensor(quality, dtype=torch.float32)
        x = torch.clamp(x, 0, 1)
        if not any(clean):
            return ops.jpeg(x, q, self.cfg.jpeg_method)
        lossy = ~torch.tensor(clean)  # compress only the samples that are not clean
        out = x.clone()
        if bool(lossy.any()):
            on_dev = lossy.to(x.device)
            out[on_dev] = ops.jpeg(x[on_dev], q[lossy], self.cfg.jpeg_method)
        return out

    @torch.no_grad()
    def apply(
        self,
        gt: Tensor,
        kernel1: Tensor,
        kernel2: Tensor,
        sinc_kernel: Tensor,
        plan: DegradationPlan,
        gen: torch.Generator,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the degradation with the choices of ``plan``; draws only the pixel noise from ``gen``.

        Returns:
            ``(lq, gt_usm, gt)`` cropped: (N, 3, gt_size / scale, gt_size / scale) LQ in [0, 1] on the 8-bit
            grid, the USM-sharpened GT and the plain GT, both (N, 3, gt_size, gt_size).
        """
        n, _, h, w = gt.shape
        self.check_shape(h, w)
        gt = gt.float()
        gt_usm = ops.usm_sharp(gt)
        s = self.scale

        # first order
        st = plan.first
        aa = self.cfg.resize_antialias
        out = ops.filter2d(gt_usm if self.cfg.lq_from_usm else gt, kernel1)
        out = ops.resize(out, st.resize_mode, scale_factor=st.resize_scale, antialias=aa)
        out = self._noise(out, st, gen, plan.clean)
        out = self._jpeg(out, st.jpeg_quality, plan.clean)

        # second order
        st = plan.second
        if plan.second_blur:
            out = ops.filter2d(out, kernel2)
        out = ops.resize(
            out, st.resize_mode, size=(int(h / s * st.resize_scale), int(w / s * st.resize_scale)), antialias=aa
        )
        out = self._noise(out, st, gen, plan.clean)
        if plan.sinc_first:
            out = ops.resize(out, plan.final_mode, size=(h // s, w // s), antialias=aa)
            out = ops.filter2d(out, sinc_kernel)
            out = self._jpeg(out, st.jpeg_quality, plan.clean)
        else:
            out = self._jpeg(out, st.jpeg_quality, plan.clean)
            out = ops.resize(out, plan.final_mode, size=(h // s, w // s), antialias=aa)
            out = ops.filter2d(out, sinc_kernel)

        lq = torch.clamp((out * 255.0).round(), 0, 255) / 255.0
        (gt, gt_usm), lq = ops.paired_crop([gt, gt_usm], lq, self.gt_size, s, plan.crop_top, plan.crop_left)
        return lq.contiguous(), gt_usm.contiguous(), gt.contiguous()

    def __call__(
        self,
        gt: Tensor,
        kernel1: Tensor,
        kernel2: Tensor,
        sinc_kernel: Tensor,
        gen: torch.Generator,
        return_gt: bool = False,
    ) -> tuple[Tensor, ...]:
        """Degrade a batch.

        Args:
            gt: (N, 3, H, W) float32 RGB in [0, 1] on any device; H, W multiples of ``scale``, >= gt_size.
            kernel1: (N, 21, 21) first blur kernels (from the dataset).
            kernel2: (N, 21, 21) second blur kernels.
            sinc_kernel: (N, 21, 21) final sinc kernels (or identity pulses).
            gen: the generator for every random draw (any device; see :mod:`~sr_train.degradation.ops`).
            return_gt: also return the cropped plain GT (what the training-pair pool needs; upstream
                pools ``(lq, gt)`` and USM-sharpens the GT again after the pool).

        Returns:
            ``(lq, gt_usm)``, or ``(lq, gt_usm, gt)`` with ``return_gt``: LQ (N, 3, gt_size / scale, same)
            on the 8-bit grid; GTs (N, 3, gt_size, gt_size); all float32 on ``gt``'s device.
        """
        n, _, h, w = gt.shape
        plan = self.sample_plan(n, h, w, gen)
        lq, gt_usm, gt_crop = self.apply(gt, kernel1, kernel2, sinc_kernel, plan, gen)
        return (lq, gt_usm, gt_crop) if return_gt else (lq, gt_usm)
