"""Numerical comparison shared by export parity checks, tests, validation and benchmarks (numpy only)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference of two same-shape arrays (computed in float64)."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0


def psnr(a: np.ndarray, b: np.ndarray, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for identical arrays.

    Args:
        a, b: arrays of the same shape, any layout, values in [0, max_val].
        max_val: peak value (1.0 for float images, 255 for 8-bit).
    """
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(max_val**2 / mse)


def rgb_to_y(img: np.ndarray, order: str = "bgr") -> np.ndarray:
    """Luma as BasicSR/MATLAB compute it (ITU-R BT.601, studio range).

    Args:
        img: ``(H, W, 3)`` float array in [0, 255] (or uint8), channel order ``order`` (``bgr`` or ``rgb``).

    Returns:
        ``(H, W)`` float64 Y in [16, 235].
    """
    x = np.asarray(img, np.float64)
    w = np.array([24.966, 128.553, 65.481]) if order == "bgr" else np.array([65.481, 128.553, 24.966])
    return x @ w / 255.0 + 16.0


def _prep_y(img: np.ndarray, crop_border: int, order: str) -> np.ndarray:
    x = np.asarray(img, np.float64)
    if x.ndim == 3 and x.shape[2] == 3:
        x = rgb_to_y(x, order)
    elif x.ndim == 3:
        x = x[..., 0]
    if crop_border:
        x = x[crop_border:-crop_border, crop_border:-crop_border]
    return x


def psnr_y(a: np.ndarray, b: np.ndarray, crop_border: int = 0, order: str = "bgr") -> float:
    """PSNR on the Y channel of two ``(H, W, 3)`` images in [0, 255], as BasicSR's ``calculate_psnr``
    with ``test_y_channel=True`` (border of ``crop_border`` pixels removed)."""
    return psnr(_prep_y(a, crop_border, order), _prep_y(b, crop_border, order), 255.0)


def ssim(a: np.ndarray, b: np.ndarray, max_val: float = 255.0) -> float:
    """SSIM of two single-channel images (Wang et al.; 11x11 Gaussian window, sigma 1.5, valid region),
    as BasicSR's ``_ssim``."""
    import cv2

    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    k = cv2.getGaussianKernel(11, 1.5)
    win = np.outer(k, k.transpose())
    f = lambda t: cv2.filter2D(t, -1, win)[5:-5, 5:-5]  # noqa: E731
    mu1, mu2 = f(x), f(y)
    mu1_sq, mu2_sq, mu1_mu2 = mu1**2, mu2**2, mu1 * mu2
    s1, s2, s12 = f(x * x) - mu1_sq, f(y * y) - mu2_sq, f(x * y) - mu1_mu2
    m = ((2 * mu1_mu2 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(m.mean())


def ssim_y(a: np.ndarray, b: np.ndarray, crop_border: int = 0, order: str = "bgr") -> float:
    """SSIM on the Y channel of two ``(H, W, 3)`` images in [0, 255] (BasicSR ``calculate_ssim``,
    ``test_y_channel=True``)."""
    return ssim(_prep_y(a, crop_border, order), _prep_y(b, crop_border, order), 255.0)


@dataclass(frozen=True)
class Tol:
    """A parity tolerance."""

    max_abs: float
    """Largest allowed absolute error (values in [0, 1])."""
    min_psnr: float
    """Smallest allowed PSNR in dB (peak 1.0)."""


@dataclass(frozen=True)
class ParityReport:
    """How closely one output matches a reference."""

    name: str
    """What was compared (e.g. ``ort fp32 random 1x3x32x32``)."""
    max_abs: float
    """Largest absolute error."""
    psnr: float
    """PSNR in dB (peak 1.0)."""
    mean_abs: float
    """Mean absolute error."""
    worst_index: tuple[int, ...]
    """Index of the largest error in the compared arrays."""
    tol: Tol | None = None
    """The tolerance it was checked against, if any."""

    @property
    def passed(self) -> bool:
        """True when within ``tol`` (always True without one)."""
        return self.tol is None or (self.max_abs <= self.tol.max_abs and self.psnr >= self.tol.min_psnr)

    def line(self) -> str:
        """One human-readable line: figures, tolerance and PASS/FAIL."""
        p = "inf" if math.isinf(self.psnr) else f"{self.psnr:.2f}"
        text = f"{self.name}: max_abs={self.max_abs:.3g} psnr={p} dB mean_abs={self.mean_abs:.3g} worst_at={self.worst_index}"
        if self.tol is not None:
            text += f" (tol max_abs<={self.tol.max_abs:g}, psnr>={self.tol.min_psnr:g}) {'PASS' if self.passed else 'FAIL'}"
        return text


def compare(name: str, out: np.ndarray, ref: np.ndarray, tol: Tol | None = None) -> ParityReport:
    """Compare ``out`` with ``ref`` (same shape, values in [0, 1]).

    Raises:
        ValueError: the shapes differ.
    """
    out, ref = np.asarray(out), np.asarray(ref)
    if out.shape != ref.shape:
        raise ValueError(f"{name}: shape {out.shape} != reference shape {ref.shape}")
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    if not np.all(np.isfinite(diff)):
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(~np.isfinite(diff))), diff.shape))
        return ParityReport(name, math.inf, -math.inf, math.inf, idx, tol)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), diff.shape)) if diff.size else ()
    return ParityReport(name, float(diff.max()) if diff.size else 0.0, psnr(out, ref, 1.0),
                        float(diff.mean()) if diff.size else 0.0, worst, tol)
