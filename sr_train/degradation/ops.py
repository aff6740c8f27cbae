"""Batch image operations of the degradation, in torch, on whatever device the images are on.

All images are (N, C, H, W) float32 tensors, RGB, nominal range [0, 1]. Functions that need randomness take
a ``torch.Generator``; random tensors are drawn on the generator's device and then moved to the images'
device, so a CPU generator drives CUDA data reproducibly (at the cost of a copy; for speed give the
generator the data's device). Nothing here touches a global RNG.

Equivalents of BasicSR: ``filter2d`` = ``filter2D``, ``add_gaussian_noise``/``add_poisson_noise`` =
``random_add_*_noise_pt`` with the draws made by the caller, ``jpeg_torch`` = ``DiffJPEG(differentiable=
False)``, ``usm_sharp`` = ``USMSharp`` (radius 50).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor


# ------------------------------------------------------------------------------------------ randomness


def rand(shape: Sequence[int], gen: torch.Generator, device: torch.device | str | None = None) -> Tensor:
    """Uniform [0, 1) float32 tensor drawn from ``gen`` on its own device, then moved to ``device``."""
    out = torch.rand(tuple(shape), generator=gen, device=gen.device, dtype=torch.float32)
    return out if device is None else out.to(device)


def randn(shape: Sequence[int], gen: torch.Generator, device: torch.device | str | None = None) -> Tensor:
    """Standard normal float32 tensor drawn from ``gen`` on its own device, then moved to ``device``."""
    out = torch.randn(tuple(shape), generator=gen, device=gen.device, dtype=torch.float32)
    return out if device is None else out.to(device)


def poisson(rate: Tensor, gen: torch.Generator) -> Tensor:
    """``torch.poisson(rate)`` drawn from ``gen`` (on the generator's device), returned on ``rate``'s device."""
    if rate.device == gen.device:
        return torch.poisson(rate, generator=gen)
    return torch.poisson(rate.to(gen.device), generator=gen).to(rate.device)


# ---------------------------------------------------------------------------------------------- filters


def _mirror_index(n: int, pad: int, device: torch.device) -> Tensor:
    # numpy-style 'reflect' indices (edge not repeated), valid for any pad, even pad >= n
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def pad_reflect(img: Tensor, ph: int, pw: int) -> Tensor:
    """Reflect-pad the last two dims by ``ph`` rows and ``pw`` columns on each side.

    Same result as ``F.pad(mode='reflect')`` where that works (pad < size); beyond that it keeps mirroring
    (numpy's ``reflect``) instead of raising, so tiny images and large kernels do not fail.
    """
    h, w = img.shape[-2:]
    if ph < h and pw < w:
        return F.pad(img, (pw, pw, ph, ph), mode="reflect")
    ih, iw = _mirror_index(h, ph, img.device), _mirror_index(w, pw, img.device)
    return img.index_select(-2, ih).index_select(-1, iw)


def filter2d(img: Tensor, kernel: Tensor) -> Tensor:
    """Correlate each image with its own kernel (BasicSR ``filter2D``; reflect padding, size kept).

    Args:
        img: (N, C, H, W) float tensor.
        kernel: (N, k, k), (1, k, k) or (k, k) float tensor, k odd; one kernel per image or one for all.

    Returns:
        (N, C, H, W) tensor on ``img``'s device.
    """
    if kernel.dim() == 2:
        kernel = kernel[None]
    k = kernel.shape[-1]
    if k % 2 != 1 or kernel.shape[-2] != k:
        raise ValueError(f"kernel must be square with an odd size, got {tuple(kernel.shape)}")
    n, c, h, w = img.shape
    kernel = kernel.to(device=img.device, dtype=img.dtype)
    padded = pad_reflect(img, k // 2, k // 2)
    ph, pw = padded.shape[-2:]
    if kernel.shape[0] == 1:
        out = F.conv2d(padded.reshape(n * c, 1, ph, pw), kernel.view(1, 1, k, k))
    else:
        if kernel.shape[0] != n:
            raise ValueError(f"{kernel.shape[0]} kernels for a batch of {n} images")
        weight = kernel.view(n, 1, k, k).repeat_interleave(c, dim=0)
        out = F.conv2d(padded.reshape(1, n * c, ph, pw), weight, groups=n * c)
    return out.view(n, c, h, w)


def filter_separable(img: Tensor, k1d: Tensor) -> Tensor:
    """Filter with the separable kernel ``outer(k1d, k1d)`` (reflect padding): two 1-D passes.

    Equals ``filter2d(img, outer(k1d, k1d))`` up to float rounding, at 2k instead of k*k multiply-adds.
    """
    k = k1d.numel()
    n, c, h, w = img.shape
    k1d = k1d.to(device=img.device, dtype=img.dtype)
    x = pad_reflect(img, k // 2, k // 2).reshape(n * c, 1, h + k - 1, w + k - 1)
    x = F.conv2d(x, k1d.view(1, 1, k, 1))
    x = F.conv2d(x, k1d.view(1, 1, 1, k))
    return x.view(n, c, h, w)


@lru_cache(maxsize=4)
def _gaussian_1d(radius: int, sigma: float) -> Tensor:
    import cv2

    return torch.from_numpy(cv2.getGaussianKernel(radius, sigma).astype(np.float32).ravel())


def filter_separable_fft(img: Tensor, k1d: Tensor) -> Tensor:
    """Same result as :func:`filter_separable` (within 1e-6) through a 2-D real FFT of the padded image.

    For long symmetric kernels (the 51-tap USM Gaussian) this is 3x faster than the two 1-D convolutions
    on the CPU. Wrap-around stays inside the reflect padding, which is cropped off.
    """
    k = k1d.numel()
    r = k // 2
    h, w = img.shape[-2:]
    p = pad_reflect(img, r, r)
    ph, pw = p.shape[-2:]
    k1d = k1d.to(device=img.device, dtype=img.dtype)
    kh = torch.roll(F.pad(k1d, (0, ph - k)), -r)
    kw = torch.roll(F.pad(k1d, (0, pw - k)), -r)
    kf = torch.fft.fft(kh)[:, None] * torch.fft.rfft(kw)[None, :]
    out = torch.fft.irfft2(torch.fft.rfft2(p) * kf, s=(ph, pw))
    return out[..., r : r + h, r : r + w].contiguous()


def usm_sharp(img: Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> Tensor:
    """Unsharp masking as upstream ``USMSharp`` (Gaussian of size radius (+1 if even), sigma from OpenCV).

    ``K = clip(img + weight * (img - blur), 0, 1)``; a soft mask (blurred ``|img - blur| * 255 > threshold``)
    blends K and img. The 51x51 Gaussian (reflect padding, as upstream) is applied through an FFT.

    Args:
        img: (N, 3, H, W) float32 in [0, 1].

    Returns:
        (N, 3, H, W) float32 in [0, 1].
    """
    if radius % 2 == 0:
        radius += 1
    k = _gaussian_1d(radius, 0.0)
    blur = filter_separable_fft(img, k)
    residual = img - blur
    mask = (residual.abs() * 255 > threshold).to(img.dtype)
    soft_mask = filter_separable_fft(mask, k)
    sharp = torch.clamp(img + weight * residual, 0, 1)
    return soft_mask * sharp + (1 - soft_mask) * img


# ---------------------------------------------------------------------------------------------- resize


def resize(
    img: Tensor,
    mode: str,
    scale_factor: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = False,
) -> Tensor:
    """``F.interpolate`` as upstream (no antialias, align_corners False) with either a factor or a size.

    A factor that would give an empty image is replaced by a 1-pixel size instead of raising. ``antialias``
    low-passes bilinear/bicubic *downscales* (``F.interpolate(antialias=True)``; torch's antialiased bicubic
    is PIL's, a = -0.5); upscales and ``area`` are unchanged by it.
    """
    h, w = img.shape[-2:]
    if size is None:
        if scale_factor is None:
            raise ValueError("give scale_factor or size")
        if math.floor(h * scale_factor) >= 1 and math.floor(w * scale_factor) >= 1:
            kw = _resize_kw(mode, antialias and scale_factor < 1)
            return F.interpolate(img, scale_factor=scale_factor, mode=mode, **kw)
        size = (max(1, math.floor(h * scale_factor)), max(1, math.floor(w * scale_factor)))
    size = (max(1, int(size[0])), max(1, int(size[1])))
    kw = _resize_kw(mode, antialias and (size[0] < h or size[1] < w))
    return F.interpolate(img, size=size, mode=mode, **kw)


def _resize_kw(mode: str, antialias: bool) -> dict[str, bool]:
    if mode == "area":
        return {}
    return {"align_corners": False, "antialias": True} if antialias else {"align_corners": False}


# ----------------------------------------------------------------------------------------------- noise


def rgb_to_gray(img: Tensor) -> Tensor:
    """(N, 3, H, W) RGB -> (N, 1, H, W) luma with torchvision's weights (0.2989, 0.587, 0.114)."""
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    return 0.2989 * r + 0.587 * g + 0.114 * b


def add_gaussian_noise(img: Tensor, sigma: Tensor, gray: Tensor, gen: torch.Generator) -> Tensor:
    """Add Gaussian noise, per-sample sigma (8-bit units) and gray flag, then clip to [0, 1].

    Args:
        img: (N, C, H, W) float32.
        sigma: (N,) noise standard deviations in 8-bit units.
        gray: (N,) 0/1 flags: 1 = the same noise on all channels.
        gen: generator for the noise.

    Returns:
        (N, C, H, W) float32 in [0, 1].

    Unlike upstream (one gray noise field shared by the whole batch), each sample gets its own gray field.
    """
    n, c, h, w = img.shape
    sigma = sigma.to(img.device, img.dtype).view(n, 1, 1, 1)
    gray = gray.to(img.device, img.dtype).view(n, 1, 1, 1)
    noise = randn((n, c, h, w), gen, img.device) * sigma / 255.0
    if bool(gray.any()):
        noise_gray = randn((n, 1, h, w), gen, img.device) * sigma / 255.0
        noise = noise * (1 - gray) + noise_gray * gray
    return torch.clamp(img + noise, 0, 1)


def _shot_noise(img: Tensor, gen: torch.Generator) -> Tensor:
    # img rounded to 8 bits; the photon count per level is the next power of 2 of the number of
    # distinct levels in each sample (skimage's random_noise 'poisson', as upstream)
    n = img.shape[0]
    q = torch.clamp((img * 255.0).round(), 0, 255)
    img = q / 255.0
    # distinct levels per sample (== len(torch.unique(img[i])) upstream, by counting instead of sorting)
    ids = q.to(torch.int64).view(n, -1) + 256 * torch.arange(n, device=img.device).view(n, 1)
    levels = (torch.bincount(ids.flatten(), minlength=256 * n).view(n, 256) > 0).sum(dim=1)
    vals = torch.exp2(torch.ceil(torch.log2(levels.to(torch.float64)))).to(img.dtype).view(n, 1, 1, 1)
    return poisson(img * vals, gen) / vals - img


def add_poisson_noise(img: Tensor, scale: Tensor, gray: Tensor, gen: torch.Generator) -> Tensor:
    """Add Poisson (shot) noise, per-sample scale and gray flag, then clip to [0, 1].

    Args:
        img: (N, 3, H, W) float32 in [0, 1].
        scale: (N,) noise scales.
        gray: (N,) 0/1 flags: 1 = noise computed on the luma and added to all channels.
        gen: generator for the noise.

    Returns:
        (N, 3, H, W) float32 in [0, 1].
    """
    n = img.shape[0]
    gray = gray.to(img.device, img.dtype).view(n, 1, 1, 1)
    noise = _shot_noise(img, gen)  # upstream always computes the colour noise
    if bool(gray.any()):
        noise_gray = _shot_noise(rgb_to_gray(img), gen).expand_as(img)
        noise = noise * (1 - gray) + noise_gray * gray
    noise = noise * scale.to(img.device, img.dtype).view(n, 1, 1, 1)
    return torch.clamp(img + noise, 0, 1)


# ------------------------------------------------------------------------------------------------ JPEG

_Y_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float32,
)
"""JPEG Annex K luminance table, row = vertical frequency (upstream DiffJPEG stores it transposed)."""
_C_TABLE = np.full((8, 8), 99, dtype=np.float32)
_C_TABLE[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]


def _dct_matrix() -> np.ndarray:
    # orthonormal DCT-II: D = C @ B @ C.T equals DiffJPEG's dct_8x8 (scale outer(alpha, alpha) / 4)
    u, x = np.mgrid[0:8, 0:8]
    c = 0.5 * np.cos((2 * x + 1) * u * np.pi / 16)
    c[0] *= 1 / math.sqrt(2)
    return c.astype(np.float32)


_DCT = _dct_matrix()
_DCT2 = np.kron(_DCT, _DCT)
"""(64, 64) 2-D DCT on row-major flattened 8x8 blocks: ``vec(C B C^T) = kron(C, C) vec(B)``. One GEMM over
all blocks instead of batched 8x8 products (which were 30x slower on 2 contended CPU threads)."""


def quality_to_factor(quality: Tensor) -> Tensor:
    """IJG quality (1..100, may be fractional) -> quantisation table multiplier, as DiffJPEG."""
    return torch.where(quality < 50, 5000.0 / quality, 200.0 - quality * 2) / 100.0


def _blocks(x: Tensor) -> Tensor:
    # (N, H, W) -> (N, H/8 * W/8, 64): row-major flattened 8x8 blocks
    n, h, w = x.shape
    return x.reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4).reshape(n, -1, 64)


def _unblocks(b: Tensor, h: int, w: int) -> Tensor:
    n = b.shape[0]
    return b.reshape(n, h // 8, w // 8, 8, 8).permute(0, 1, 3, 2, 4).reshape(n, h, w)


def _upsample2(c: Tensor) -> Tensor:
    # (N, h, w) -> (N, 2h, 2w) by pixel repetition
    n, h, w = c.shape
    return c[:, :, None, :, None].expand(n, h, 2, w, 2).reshape(n, 2 * h, 2 * w)


def jpeg_torch(img: Tensor, quality: Tensor) -> Tensor:
    """Simulate JPEG compression of a batch in torch (upstream DiffJPEG with ``differentiable=False``).

    YCbCr (JFIF), 4:2:0 chroma by 2x2 average, 8x8 DCT, quantisation with the Annex K tables scaled by
    the IJG quality factor and ``round``, dequantisation, inverse DCT, chroma by pixel repetition, RGB,
    clamp. Differences from upstream, all deliberate: the image is padded to a multiple of 16 by edge
    replication (as JPEG encoders do) instead of black; the quantisation tables are in the standard
    orientation (DiffJPEG uses them transposed); quantisation steps are at least 1 (libjpeg). With
    upstream's tables and padding this function reproduces DiffJPEG within 4e-7; as it is, it is 1-3 dB
    closer (PSNR) to OpenCV's libjpeg output (docs/train_data.md).

    Args:
        img: (N, 3, H, W) float32 RGB in [0, 1], any H, W.
        quality: (N,) qualities in [1, 100] (fractions allowed).

    Returns:
        (N, 3, H, W) float32 RGB in [0, 1].
    """
    n, _, h, w = img.shape
    dev, dt = img.device, img.dtype
    factor = quality_to_factor(quality.to(dev, dt)).view(n, 1, 1, 1, 1)
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(img, (0, pw, 0, ph), mode="replicate") if ph or pw else img
    x = x * 255.0
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128.0
    cb = F.avg_pool2d(cb[:, None], 2)[:, 0]
    cr = F.avg_pool2d(cr[:, None], 2)[:, 0]
    dct2 = torch.as_tensor(_DCT2, device=dev, dtype=dt)
    # libjpeg never quantises with a step below 1; this only matters above quality 95 (and avoids the
    # division by zero of upstream at quality 100)
    y_tab = torch.clamp(torch.as_tensor(_Y_TABLE, device=dev, dtype=dt) * factor, min=1.0).view(n, 1, 64)
    c_tab = torch.clamp(torch.as_tensor(_C_TABLE, device=dev, dtype=dt) * factor, min=1.0).view(n, 1, 64)

    def roundtrip(chan: Tensor, table: Tensor) -> Tensor:
        coef = (_blocks(chan) - 128.0) @ dct2.T
        coef = torch.round(coef / table) * table
        return _unblocks(coef @ dct2 + 128.0, chan.shape[1], chan.shape[2])

    y, cb, cr = roundtrip(y, y_tab), roundtrip(cb, c_tab), roundtrip(cr, c_tab)
    cb, cr = _upsample2(cb - 128.0), _upsample2(cr - 128.0)
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1)
    out = torch.clamp(out, 0, 255) / 255.0
    return out[:, :, :h, :w].contiguous()


def jpeg_cv2(img: Tensor, quality: Tensor) -> Tensor:
    """Real JPEG via OpenCV (libjpeg, 4:2:0), one sample at a time on the CPU.

    The image is rounded to 8 bits first and the quality to an integer (OpenCV 5 rejects fractional
    qualities). Costs a device -> host -> device round trip on accelerators.

    Args:
        img: (N, 3, H, W) float32 RGB in [0, 1].
        quality: (N,) qualities in [1, 100].

    Returns:
        (N, 3, H, W) float32 RGB in [0, 1], on ``img``'s device; values are multiples of 1/255.
    """
    import cv2

    arr = (img.detach().clamp(0, 1) * 255.0).round().to("cpu", torch.uint8).permute(0, 2, 3, 1).numpy()
    qs = [int(round(float(q))) for q in quality.detach().cpu()]
    out = np.empty_like(arr)
    for i, (a, q) in enumerate(zip(arr, qs)):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(a[..., ::-1]), [int(cv2.IMWRITE_JPEG_QUALITY), q])
        if not ok:
            raise RuntimeError("cv2.imencode failed for a JPEG degradation sample")
        out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    res = torch.from_numpy(out).permute(0, 3, 1, 2).to(img.device, img.dtype) / 255.0
    return res.contiguous()


def jpeg(img: Tensor, quality: Tensor, method: str = "torch") -> Tensor:
    """Dispatch to :func:`jpeg_torch` or :func:`jpeg_cv2` (``method`` = ``DegradationConfig.jpeg_method``)."""
    if method == "torch":
        return jpeg_torch(img, quality)
    if method == "cv2":
        return jpeg_cv2(img, quality)
    raise ValueError(f"unknown JPEG method {method!r}")


# ------------------------------------------------------------------------------------------------ crop


def paired_crop(
    gts: Sequence[Tensor], lq: Tensor, gt_size: int, scale: int, top: int, left: int
) -> tuple[list[Tensor], Tensor]:
    """Crop LQ at (top, left) to gt_size // scale and every GT at (top * scale, left * scale) to gt_size.

    Offsets are drawn by the caller (BasicSR ``paired_random_crop`` draws them with ``random``).
    """
    lq_size = gt_size // scale
    lq = lq[:, :, top : top + lq_size, left : left + lq_size]
    t, l_ = top * scale, left * scale
    return [g[:, :, t : t + gt_size, l_ : l_ + gt_size] for g in gts], lq
