"""int8 quantization of a generator in PyTorch: fake-quant convs, calibration and channel equalization.

One model of the int8 network serves post-training quantization (``sr-export --int8``) and quantization-aware
fine-tuning (the ``qat`` config of ``sr-train``), so the two can never disagree about where the quantizers sit:

* every quantized ``Conv2d`` becomes a :class:`QuantConv2d` (same parameters, same state-dict keys) that
  fake-quantizes its **input** per tensor (uint8, asymmetric) and its **weight** per output channel (int8,
  symmetric, scale ``max|w| / 127``); outputs, activations (PReLU), the pixel shuffle and the residual add of the
  upsampled input stay float. This is the placement OpenVINO fuses (int8 convolution with the activation as a
  post-op) and what ``torch.onnx.export`` writes as ``QuantizeLinear``/``DequantizeLinear`` pairs.
* the network input (an 8-bit image in [0, 1]) is quantized with scale 1/255 and zero point 0, which is exact
  for 8-bit images (``input_exact``).

The calibration recipe (:class:`Recipe`) was chosen by measurement (docs/int8.md): channel equalization across
conv -> PReLU -> conv (PReLU is positively homogeneous, so the fp32 function is unchanged), activation ranges
that minimise the quantization error of each tensor, empirical bias correction, and layers left in float by
sensitivity. The fake-quant ops are ``torch.fake_quantize_per_tensor_affine`` and
``torch.fake_quantize_per_channel_affine`` (straight-through gradients for QAT).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

RangeMethod = Literal["minmax", "percentile", "mse"]

QMIN_ACT, QMAX_ACT = 0, 255
"""Activations: uint8, asymmetric."""
QMIN_W, QMAX_W = -128, 127
"""Weights: int8 with a symmetric scale ``max|w| / 127`` (so -128 is never used: VNNI-safe)."""
W_LEVELS = 127.0


@dataclass(frozen=True)
class Recipe:
    """How a model is quantized (the defaults are the measured best, docs/int8.md).

    Attributes:
        fp32_convs: indices (in module order, 0 = first conv; negative from the end) of convs left in float.
        equalize: scale channels across conv -> PReLU/ReLU -> conv chains before calibration.
        equalize_alpha: migration strength of the equalization (0.5 balances activation and weight ranges).
        ranges: activation range estimation: ``minmax``, ``percentile`` or ``mse`` (minimum quantization MSE).
        percentile: the upper percentile for ``percentile`` (the lower one is ``100 - percentile``).
        bias_correction: correct each quantized conv's mean output shift on the calibration data.
        input_exact: quantize the network input with scale 1/255 (exact for 8-bit images).
    """

    fp32_convs: tuple[int, ...] = (-1,)
    equalize: bool = True
    equalize_alpha: float = 0.5
    ranges: RangeMethod = "mse"
    percentile: float = 99.99
    bias_correction: bool = True
    input_exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible fields (the ONNX metadata's ``int8.recipe``)."""
        return {"fp32_convs": list(self.fp32_convs), "equalize": self.equalize,
                "equalize_alpha": self.equalize_alpha, "ranges": self.ranges, "percentile": self.percentile,
                "bias_correction": self.bias_correction, "input_exact": self.input_exact}


# ------------------------------------------------------------------------------------------ fake quant
class ActQuant(nn.Module):
    """Per-tensor uint8 fake quantization with a fixed range (``set_range``); identity until a range is set."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("zero_point", torch.zeros((), dtype=torch.int32))
        self.register_buffer("enabled", torch.zeros((), dtype=torch.bool))

    def set_range(self, lo: float, hi: float) -> None:
        """Use ``[lo, hi]`` (widened to contain 0, so that zero is exact)."""
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        scale = max(hi - lo, 1e-8) / (QMAX_ACT - QMIN_ACT)
        zp = int(round(QMIN_ACT - lo / scale))
        self.set_qparams(scale, min(max(zp, QMIN_ACT), QMAX_ACT))

    def set_qparams(self, scale: float, zero_point: int) -> None:
        """Set scale and zero point directly (e.g. 1/255 and 0 for 8-bit images)."""
        self.scale.fill_(scale)
        self.zero_point.fill_(zero_point)
        self.enabled.fill_(True)

    def range(self) -> tuple[float, float]:
        """The float range ``[lo, hi]`` that maps to ``[0, 255]``."""
        s, z = float(self.scale), int(self.zero_point)
        return (QMIN_ACT - z) * s, (QMAX_ACT - z) * s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.enabled):
            return x
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, QMIN_ACT, QMAX_ACT)


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric scale ``max|w| / 127`` of a conv weight ``(O, I, kh, kw)``."""
    return (w.detach().abs().amax(dim=(1, 2, 3)) / W_LEVELS).clamp_min(1e-12)


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """Fake-quantize a conv weight per output channel (straight-through gradient)."""
    scale = weight_scale(w).float()
    zp = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
    return torch.fake_quantize_per_channel_affine(w, scale, zp, 0, QMIN_W, QMAX_W)


class QuantConv2d(nn.Conv2d):
    """A ``Conv2d`` whose input and weight are fake-quantized; same parameters and keys as the conv it replaces.

    ``act`` quantizes the input per tensor (uint8), the weight is quantized per output channel (int8) at every
    call, so that quantization-aware training sees its own weights' grid.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                         device=conv.weight.device, dtype=conv.weight.dtype)
        self.weight = conv.weight
        self.bias = conv.bias
        self.act = ActQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.act(x), quantize_weight(self.weight), self.bias)


# ------------------------------------------------------------------------------------------ structure
def conv_paths(model: nn.Module) -> list[str]:
    """Qualified names of every ``Conv2d`` of ``model``, in module order."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _resolve(indices: Iterable[int], n: int) -> set[int]:
    return {i % n for i in indices if -n <= i < n}


def _set_module(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)


def prepare(model: nn.Module, fp32_convs: Sequence[int] = ()) -> list[str]:
    """Replace every conv of ``model`` (in place) by a :class:`QuantConv2d`, except ``fp32_convs``.

    Returns:
        The names of the quantized convs (new or already quantized), in module order.
    """
    paths = conv_paths(model)
    keep = _resolve(fp32_convs, len(paths))
    quantized = []
    for i, path in enumerate(paths):
        conv = model.get_submodule(path)
        if i in keep:
            continue
        if not isinstance(conv, QuantConv2d):
            _set_module(model, path, QuantConv2d(conv))
        quantized.append(path)
    return quantized


def quant_convs(model: nn.Module) -> list[tuple[str, QuantConv2d]]:
    """The :class:`QuantConv2d` modules of ``model`` with their names."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantConv2d)]


def strip(model: nn.Module) -> nn.Module:
    """Replace every :class:`QuantConv2d` (in place) by a plain ``Conv2d`` with the same parameters."""
    for path, q in quant_convs(model):
        conv = nn.Conv2d(q.in_channels, q.out_channels, q.kernel_size, q.stride, q.padding, q.dilation, q.groups,
                         q.bias is not None, q.padding_mode)
        conv.weight, conv.bias = q.weight, q.bias
        _set_module(model, path, conv)
    return model


def act_ranges(model: nn.Module) -> dict[str, list[float]]:
    """``{conv name: [lo, hi]}`` of every enabled input quantizer (what QAT stores and export reuses)."""
    return {n: list(q.act.range()) for n, q in quant_convs(model) if bool(q.act.enabled)}


def load_act_ranges(model: nn.Module, ranges: dict[str, Sequence[float]]) -> None:
    """Set the input quantizers from :func:`act_ranges` output (names must match)."""
    convs = dict(quant_convs(model))
    for name, (lo, hi) in ranges.items():
        if name in convs:
            convs[name].act.set_range(lo, hi)


# ------------------------------------------------------------------------------------------ statistics
Batches = Sequence[torch.Tensor]


def _channel_peaks(model: nn.Module, modules: Sequence[nn.Module], batches: Batches) -> list[torch.Tensor]:
    """The largest ``|output|`` per channel of each of ``modules`` over ``batches``."""
    peaks: list[torch.Tensor | None] = [None] * len(modules)

    def hook(k: int, out: torch.Tensor) -> None:
        m = out.detach().abs().amax(dim=(0, 2, 3))
        prev = peaks[k]
        peaks[k] = m if prev is None else torch.maximum(prev, m)

    handles = [m.register_forward_hook(lambda _m, _i, o, k=k: hook(k, o)) for k, m in enumerate(modules)]
    try:
        with torch.no_grad():
            for x in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
    return [p if p is not None else torch.ones(1) for p in peaks]


def _samples(x: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    flat = x.detach().flatten()
    if flat.numel() <= n:
        return flat.clone()
    return flat[torch.randint(flat.numel(), (n,), generator=gen)]


def _fq(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    scale = max(hi - lo, 1e-8) / (QMAX_ACT - QMIN_ACT)
    zp = int(min(max(round(QMIN_ACT - lo / scale), QMIN_ACT), QMAX_ACT))
    return torch.fake_quantize_per_tensor_affine(x, scale, zp, QMIN_ACT, QMAX_ACT)


def choose_range(values: torch.Tensor, method: RangeMethod, percentile: float = 99.99) -> tuple[float, float]:
    """A per-tensor range ``[lo, hi]`` for the sampled activation ``values``.

    ``minmax`` takes the extremes; ``percentile`` the ``100-p`` and ``p`` percentiles; ``mse`` searches clipping
    percentiles on both sides for the least quantization MSE (the error of every sample, clipped or not).
    """
    v = values.float()
    lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
    if method == "minmax":
        return lo, hi
    if method == "percentile":
        q = torch.quantile(v[: 1 << 24], torch.tensor([1 - percentile / 100, percentile / 100]))
        return min(float(q[0]), 0.0), max(float(q[1]), 0.0)
    qs = torch.tensor([0.0, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    sub = v[: 1 << 24]
    los = [min(float(x), 0.0) for x in torch.quantile(sub, qs)]
    his = [max(float(x), 0.0) for x in torch.quantile(sub, 1 - qs)]
    best = (float("inf"), lo, hi)
    for a in los:
        for b in his:
            err = float(((_fq(v, a, b) - v) ** 2).mean())
            if err < best[0]:
                best = (err, a, b)
    return best[1], best[2]


# ------------------------------------------------------------------------------------------ equalization
def equalization_chains(model: nn.Module) -> list[tuple[nn.Conv2d, nn.Module, nn.Conv2d]]:
    """``(conv, activation, next conv)`` triples of a sequential ``body`` (SRVGGNetCompact) where the activation
    is PReLU, ReLU or LeakyReLU (positively homogeneous: ``f(s*x) = s*f(x)`` for ``s > 0``); empty otherwise."""
    body = getattr(model, "body", None)
    if not isinstance(body, nn.ModuleList):
        return []
    layers = list(body)
    acts = (nn.PReLU, nn.ReLU, nn.LeakyReLU)
    return [(a, f, b) for a, f, b in zip(layers, layers[1:], layers[2:], strict=False)
            if isinstance(a, nn.Conv2d) and isinstance(f, acts) and isinstance(b, nn.Conv2d)
            and b.in_channels == a.out_channels and b.groups == 1]


def equalize(model: nn.Module, batches: Batches, alpha: float = 0.5, rounds: int = 2) -> int:
    """Rescale channels across conv -> act -> conv chains (in place; the float function is unchanged).

    Channel ``c`` of the first conv's output is divided by ``s_c`` and input channel ``c`` of the next conv is
    multiplied by it, with ``s_c = a_c**alpha / w_c**(1-alpha)`` (``a_c``: the channel's activation range on
    ``batches``; ``w_c``: the largest weight reading it), the SmoothQuant rule; the activation range per tensor
    then no longer follows the widest channel.

    Returns:
        The number of chains equalized.
    """
    chains = equalization_chains(model)
    if not chains:
        return 0
    for _ in range(rounds):
        peaks = _channel_peaks(model, [f for _, f, _ in chains], batches)
        with torch.no_grad():
            for (a, _f, b), peak in zip(chains, peaks, strict=True):
                act = peak.clamp_min(1e-6)
                w = b.weight.abs().amax(dim=(0, 2, 3)).clamp_min(1e-8)
                s = (act.pow(alpha) / w.pow(1 - alpha)).clamp(1e-4, 1e4)
                a.weight.div_(s.view(-1, 1, 1, 1))
                if a.bias is not None:
                    a.bias.div_(s)
                b.weight.mul_(s.view(1, -1, 1, 1))
    return len(chains)


# ------------------------------------------------------------------------------------------ calibration
@dataclass
class Calibration:
    """What calibration measured (the ONNX metadata's ``int8.calibration``)."""

    quantized: list[str] = field(default_factory=list)
    fp32: list[str] = field(default_factory=list)
    ranges: dict[str, list[float]] = field(default_factory=dict)
    equalized_chains: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible fields."""
        return {"quantized": self.quantized, "fp32": self.fp32, "equalized_chains": self.equalized_chains,
                "ranges": {k: [round(v, 6) for v in r] for k, r in self.ranges.items()}}


class _Stop(Exception):
    """Raised by a capture hook to end a forward pass early (the rest of the network is not needed)."""


def _inputs(model: nn.Module, path: str, batches: Batches) -> list[torch.Tensor]:
    """The input of module ``path`` for each batch, running ``model`` only up to that module."""
    got: list[torch.Tensor] = []

    def hook(_m: nn.Module, i: tuple[torch.Tensor, ...]) -> None:
        got.append(i[0].detach())
        raise _Stop

    handle = model.get_submodule(path).register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            for x in batches:
                try:
                    model(x)
                except _Stop:
                    pass
    finally:
        handle.remove()
    return got


def _correct_bias(q: QuantConv2d, ref_conv: nn.Module, q_in: list[torch.Tensor], ref_in: list[torch.Tensor]) -> None:
    """Subtract from the conv's bias its mean output error against the float model's conv on its float input."""
    if q.bias is None:
        return
    with torch.no_grad():
        err = torch.zeros_like(q.bias)
        n = 0
        for xq, xr in zip(q_in, ref_in, strict=True):
            d = q(xq) - ref_conv(xr)
            err += d.sum(dim=(0, 2, 3))
            n += d.shape[0] * d.shape[2] * d.shape[3]
        q.bias.sub_(err / max(n, 1))


def _calibrate(model: nn.Module, reference: nn.Module | None, batches: Batches, recipe: Recipe, seed: int) -> None:
    """Set each input quantizer, then correct the conv's bias, in module order: each step sees the earlier
    convs already quantized (sequential calibration)."""
    gen = torch.Generator().manual_seed(seed)
    first = conv_paths(model)[0]
    ref_convs = dict(reference.named_modules()) if reference is not None else {}
    for name, q in quant_convs(model):
        xs = _inputs(model, name, batches)
        if recipe.input_exact and name == first:
            q.act.set_qparams(1.0 / 255.0, 0)
        else:
            per_batch = max(1, (1 << 20) // max(1, len(xs)))
            values = torch.cat([_samples(x, per_batch, gen) for x in xs])
            q.act.set_range(*choose_range(values, recipe.ranges, recipe.percentile))
        if reference is not None:
            _correct_bias(q, ref_convs[name], xs, _inputs(reference, name, batches))


def quantize(model: nn.Module, batches: Batches, recipe: Recipe = Recipe(), seed: int = 0) -> Calibration:
    """Post-training quantization of ``model`` in place: equalize, insert fake quant, calibrate, correct biases.

    Args:
        model: a float generator (eval mode, CPU); it is modified.
        batches: calibration inputs, float32 ``(N, C, h, w)`` in [0, 1].
        recipe: the choices.
        seed: sampling seed of the range statistics.

    Returns:
        The names of quantized and float convs, the ranges and how many chains were equalized.
    """
    import copy

    model.eval()
    chains = equalize(model, batches, recipe.equalize_alpha) if recipe.equalize else 0
    reference = strip(copy.deepcopy(model)) if recipe.bias_correction else None
    all_convs = conv_paths(model)
    quantized = prepare(model, recipe.fp32_convs)
    _calibrate(model, reference, batches, recipe, seed)
    return Calibration(quantized, [p for p in all_convs if p not in quantized], act_ranges(model), chains)
