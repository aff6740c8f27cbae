"""Blur kernels of the Real-ESRGAN degradation, drawn per sample from a passed ``np.random.Generator``.

The six kernel types of BasicSR's ``random_mixed_kernels`` (iso, aniso, generalized_iso, generalized_aniso,
plateau_iso, plateau_aniso) and the 2-D sinc (circular low-pass) of ``circular_lowpass_kernel``, with the
upstream parameter draws in the upstream order. Sampling is split in two steps so that tests can count the
random choices without building kernels: :func:`sample_kernel_specs` draws :class:`KernelSpec` values,
:func:`make_kernel` turns one into an array. :func:`sample_kernels` does both.

numpy only (no scipy: the Bessel function J1 is computed here), no global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sr_train.degradation.config import KERNEL_PAD, MIN_KERNEL_SIZE, DegradationConfig

KernelKind = Literal[
    "iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso", "sinc", "pulse"
]


@dataclass(frozen=True)
class KernelSpec:
    """One drawn kernel: its type, size and shape parameters (unused ones stay at their defaults)."""

    kind: KernelKind
    """Kernel type; ``pulse`` is the identity (a single 1 in the centre)."""
    size: int
    """Odd side length before zero padding."""
    sigma_x: float = 0.0
    """Standard deviation along the (rotated) x axis, pixels."""
    sigma_y: float = 0.0
    """Standard deviation along the (rotated) y axis, pixels (== sigma_x for isotropic kernels)."""
    theta: float = 0.0
    """Rotation angle in radians."""
    beta: float = 1.0
    """Shape parameter of generalized Gaussian and plateau kernels."""
    omega_c: float = 0.0
    """Cut-off frequency of the sinc kernel, radians (pi is Nyquist)."""


# ----------------------------------------------------------------------------------------- generators


def mesh_grid(kernel_size: int) -> np.ndarray:
    """Return a (K, K, 2) float64 grid of (x, y) offsets centred on zero (BasicSR ``mesh_grid``)."""
    ax = np.arange(-kernel_size // 2 + 1.0, kernel_size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def sigma_matrix2(sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """Return the 2x2 covariance matrix ``U diag(sig_x^2, sig_y^2) U^T`` rotated by ``theta`` radians."""
    d = np.array([[sig_x**2, 0.0], [0.0, sig_y**2]])
    u = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return u @ d @ u.T


def _quad_form(kernel_size: int, sig_x: float, sig_y: float, theta: float, isotropic: bool) -> np.ndarray:
    grid = mesh_grid(kernel_size)
    if isotropic:
        sigma = np.array([[sig_x**2, 0.0], [0.0, sig_x**2]])
    else:
        sigma = sigma_matrix2(sig_x, sig_y, theta)
    inv = np.linalg.inv(sigma)
    return np.sum((grid @ inv) * grid, axis=2)


def bivariate_gaussian(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, isotropic: bool = True
) -> np.ndarray:
    """Return a normalised (K, K) float64 Gaussian kernel; isotropic kernels use only ``sig_x``."""
    kernel = np.exp(-0.5 * _quad_form(kernel_size, sig_x, sig_y, theta, isotropic))
    return kernel / np.sum(kernel)


def bivariate_generalized_gaussian(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, beta: float, isotropic: bool = True
) -> np.ndarray:
    """Return a normalised (K, K) float64 generalized Gaussian kernel ``exp(-0.5 * q^beta)``."""
    kernel = np.exp(-0.5 * np.power(_quad_form(kernel_size, sig_x, sig_y, theta, isotropic), beta))
    return kernel / np.sum(kernel)


def bivariate_plateau(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, beta: float, isotropic: bool = True
) -> np.ndarray:
    """Return a normalised (K, K) float64 plateau kernel ``1 / (1 + q^beta)``."""
    kernel = np.reciprocal(np.power(_quad_form(kernel_size, sig_x, sig_y, theta, isotropic), beta) + 1)
    return kernel / np.sum(kernel)


_J1_NODES = 128
_J1_TAU = np.arange(_J1_NODES) * (2 * np.pi / _J1_NODES)


def bessel_j1(x: np.ndarray) -> np.ndarray:
    """Bessel function of the first kind, order 1, for |x| up to about 60 (float64, error < 1e-12).

    Bessel's integral ``J1(x) = 1/(2 pi) \\int_0^{2 pi} cos(t - x sin t) dt`` by the trapezoid rule, which
    is exact to machine precision for a periodic integrand once the node count exceeds |x| comfortably.
    (scipy's ``special.j1`` is what upstream uses; scipy is not a dependency here.)
    """
    x = np.asarray(x, dtype=np.float64)
    vals = np.cos(_J1_TAU - x[..., None] * np.sin(_J1_TAU))
    return vals.mean(axis=-1)


def circular_lowpass_kernel(cutoff: float, kernel_size: int, pad_to: int = 0) -> np.ndarray:
    """Return the normalised 2-D sinc (circularly symmetric ideal low-pass) kernel, float64.

    Args:
        cutoff: cut-off frequency in radians (pi is the maximum).
        kernel_size: odd side length.
        pad_to: zero-pad to this (odd) size when larger than ``kernel_size``.
    """
    c = (kernel_size - 1) / 2
    yy, xx = np.mgrid[0:kernel_size, 0:kernel_size].astype(np.float64)
    r = np.sqrt((xx - c) ** 2 + (yy - c) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * bessel_j1(cutoff * r) / (2 * np.pi * r)
    kernel[int(c), int(c)] = cutoff**2 / (4 * np.pi)
    kernel = kernel / np.sum(kernel)
    if pad_to > kernel_size:
        p = (pad_to - kernel_size) // 2
        kernel = np.pad(kernel, ((p, p), (p, p)))
    return kernel


def pulse_kernel(size: int = KERNEL_PAD) -> np.ndarray:
    """Return the (size, size) float64 identity kernel (1 in the centre)."""
    k = np.zeros((size, size))
    k[size // 2, size // 2] = 1.0
    return k


def make_kernel(spec: KernelSpec, pad_to: int = KERNEL_PAD) -> np.ndarray:
    """Build the kernel described by ``spec`` and zero-pad it to (pad_to, pad_to).

    Returns:
        (pad_to, pad_to) float32 array summing to 1 (within float32 rounding).
    """
    k, iso = spec.kind, spec.kind.endswith("_iso") or spec.kind == "iso"
    if k == "pulse":
        kernel = pulse_kernel(spec.size)
    elif k == "sinc":
        kernel = circular_lowpass_kernel(spec.omega_c, spec.size)
    elif k in ("iso", "aniso"):
        kernel = bivariate_gaussian(spec.size, spec.sigma_x, spec.sigma_y, spec.theta, iso)
    elif k.startswith("generalized"):
        kernel = bivariate_generalized_gaussian(
            spec.size, spec.sigma_x, spec.sigma_y, spec.theta, spec.beta, iso
        )
    elif k.startswith("plateau"):
        kernel = bivariate_plateau(spec.size, spec.sigma_x, spec.sigma_y, spec.theta, spec.beta, iso)
    else:
        raise ValueError(f"unknown kernel kind {k!r}")
    if pad_to < spec.size:
        raise ValueError(f"kernel size {spec.size} exceeds pad_to {pad_to}")
    p = (pad_to - spec.size) // 2
    return np.pad(kernel, ((p, p), (p, p))).astype(np.float32)


# ------------------------------------------------------------------------------------------- sampling


def kernel_sizes(max_size: int) -> tuple[int, ...]:
    """Odd kernel sizes drawn uniformly: 7, 9, ..., max_size (upstream: 7..21)."""
    return tuple(range(MIN_KERNEL_SIZE, max_size + 1, 2))


def _beta(rng: np.random.Generator, beta_range: tuple[float, float]) -> float:
    # upstream: half of the draws below 1, half above
    if rng.uniform() < 0.5:
        return float(rng.uniform(beta_range[0], 1.0))
    return float(rng.uniform(1.0, beta_range[1]))


def sample_blur_spec(
    rng: np.random.Generator,
    kernel_list: tuple[str, ...],
    kernel_prob: tuple[float, ...],
    sinc_prob: float,
    max_size: int,
    sigma_range: tuple[float, float],
    betag_range: tuple[float, float],
    betap_range: tuple[float, float],
) -> KernelSpec:
    """Draw one blur kernel description as RealESRGANDataset does (size, sinc or mixed type, parameters)."""
    sizes = kernel_sizes(max_size)
    size = int(sizes[rng.integers(len(sizes))])
    if rng.uniform() < sinc_prob:
        # this omega_c setting is for kernel sizes in [7, 21]
        low = np.pi / 3 if size < 13 else np.pi / 5
        return KernelSpec("sinc", size, omega_c=float(rng.uniform(low, np.pi)))
    p = np.asarray(kernel_prob, dtype=np.float64)
    kind = kernel_list[int(rng.choice(len(kernel_list), p=p / p.sum()))]
    sigma_x = float(rng.uniform(*sigma_range))
    if kind.endswith("_iso") or kind == "iso":
        sigma_y, theta = sigma_x, 0.0
    else:
        sigma_y = float(rng.uniform(*sigma_range))
        theta = float(rng.uniform(-math.pi, math.pi))
    beta = 1.0
    if kind.startswith("generalized"):
        beta = _beta(rng, betag_range)
    elif kind.startswith("plateau"):
        beta = _beta(rng, betap_range)
    return KernelSpec(kind, size, sigma_x=sigma_x, sigma_y=sigma_y, theta=theta, beta=beta)  # type: ignore[arg-type]


def sample_kernel_specs(
    cfg: DegradationConfig, rng: np.random.Generator
) -> tuple[KernelSpec, KernelSpec, KernelSpec]:
    """Draw the three kernel descriptions of one sample: blur 1, blur 2, final sinc (or pulse)."""
    k1 = sample_blur_spec(
        rng, cfg.kernel_list, cfg.kernel_prob, cfg.sinc_prob, cfg.blur_kernel_size,
        cfg.blur_sigma, cfg.betag_range, cfg.betap_range,
    )  # fmt: skip
    k2 = sample_blur_spec(
        rng, cfg.kernel_list2, cfg.kernel_prob2, cfg.sinc_prob2, cfg.blur_kernel_size2,
        cfg.blur_sigma2, cfg.betag_range2, cfg.betap_range2,
    )  # fmt: skip
    if rng.uniform() < cfg.final_sinc_prob:
        sizes = kernel_sizes(KERNEL_PAD)
        size = int(sizes[rng.integers(len(sizes))])
        k3 = KernelSpec("sinc", size, omega_c=float(rng.uniform(np.pi / 3, np.pi)))
    else:
        k3 = KernelSpec("pulse", KERNEL_PAD)
    return k1, k2, k3


def sample_kernels(
    cfg: DegradationConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw and build the three kernels of one sample.

    Args:
        cfg: the degradation options.
        rng: the sample's generator (e.g. ``np.random.default_rng([seed, epoch, index])``).

    Returns:
        ``(kernel1, kernel2, sinc_kernel)``, each a (21, 21) float32 array summing to 1: the first and
        second blur kernels and the final sinc filter (or the identity pulse).
    """
    return tuple(make_kernel(s) for s in sample_kernel_specs(cfg, rng))  # type: ignore[return-value]
