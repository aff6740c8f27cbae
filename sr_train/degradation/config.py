"""DegradationConfig: every figure of the Real-ESRGAN second-order degradation, validated at construction.

Key names and defaults are the upstream ones (``options/train_realesrgan_x4plus.yml`` of Real-ESRGAN 0.3.0).
Upstream splits them between the dataset section (kernel options, :data:`DATASET_KEYS`) and the top level
of the options file (resize / noise / JPEG options, :data:`MODEL_KEYS`); here they live in one frozen
value object, and the two tuples tell a YAML loader which upstream section each key comes from.

Importing this module is cheap: it needs neither torch nor numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

KERNEL_TYPES: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
"""The six blur kernel types of ``random_mixed_kernels``, in upstream order."""

RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
"""Interpolation modes drawn with equal probability at every random resize (as upstream)."""

KERNEL_PAD = 21
"""Every kernel (both blur kernels, the final sinc and its identity pulse) is zero-padded to this size."""

MIN_KERNEL_SIZE = 7
"""Smallest blur kernel size drawn (upstream ``kernel_range = [7, 9, ..., 21]``)."""

_DEFAULT_PROBS = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)


@dataclass(frozen=True)
class DegradationConfig:
    """All options of the second-order degradation (upstream names and defaults).

    Ranges are ``(low, high)`` tuples; ``__post_init__`` accepts lists (as YAML gives them) and converts them
    to tuples. Invalid values raise ``ValueError`` whose message starts with the field name.
    """

    # ---- first-order blur kernel (upstream dataset section) ----
    blur_kernel_size: int = 21
    """Largest blur kernel size; sizes are drawn uniformly from the odd numbers 7..blur_kernel_size."""
    kernel_list: tuple[str, ...] = KERNEL_TYPES
    """Kernel types to draw from (subset of :data:`KERNEL_TYPES`)."""
    kernel_prob: tuple[float, ...] = _DEFAULT_PROBS
    """Probability of each entry of ``kernel_list``; sums to 1."""
    sinc_prob: float = 0.1
    """Probability that the first kernel is a 2-D sinc (circular low-pass) instead of ``kernel_list``."""
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    """Gaussian sigma range (pixels), used for both axes."""
    betag_range: tuple[float, float] = (0.5, 4.0)
    """Shape parameter range of the generalized Gaussian kernels."""
    betap_range: tuple[float, float] = (1.0, 2.0)
    """Shape parameter range of the plateau kernels."""

    # ---- second-order blur kernel (upstream dataset section) ----
    blur_kernel_size2: int = 21
    """Largest size of the second blur kernel."""
    kernel_list2: tuple[str, ...] = KERNEL_TYPES
    """Kernel types of the second blur."""
    kernel_prob2: tuple[float, ...] = _DEFAULT_PROBS
    """Probabilities of ``kernel_list2``."""
    sinc_prob2: float = 0.1
    """Probability that the second kernel is a 2-D sinc."""
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    """Sigma range of the second blur."""
    betag_range2: tuple[float, float] = (0.5, 4.0)
    """Generalized Gaussian shape range of the second blur."""
    betap_range2: tuple[float, float] = (1.0, 2.0)
    """Plateau shape range of the second blur."""
    final_sinc_prob: float = 0.8
    """Probability of a final sinc filter (else the identity pulse)."""

    # ---- first degradation (upstream top level) ----
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    """Probabilities of up, down, keep."""
    resize_range: tuple[float, float] = (0.15, 1.5)
    """Down factors are drawn in [low, 1), up factors in [1, high)."""
    gaussian_noise_prob: float = 0.5
    """Probability of Gaussian noise for the batch (else Poisson noise)."""
    noise_range: tuple[float, float] = (1.0, 30.0)
    """Gaussian noise sigma range, in 8-bit units (divided by 255)."""
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    """Poisson noise scale range."""
    gray_noise_prob: float = 0.4
    """Per-sample probability that the noise is the same on all three channels."""
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    """JPEG quality range (continuous, as upstream DiffJPEG)."""

    # ---- second degradation (upstream top level) ----
    second_blur_prob: float = 0.8
    """Probability that the second blur is applied to the batch."""
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    """Probabilities of up, down, keep in the second degradation."""
    resize_range2: tuple[float, float] = (0.3, 1.2)
    """Second resize factor range (relative to GT / scale)."""
    gaussian_noise_prob2: float = 0.5
    """Probability of Gaussian (else Poisson) noise in the second degradation."""
    noise_range2: tuple[float, float] = (1.0, 25.0)
    """Second Gaussian sigma range (8-bit units)."""
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    """Second Poisson scale range."""
    gray_noise_prob2: float = 0.4
    """Per-sample gray-noise probability in the second degradation."""
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    """Second JPEG quality range."""

    # ---- ours (not upstream) ----
    jpeg_method: Literal["torch", "cv2"] = "torch"
    """``torch``: batched JPEG simulation in torch on the data's device (upstream DiffJPEG,
    ``differentiable=False``); ``cv2``: real libjpeg per sample via OpenCV (CPU round trip, integer
    quality). See docs/train_data.md for the measured costs."""
    lq_from_usm: bool = True
    """``True`` (upstream): the LQ is synthesised from the USM-sharpened GT, which matches an L1 target of
    ``gt_usm`` (``l1_gt_usm: true``). ``False``: from the plain GT; use it with ``l1_gt_usm: false``, else the
    model learns to undo the sharpening, i.e. to blur (measured: docs/default_model.md)."""
    resize_antialias: bool = False
    """``False`` (upstream): bilinear/bicubic downscales sample without a low-pass, so they alias.
    ``True``: ``F.interpolate(..., antialias=True)`` for bilinear/bicubic downscales, as photo software
    (and MATLAB ``imresize``) downscales; ``area`` is a box average either way."""
    clean_prob: float = 0.0
    """Per-sample probability that the sample gets no noise and no JPEG in either order (blur, resize and
    sinc still apply). ``0`` (upstream): every sample is noisy and compressed, and an L1 model trained so
    learns to smooth clean inputs."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        # checked in this order, so that the first bad key is the one reported
        self._check_kernels()
        self._check_probabilities()
        self._check_ranges()
        self._check_resizes()
        self._check_choices()

    def _check_kernels(self) -> None:
        for name in ("blur_kernel_size", "blur_kernel_size2"):
            _check_kernel_size(name, getattr(self, name))
        for suffix in ("", "2"):
            _check_kernel_list(self, suffix)

    def _check_probabilities(self) -> None:
        for name in (
            "sinc_prob",
            "sinc_prob2",
            "final_sinc_prob",
            "gaussian_noise_prob",
            "gray_noise_prob",
            "second_blur_prob",
            "gaussian_noise_prob2",
            "gray_noise_prob2",
            "clean_prob",
        ):
            _check_prob(name, getattr(self, name))

    def _check_ranges(self) -> None:
        for name in ("blur_sigma", "blur_sigma2", "noise_range", "noise_range2"):
            _check_range(name, getattr(self, name), low=0.0, strict_low=True)
        for name in ("poisson_scale_range", "poisson_scale_range2"):
            _check_range(name, getattr(self, name), low=0.0)
        for name in ("betag_range", "betag_range2", "betap_range", "betap_range2"):
            rng = _check_range(name, getattr(self, name), low=0.0, strict_low=True)
            # upstream draws beta in [low, 1) or [1, high) with equal probability
            if not rng[0] <= 1.0 <= rng[1]:
                raise ValueError(f"{name}: {list(rng)} must contain 1 (beta is drawn below or above 1)")
        for name in ("jpeg_range", "jpeg_range2"):
            _check_range(name, getattr(self, name), low=1.0, high=100.0)

    def _check_resizes(self) -> None:
        for suffix in ("", "2"):
            name = "resize_prob" + suffix
            _check_probs(name, getattr(self, name), 3)
            name = "resize_range" + suffix
            rng = _check_range(name, getattr(self, name), low=0.0, strict_low=True)
            if not rng[0] <= 1.0 <= rng[1]:
                raise ValueError(f"{name}: {list(rng)} must contain 1 (down below 1, up above 1)")

    def _check_choices(self) -> None:
        for name in ("lq_from_usm", "resize_antialias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: {getattr(self, name)!r} must be true or false")
        if self.jpeg_method not in ("torch", "cv2"):
            raise ValueError(f"jpeg_method: {self.jpeg_method!r} is not one of 'torch', 'cv2'")

DATASET_KEYS: tuple[str, ...] = (
    "blur_kernel_size",
    "kernel_list",
    "kernel_prob",
    "sinc_prob",
    "blur_sigma",
    "betag_range",
    "betap_range",
    "blur_kernel_size2",
    "kernel_list2",
    "kernel_prob2",
    "sinc_prob2",
    "blur_sigma2",
    "betag_range2",
    "betap_range2",
    "final_sinc_prob",
)
"""Fields that upstream YAML files put under ``datasets.train`` (drawn per sample by the dataset)."""

OUR_KEYS: tuple[str, ...] = ("jpeg_method", "lq_from_usm", "resize_antialias", "clean_prob")
"""Fields that upstream does not have (our additions; their defaults behave as upstream)."""

MODEL_KEYS: tuple[str, ...] = tuple(
    f.name for f in fields(DegradationConfig) if f.name not in DATASET_KEYS and f.name not in OUR_KEYS
)
"""Fields that upstream YAML files put at the top level (drawn per batch by the model)."""


def _check_kernel_size(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} must be an integer")
    if value % 2 == 0 or not MIN_KERNEL_SIZE <= value <= KERNEL_PAD:
        raise ValueError(f"{name}: {value} must be odd and in [{MIN_KERNEL_SIZE}, {KERNEL_PAD}]")


def _check_kernel_list(cfg: DegradationConfig, suffix: str) -> None:
    lname, pname = "kernel_list" + suffix, "kernel_prob" + suffix
    kinds, probs = getattr(cfg, lname), getattr(cfg, pname)
    if isinstance(kinds, str) or not kinds:
        raise ValueError(f"{lname}: {kinds!r} must be a non-empty list of kernel types")
    for kind in kinds:
        if kind not in KERNEL_TYPES:
            raise ValueError(f"{lname}: unknown kernel type {kind!r}; valid: {', '.join(KERNEL_TYPES)}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"{lname}: {list(kinds)} lists a kernel type twice")
    _check_probs(pname, probs, len(kinds), other=lname)


def _check_prob(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name}: {value!r} must be a number")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}: {value} must be in [0, 1]")
    return float(value)


def _check_probs(name: str, value: object, n: int, other: str = "") -> tuple[float, ...]:
    if not isinstance(value, tuple) or len(value) != n:
        what = f"as many entries as {other} ({n})" if other else f"{n} entries"
        raise ValueError(f"{name}: {value!r} must be a list with {what}")
    for v in value:
        _check_prob(name, v)
    if abs(sum(value) - 1.0) > 1e-6:
        raise ValueError(f"{name}: {list(value)} must sum to 1 (sums to {sum(value):.6g})")
    return value


def _check_range(
    name: str, value: object, low: float | None = None, high: float | None = None, strict_low: bool = False
) -> tuple[float, float]:
    if not isinstance(value, tuple) or len(value) != 2:
        raise ValueError(f"{name}: {value!r} must be a [low, high] pair")
    for v in value:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"{name}: {value!r} must hold two numbers")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise ValueError(f"{name}: low {lo} is above high {hi}")
    if low is not None and (lo < low or (strict_low and lo <= low)):
        raise ValueError(f"{name}: low {lo} must be {'>' if strict_low else '>='} {low}")
    if high is not None and hi > high:
        raise ValueError(f"{name}: high {hi} must be <= {high}")
    return lo, hi
