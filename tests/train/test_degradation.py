"""Second-order degradation: kernels, sampled frequencies, ops, determinism, sizes, the training-pair pool."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch

from sr_train.degradation import ops
from sr_train.degradation.config import (
    DATASET_KEYS,
    KERNEL_PAD,
    KERNEL_TYPES,
    MODEL_KEYS,
    RESIZE_MODES,
    DegradationConfig,
)
from sr_train.degradation.kernels import (
    KernelSpec,
    bessel_j1,
    kernel_sizes,
    make_kernel,
    sample_kernel_specs,
    sample_kernels,
)
from sr_train.degradation.pipeline import SecondOrderDegradation
from sr_train.degradation.pool import TrainingPairPool

CFG = DegradationConfig()

TOL = {
    # jpeg_torch vs OpenCV libjpeg, q 30..95: measured 33.0..34.1 dB on 256 px (benchmark) and 31.5..32.2 dB
    # on the 48x40 batch used here (libjpeg differs: integer tables, triangle chroma upsampling, 8-bit input)
    "jpeg_torch_vs_cv2_min_psnr": 29.0,
    # float32 FFT vs direct 51x51 correlation for the USM blur: measured 4.2e-7
    "usm_fft_max_abs": 1e-5,
}


def _sigmas(p: float, n: int, k: float = 4.5) -> float:
    """Allowed deviation of a frequency from ``p`` over ``n`` draws: ``k`` binomial standard errors."""
    return k * math.sqrt(p * (1 - p) / n) + 1e-9


def _check_freq(counts: Counter, total: int, expected: dict, what: str) -> None:
    for key, p in expected.items():
        got = counts.get(key, 0) / total
        assert abs(got - p) <= _sigmas(p, total), (
            f"{what} {key!r}: frequency {got:.4f}, expected {p} over {total}"
        )


def _smooth_batch(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    yy, xx = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    base = torch.stack([0.5 + 0.35 * torch.sin(xx / (3 + c) + c) * torch.cos(yy / (4 + c)) for c in range(3)])
    gen = torch.Generator().manual_seed(seed)
    return (base[None].repeat(n, 1, 1, 1) + 0.05 * torch.randn((n, 3, h, w), generator=gen)).clamp(0, 1)


def _kernels(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ks = [sample_kernels(CFG, np.random.default_rng([seed, 0, i])) for i in range(n)]
    return tuple(torch.from_numpy(np.stack([k[j] for k in ks])) for j in range(3))  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------- config


def test_config_defaults_are_upstream_and_keys_split() -> None:
    assert CFG.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    assert CFG.resize_prob == (0.2, 0.7, 0.1) and CFG.resize_prob2 == (0.3, 0.4, 0.3)
    assert CFG.jpeg_range == (30.0, 95.0) and CFG.final_sinc_prob == 0.8 and CFG.second_blur_prob == 0.8
    names = {f.name for f in dataclasses.fields(DegradationConfig)}
    assert set(DATASET_KEYS) | set(MODEL_KEYS) | {"jpeg_method", "lq_from_usm", "resize_antialias", "clean_prob"} == names
    assert not set(DATASET_KEYS) & set(MODEL_KEYS)
    assert DegradationConfig(jpeg_range=[40, 90]).jpeg_range == (40, 90)  # YAML lists become tuples


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"kernel_prob": (0.5, 0.25, 0.12, 0.03, 0.12, 0.03)}, "kernel_prob"),
        ({"kernel_list": ("iso", "gauss")}, "kernel_list"),
        ({"kernel_list2": ("iso",)}, "kernel_prob2"),
        ({"blur_kernel_size": 20}, "blur_kernel_size"),
        ({"blur_kernel_size2": 23}, "blur_kernel_size2"),
        ({"resize_range": (1.5, 0.15)}, "resize_range"),
        ({"resize_prob2": (0.5, 0.5)}, "resize_prob2"),
        ({"noise_range": (0, 30)}, "noise_range"),
        ({"jpeg_range2": (30, 101)}, "jpeg_range2"),
        ({"gray_noise_prob": 1.5}, "gray_noise_prob"),
        ({"betag_range": (2, 4)}, "betag_range"),
        ({"jpeg_method": "pil"}, "jpeg_method"),
        ({"lq_from_usm": "no"}, "lq_from_usm"),
        ({"resize_antialias": 1}, "resize_antialias"),
        ({"clean_prob": 1.5}, "clean_prob"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        DegradationConfig(**kwargs)


# -------------------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize(
    "kind, size",
    list(itertools.product(KERNEL_TYPES, (7, 13, 21))) + [("sinc", 7), ("sinc", 21), ("pulse", 21)],
)
def test_kernel_sums_to_one_with_requested_shape(kind: str, size: int) -> None:
    spec = KernelSpec(kind, size, sigma_x=1.7, sigma_y=0.6, theta=0.7, beta=1.5, omega_c=1.3)  # type: ignore[arg-type]
    k = make_kernel(spec)
    assert k.shape == (KERNEL_PAD, KERNEL_PAD) and k.dtype == np.float32
    assert np.isfinite(k).all()
    assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-5
    p = (KERNEL_PAD - size) // 2
    if p:  # zero padding outside the requested size
        assert not k[:p].any() and not k[:, :p].any() and not k[-p:].any() and not k[:, -p:].any()
    if kind != "sinc":
        assert (k >= 0).all()
    # every type is point-symmetric about the centre (no shift introduced)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    if kind.endswith("iso") and not kind.endswith("aniso") or kind in ("sinc", "pulse"):
        np.testing.assert_allclose(k, k.T, atol=1e-7)


def test_sampled_kernels_are_21x21_float32_summing_to_one() -> None:
    for i in range(30):
        ks = sample_kernels(CFG, np.random.default_rng([7, 0, i]))
        assert len(ks) == 3
        for k in ks:
            assert k.shape == (21, 21) and k.dtype == np.float32
            assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-5


def test_bessel_j1_matches_reference_values() -> None:
    ref = {0.5: 0.2422684576748739, 1.0: 0.4400505857449335, 10.0: 0.04347274616886144,
           30.0: -0.11875106261662294, 44.0: -0.08280335937602917}  # fmt: skip  # mpmath.besselj(1, x)
    got = bessel_j1(np.array(list(ref)))
    np.testing.assert_allclose(got, list(ref.values()), atol=1e-12)


def test_kernel_choices_match_their_probabilities() -> None:
    n = 3000
    rng = np.random.default_rng(123)
    kinds1, kinds2, finals, sizes = Counter(), Counter(), Counter(), Counter()
    for _ in range(n):
        k1, k2, k3 = sample_kernel_specs(CFG, rng)
        kinds1[k1.kind] += 1
        kinds2[k2.kind] += 1
        finals[k3.kind] += 1
        sizes[k1.size] += 1
        if k1.kind == "sinc":
            assert (math.pi / 3 if k1.size < 13 else math.pi / 5) <= k1.omega_c <= math.pi
        elif k1.kind != "pulse":
            assert 0.2 <= k1.sigma_x <= 3 and 0.2 <= k1.sigma_y <= 3
        if k2.kind not in ("sinc", "pulse"):
            assert 0.2 <= k2.sigma_x <= 1.5
    for counts, sinc_p, probs, what in (
        (kinds1, CFG.sinc_prob, CFG.kernel_prob, "kernel1"),
        (kinds2, CFG.sinc_prob2, CFG.kernel_prob2, "kernel2"),
    ):
        expected = {"sinc": sinc_p} | {k: (1 - sinc_p) * p for k, p in zip(CFG.kernel_list, probs)}
        _check_freq(counts, n, expected, what)
    _check_freq(finals, n, {"sinc": 0.8, "pulse": 0.2}, "final sinc")
    _check_freq(sizes, n, {s: 1 / 8 for s in kernel_sizes(21)}, "kernel size")


def test_kernel_list_subset_and_sizes_follow_config() -> None:
    cfg = DegradationConfig(kernel_list=("iso", "plateau_aniso"), kernel_prob=(0.25, 0.75), sinc_prob=0.0,
                            blur_kernel_size=11)  # fmt: skip
    rng = np.random.default_rng(0)
    n = 1500
    kinds, sizes = Counter(), set()
    for _ in range(n):
        k1 = sample_kernel_specs(cfg, rng)[0]
        kinds[k1.kind] += 1
        sizes.add(k1.size)
    _check_freq(kinds, n, {"iso": 0.25, "plateau_aniso": 0.75}, "kernel1")
    assert sizes == {7, 9, 11}


# ------------------------------------------------------------------------------------------------ ops


def _np_correlate_reflect(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    r = k.shape[0] // 2
    p = np.pad(img, ((0, 0), (r, r), (r, r)), mode="reflect")
    out = np.zeros_like(img, dtype=np.float64)
    for dy in range(k.shape[0]):
        for dx in range(k.shape[1]):
            out += k[dy, dx] * p[:, dy : dy + img.shape[1], dx : dx + img.shape[2]]
    return out


def test_filter2d_is_reflect_padded_correlation_even_for_tiny_images() -> None:
    rng = np.random.default_rng(0)
    for h, w in ((12, 15), (6, 9)):  # the second needs mirroring beyond F.pad's limit (pad 10 > size)
        img = rng.random((2, 3, h, w)).astype(np.float32)
        ks = rng.random((2, 21, 21))
        ks = (ks / ks.sum(axis=(1, 2), keepdims=True)).astype(np.float32)
        got = ops.filter2d(torch.from_numpy(img), torch.from_numpy(ks)).numpy()
        for i in range(2):
            np.testing.assert_allclose(got[i], _np_correlate_reflect(img[i], ks[i]), atol=1e-5)


def test_usm_fft_blur_equals_direct_correlation() -> None:
    img = _smooth_batch(1, 30, 36)  # smaller than the 51-tap kernel: exercises repeated mirroring
    k1d = ops._gaussian_1d(51, 0.0)
    got = ops.filter_separable_fft(img, k1d)
    ref = _np_correlate_reflect(img[0].numpy().astype(np.float64), np.outer(k1d.numpy(), k1d.numpy()))
    err = float(np.abs(got[0].numpy() - ref).max())
    assert err <= TOL["usm_fft_max_abs"], f"max abs {err:.3g}"
    flat = torch.full((1, 3, 20, 20), 0.3)
    assert torch.allclose(ops.usm_sharp(flat), flat, atol=1e-6)  # nothing to sharpen
    sharp = ops.usm_sharp(_smooth_batch(2, 40, 40))
    assert sharp.shape == (2, 3, 40, 40) and 0 <= sharp.min() and sharp.max() <= 1


def test_jpeg_torch_close_to_libjpeg_and_ordered_by_quality() -> None:
    img = _smooth_batch(4, 48, 40)  # not a multiple of 16: exercises the padding
    q = torch.tensor([30.0, 50.0, 75.0, 95.0])
    ours, cv = ops.jpeg_torch(img, q), ops.jpeg_cv2(img, q)
    assert ours.shape == img.shape and cv.shape == img.shape
    psnr = 10 * torch.log10(1 / ((ours - cv) ** 2).mean(dim=(1, 2, 3)))
    worst = int(psnr.argmin())
    assert psnr.min() >= TOL["jpeg_torch_vs_cv2_min_psnr"], (
        f"PSNR vs cv2 {psnr.tolist()}, worst at quality {q[worst].item()}, "
        f"max abs {(ours - cv)[worst].abs().max().item():.3f}"
    )
    err = ((ours - img) ** 2).mean(dim=(1, 2, 3))
    assert bool((err[:-1] > err[1:]).all()), f"error should fall as quality rises: {err.tolist()}"
    top = ops.jpeg_torch(img[:1], torch.tensor([100.0]))  # upstream divides by zero here
    top_psnr = float(10 * torch.log10(1 / ((top - img[:1]) ** 2).mean()))
    # measured 27.1 dB (cv2: 27.9 dB): 4:2:0 chroma subsampling of this noisy image bounds it
    assert torch.isfinite(top).all() and top_psnr > 25, f"PSNR at quality 100: {top_psnr:.2f}"


def test_jpeg_dct_matrix_equals_upstream_tensordot_form() -> None:
    # upstream dct_8x8: scale[u,v] * sum_xy block[x,y] cos((2x+1)u pi/16) cos((2y+1)v pi/16)
    t = np.zeros((8, 8, 8, 8))
    for x, y, u, v in itertools.product(range(8), repeat=4):
        t[x, y, u, v] = np.cos((2 * x + 1) * u * np.pi / 16) * np.cos((2 * y + 1) * v * np.pi / 16)
    alpha = np.array([1 / np.sqrt(2)] + [1] * 7)
    block = np.random.default_rng(0).random((8, 8)) * 255 - 128
    ref = np.outer(alpha, alpha) * 0.25 * np.tensordot(block, t, axes=2)
    np.testing.assert_allclose(ops._DCT @ block @ ops._DCT.T, ref, atol=1e-4)
    np.testing.assert_allclose((ops._DCT2 @ block.ravel()).reshape(8, 8), ref, atol=1e-4)  # the form used


def test_noise_levels_and_gray_noise() -> None:
    img = torch.full((2, 3, 64, 64), 0.5)
    gen = torch.Generator().manual_seed(0)
    out = ops.add_gaussian_noise(img, torch.tensor([10.0, 20.0]), torch.tensor([0.0, 1.0]), gen)
    std = (out - img).std(dim=(1, 2, 3)) * 255
    assert abs(std[0].item() - 10) < 0.6 and abs(std[1].item() - 20) < 1.5
    assert not torch.equal(out[0, 0], out[0, 1])  # colour noise differs per channel
    assert torch.equal(out[1, 0], out[1, 1]) and torch.equal(out[1, 1], out[1, 2])  # gray noise does not
    out = ops.add_poisson_noise(img, torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), gen)
    assert out.min() >= 0 and out.max() <= 1 and (out - img).abs().max() > 0
    assert torch.equal(out[1, 0], out[1, 2]) and not torch.equal(out[0, 0], out[0, 2])


# ----------------------------------------------------------------------------------------- the pipeline


def test_plan_choices_match_their_probabilities() -> None:
    deg = SecondOrderDegradation(CFG, scale=4, gt_size=32)
    gen = torch.Generator().manual_seed(0)
    n_batches, b = 2000, 2
    c: dict[str, Counter] = {k: Counter() for k in ("ud1", "ud2", "m1", "m2", "m3", "noise1", "noise2")}
    gray1 = blur2 = sinc_first = 0
    for _ in range(n_batches):
        plan = deg.sample_plan(b, 48, 48, gen)
        c["ud1"][plan.first.updown] += 1
        c["ud2"][plan.second.updown] += 1
        c["m1"][plan.first.resize_mode] += 1
        c["m2"][plan.second.resize_mode] += 1
        c["m3"][plan.final_mode] += 1
        c["noise1"][plan.first.noise] += 1
        c["noise2"][plan.second.noise] += 1
        gray1 += sum(plan.first.gray)
        blur2 += plan.second_blur
        sinc_first += plan.sinc_first
        for st, (lo, hi), nr, pr, jr in (
            (plan.first, CFG.resize_range, CFG.noise_range, CFG.poisson_scale_range, CFG.jpeg_range),
            (plan.second, CFG.resize_range2, CFG.noise_range2, CFG.poisson_scale_range2, CFG.jpeg_range2),
        ):
            f = st.resize_scale
            assert {"up": 1 <= f <= hi, "down": lo <= f <= 1, "keep": f == 1}[st.updown], (st.updown, f)
            rng = nr if st.noise == "gaussian" else pr
            assert all(rng[0] <= v <= rng[1] for v in st.noise_level)
            assert all(jr[0] <= q <= jr[1] for q in st.jpeg_quality)
        assert 0 <= plan.crop_top <= 4 and 0 <= plan.crop_left <= 4  # LQ 12 px, crop 8 px
    n = n_batches
    _check_freq(c["ud1"], n, dict(zip(("up", "down", "keep"), CFG.resize_prob)), "resize 1")
    _check_freq(c["ud2"], n, dict(zip(("up", "down", "keep"), CFG.resize_prob2)), "resize 2")
    for key in ("m1", "m2", "m3"):
        _check_freq(c[key], n, {m: 1 / 3 for m in RESIZE_MODES}, key)
    _check_freq(c["noise1"], n, {"gaussian": 0.5, "poisson": 0.5}, "noise 1")
    _check_freq(c["noise2"], n, {"gaussian": 0.5, "poisson": 0.5}, "noise 2")
    _check_freq(Counter(gray=gray1), n * b, {"gray": CFG.gray_noise_prob}, "gray noise")
    _check_freq(Counter(blur=blur2), n, {"blur": CFG.second_blur_prob}, "second blur")
    _check_freq(Counter(sinc=sinc_first), n, {"sinc": 0.5}, "sinc first")


@pytest.mark.parametrize("scale", [4, 2])
def test_same_seed_same_batch_and_lq_is_gt_over_scale(scale: int) -> None:
    gt = _smooth_batch(2, 48, 48)
    k1, k2, k3 = _kernels(2)
    deg = SecondOrderDegradation(CFG, scale=scale, gt_size=32)
    a = deg(gt, k1, k2, k3, torch.Generator().manual_seed(11), return_gt=True)
    b = deg(gt, k1, k2, k3, torch.Generator().manual_seed(11), return_gt=True)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    lq, gt_usm, gt_c = a
    assert lq.shape == (2, 3, 32 // scale, 32 // scale) and lq.dtype == torch.float32
    assert gt_usm.shape == gt_c.shape == (2, 3, 32, 32)
    assert 0 <= lq.min() and lq.max() <= 1
    assert torch.equal(lq, torch.round(lq * 255) / 255)  # on the 8-bit grid
    plan = deg.sample_plan(2, 48, 48, torch.Generator().manual_seed(11))  # the call's first draws
    t, l_ = plan.crop_top * scale, plan.crop_left * scale
    assert torch.equal(gt_c, gt[:, :, t : t + 32, l_ : l_ + 32]), "GT crop aligned with the LQ crop"
    other = deg(gt, k1, k2, k3, torch.Generator().manual_seed(12))
    assert not torch.equal(other[0], lq)


@pytest.mark.parametrize(
    "change",
    [
        {"sinc_first": True},
        {"sinc_first": False, "second_blur": False},
        {"first": {"updown": "up", "resize_scale": 1.5, "resize_mode": "bicubic", "noise": "poisson"}},
        {
            "first": {"updown": "down", "resize_scale": 0.15, "resize_mode": "area"},
            "second": {"resize_scale": 0.3},
        },
    ],
)
@pytest.mark.parametrize("jpeg_method", ["torch", "cv2"])
def test_forced_plans_give_lq_of_gt_over_scale(change: dict, jpeg_method: str) -> None:
    deg = SecondOrderDegradation(DegradationConfig(jpeg_method=jpeg_method), scale=4, gt_size=32)
    gt = _smooth_batch(2, 48, 48)
    gen = torch.Generator().manual_seed(3)
    plan = deg.sample_plan(2, 48, 48, gen)
    for key, val in change.items():
        if isinstance(val, dict):
            val = dataclasses.replace(getattr(plan, key), **val)
        plan = dataclasses.replace(plan, **{key: val})
    lq, gt_usm, gt_c = deg.apply(gt, *_kernels(2), plan, gen)
    assert lq.shape == (2, 3, 8, 8) and gt_usm.shape == (2, 3, 32, 32)
    assert torch.isfinite(lq).all() and 0 <= lq.min() and lq.max() <= 1


def test_lq_from_usm_false_degrades_the_plain_gt(monkeypatch: pytest.MonkeyPatch) -> None:
    gt = _smooth_batch(2, 48, 48)
    ks = _kernels(2)
    plain = SecondOrderDegradation(DegradationConfig(lq_from_usm=False), scale=4, gt_size=32)
    upstream = SecondOrderDegradation(CFG, scale=4, gt_size=32)
    lq_plain = plain(gt, *ks, torch.Generator().manual_seed(4))[0]
    lq_usm = upstream(gt, *ks, torch.Generator().manual_seed(4))[0]
    assert not torch.equal(lq_plain, lq_usm)
    # with USM made the identity, upstream's LQ is the one of the plain GT: the option swaps only the source
    monkeypatch.setattr(ops, "usm_sharp", lambda img: img.clone())
    assert torch.equal(upstream(gt, *ks, torch.Generator().manual_seed(4))[0], lq_plain)


def test_resize_antialias_low_passes_downscales_only() -> None:
    # a 1-px line every 4 px: an antialiased 4x downscale averages it to flat 0.25; a plain one samples
    # between the lines (bilinear 0, bicubic -0.07): the aliasing the option removes
    board = (torch.arange(32) % 4 == 0).float().expand(32, 32)[None, None].repeat(1, 3, 1, 1)
    for mode in ("bilinear", "bicubic"):
        aa = ops.resize(board, mode, size=(8, 8), antialias=True)
        plain = ops.resize(board, mode, size=(8, 8))
        assert aa.std() < 0.05 and abs(aa.mean() - 0.25) < 0.03, mode  # measured std 0.028 (borders)
        assert abs(plain.mean() - 0.25) > 0.15, mode
        up = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        # upscales keep upstream's kernel (torch's antialiased bicubic would switch to a = -0.5)
        assert torch.equal(ops.resize(up, mode, scale_factor=1.5, antialias=True), ops.resize(up, mode, scale_factor=1.5))
    assert torch.equal(ops.resize(board, "area", size=(8, 8), antialias=True), ops.resize(board, "area", size=(8, 8)))


def test_pipeline_passes_resize_antialias_to_every_resize(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    real = ops.resize

    def spy(*args, antialias: bool = False, **kw):  # noqa: ANN002, ANN003, ANN202
        seen.append(antialias)
        return real(*args, antialias=antialias, **kw)

    monkeypatch.setattr(ops, "resize", spy)
    gt, ks = _smooth_batch(1, 48, 48), _kernels(1)
    SecondOrderDegradation(DegradationConfig(resize_antialias=True), scale=4, gt_size=32)(
        gt, *ks, torch.Generator().manual_seed(0)
    )
    assert seen == [True, True, True]
    seen.clear()
    SecondOrderDegradation(CFG, scale=4, gt_size=32)(gt, *ks, torch.Generator().manual_seed(0))
    assert seen == [False, False, False]


@pytest.mark.parametrize("jpeg_method", ["torch", "cv2"])
def test_clean_samples_get_no_noise_and_no_jpeg(jpeg_method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gt, ks = _smooth_batch(4, 48, 48), _kernels(4)
    deg = SecondOrderDegradation(DegradationConfig(clean_prob=0.5, jpeg_method=jpeg_method), scale=4, gt_size=32)
    plan = deg.sample_plan(4, 48, 48, torch.Generator().manual_seed(0))
    plan = dataclasses.replace(plan, clean=(True, False, True, False))
    a = deg.apply(gt, *ks, plan, torch.Generator().manual_seed(1))[0]
    b = deg.apply(gt, *ks, plan, torch.Generator().manual_seed(2))[0]
    # the pixel noise is the only randomness left in apply: clean samples do not depend on it
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])
    assert not torch.equal(a[1], b[1]) and not torch.equal(a[3], b[3])
    # clean samples = the same plan with noise level 0 and JPEG skipped
    no_noise = dataclasses.replace(plan.first, noise_level=(0.0,) * 4)
    no_noise2 = dataclasses.replace(plan.second, noise_level=(0.0,) * 4)
    ref_plan = dataclasses.replace(plan, first=no_noise, second=no_noise2, clean=())
    monkeypatch.setattr(ops, "jpeg", lambda x, q, method: x)
    ref = deg.apply(gt, *ks, ref_plan, torch.Generator().manual_seed(1))[0]
    assert torch.equal(a[0], ref[0]) and torch.equal(a[2], ref[2])


def test_clean_prob_frequency_and_zero_draws_nothing() -> None:
    gen = torch.Generator().manual_seed(0)
    deg = SecondOrderDegradation(DegradationConfig(clean_prob=0.3), scale=4, gt_size=32)
    flags = [c for _ in range(300) for c in deg.sample_plan(8, 48, 48, gen).clean]
    _check_freq(Counter(clean=sum(flags)), len(flags), {"clean": 0.3}, "clean")
    up = SecondOrderDegradation(CFG, scale=4, gt_size=32)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert up.sample_plan(8, 48, 48, g1).clean == ()
    up.sample_plan(8, 48, 48, g2)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_pipeline_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="gt_size"):
        SecondOrderDegradation(CFG, scale=4, gt_size=30)
    deg = SecondOrderDegradation(CFG, scale=4, gt_size=32)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="multiple of scale"):
        deg.sample_plan(1, 50, 48, gen)
    with pytest.raises(ValueError, match="smaller than gt_size"):
        deg.sample_plan(1, 28, 48, gen)


@pytest.mark.gpu
def test_cpu_generator_drives_cuda_data_reproducibly() -> None:
    gt = _smooth_batch(2, 48, 48).cuda()
    k1, k2, k3 = (k.cuda() for k in _kernels(2))
    deg = SecondOrderDegradation(CFG, scale=4, gt_size=32)
    a = deg(gt, k1, k2, k3, torch.Generator().manual_seed(5))
    b = deg(gt, k1, k2, k3, torch.Generator().manual_seed(5))
    assert a[0].is_cuda and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = deg(gt, k1, k2, k3, torch.Generator(device="cuda").manual_seed(5))
    assert c[0].shape == (2, 3, 8, 8)


# ----------------------------------------------------------------------------------------------- pool


def _batch(start: int, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.arange(start, start + b, dtype=torch.float32)
    return ids.view(b, 1, 1, 1).expand(b, 3, 2, 2).clone(), ids.view(b, 1, 1, 1).expand(b, 3, 8, 8).clone()


def test_pool_fills_then_swaps_shuffled_pairs() -> None:
    pool = TrainingPairPool(queue_size=4)
    gen = torch.Generator().manual_seed(0)
    seen = []
    for step in range(2):  # filling: the batch passes through
        lq, gt = _batch(10 * step)
        out_lq, out_gt = pool(lq, gt, gen)
        assert torch.equal(out_lq, lq) and torch.equal(out_gt, gt) and pool.ptr == 2 * (step + 1)
        seen += [10 * step, 10 * step + 1]
    assert pool.full
    held = set(seen)
    for step in range(2, 8):
        lq, gt = _batch(10 * step)
        out_lq, out_gt = pool(lq, gt, gen)
        ids = out_lq[:, 0, 0, 0].tolist()
        assert torch.equal(out_gt[:, 0, 0, 0], out_lq[:, 0, 0, 0])  # pairs stay paired
        assert set(ids) <= held, "returned pairs come from the pool"
        held = (held - set(ids)) | {10 * step, 10 * step + 1}
        assert set(pool.queue_lq[:, 0, 0, 0].tolist()) == held and len(held) == 4


def test_pool_is_deterministic_and_resumable() -> None:
    def run(pool: TrainingPairPool, steps: range, seed_gen: torch.Generator) -> list[list[float]]:
        return [pool(*_batch(10 * s), seed_gen)[0][:, 0, 0, 0].tolist() for s in steps]

    ref = run(TrainingPairPool(4), range(8), torch.Generator().manual_seed(1))
    assert ref == run(TrainingPairPool(4), range(8), torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    first = TrainingPairPool(4)
    head = run(first, range(4), gen)
    state, gen_state = first.state_dict(), gen.get_state()
    second = TrainingPairPool(4)
    second.load_state_dict(state)
    gen2 = torch.Generator()
    gen2.set_state(gen_state)
    assert head + run(second, range(4, 8), gen2) == ref


def test_pool_rejects_batch_not_dividing_queue() -> None:
    pool = TrainingPairPool(queue_size=180)
    with pytest.raises(ValueError, match="queue_size: 180 is not divisible by the batch size 7"):
        pool(*_batch(0, b=7), torch.Generator())
    pool = TrainingPairPool(queue_size=4)
    pool(*_batch(0), torch.Generator())
    with pytest.raises(ValueError, match="differ"):
        pool(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 16, 16), torch.Generator())
    with pytest.raises(ValueError, match="queue_size"):
        TrainingPairPool(queue_size=0)
