"""DNI (deep network interpolation): a weighted blend of two checkpoints of one architecture."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from sr_runtime.errors import ModelFileError


def interpolate(
    a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """Blend two state dicts tensor by tensor: ``weight * a + (1 - weight) * b`` (upstream's dni_weight [w, 1-w]).

    Floating tensors are blended in float32 and cast back; integer tensors (counters) must be equal.

    Args:
        a: first state dict (e.g. realesr-general-x4v3).
        b: second state dict of the same architecture (e.g. realesr-general-wdn-x4v3).
        weight: weight of ``a``, in [0, 1] (upstream: the denoise strength).

    Returns:
        A new state dict with the keys of ``a`` in its order.

    Raises:
        ModelFileError: the weight is outside [0, 1], or the key sets or shapes differ (names the first key).
    """
    if not 0.0 <= float(weight) <= 1.0:
        raise ModelFileError(f"DNI weight {weight} is outside [0, 1]", "Pass a weight between 0 and 1.")
    for k in a:
        if k not in b:
            raise ModelFileError(
                f"DNI: key '{k}' of the first model is missing from the second",
                "Blend two checkpoints of the same architecture and size.",
            )
    for k in b:
        if k not in a:
            raise ModelFileError(
                f"DNI: key '{k}' of the second model is missing from the first",
                "Blend two checkpoints of the same architecture and size.",
            )
    out: dict[str, torch.Tensor] = {}
    w = float(weight)
    for k, ta in a.items():
        tb = b[k]
        if ta.shape != tb.shape:
            raise ModelFileError(
                f"DNI: key '{k}' has shape {tuple(ta.shape)} in the first model and {tuple(tb.shape)} in the second",
                "Blend two checkpoints of the same architecture and size.",
            )
        if ta.is_floating_point():
            out[k] = (w * ta.float() + (1.0 - w) * tb.float()).to(ta.dtype)
        else:
            if not torch.equal(ta, tb):
                raise ModelFileError(f"DNI: integer tensor '{k}' differs between the models", "Use matching checkpoints.")
            out[k] = ta.clone()
    return out
