"""SRVGGNetCompact (Real-ESRGAN's compact VGG-style network): its registry spec and official state-dict keys.

Torch-free (a config is validated without torch); the network is
:class:`sr_train.archs.srvgg_arch.SRVGGNetCompact`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sr_train.archs.registry import ArchSpec, StateDict

_CONV_KEY = re.compile(r"^body\.(\d+)\.weight$")


def _conv_indices(sd: StateDict) -> list[int]:
    return sorted(int(m.group(1)) for k in sd if (m := _CONV_KEY.match(k)) and getattr(sd[k], "ndim", 0) == 4)


def detect(sd: StateDict) -> bool:
    """SRVGGNetCompact keys: ``body.0.weight`` (4-D) and no RRDBNet keys."""
    w = sd.get("body.0.weight")
    return w is not None and getattr(w, "ndim", 0) == 4 and "conv_first.weight" not in sd


def infer_hparams(sd: StateDict) -> dict[str, Any]:
    """Recover every hyperparameter from the keys and shapes.

    ``num_out_ch`` cannot be separated from ``upscale`` in the last conv (``out * upscale^2`` channels); as
    upstream models always have ``num_out_ch == num_in_ch``, that is assumed. relu and leakyrelu carry no
    weights and cannot be told apart: non-prelu checkpoints are read as leakyrelu unless told otherwise.
    """
    convs = _conv_indices(sd)
    first = sd["body.0.weight"]
    num_feat, num_in_ch = int(first.shape[0]), int(first.shape[1])
    last = sd[f"body.{convs[-1]}.weight"]
    num_out_ch = num_in_ch
    upscale = int(round(math.sqrt(int(last.shape[0]) / num_out_ch)))
    prelu = "body.1.weight" in sd
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "num_feat": num_feat,
        "num_conv": len(convs) - 2,
        "upscale": upscale,
        "act_type": "prelu" if prelu else "leakyrelu",
    }


def receptive_radius(hp: dict[str, Any]) -> int:
    """num_conv + 2 chained 3x3 convs at input resolution: radius num_conv + 2."""
    return int(hp.get("num_conv", 16)) + 2


def flops_per_pixel(hp: dict[str, Any]) -> float:
    """Conv FLOPs (2 x MACs) per input pixel."""
    f, n = hp.get("num_feat", 64), hp.get("num_conv", 16)
    cin, cout, s = hp.get("num_in_ch", 3), hp.get("num_out_ch", 3), hp.get("upscale", 4)
    return 2.0 * 9 * (cin * f + n * f * f + f * cout * s * s)


DEFAULTS = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"}


def build(**hparams: Any) -> Any:
    """Build the network (this imports torch) with official defaults for any hyperparameter not given."""
    from sr_train.archs.srvgg_arch import SRVGGNetCompact

    return SRVGGNetCompact(**{**DEFAULTS, **hparams})


SRVGG_COMPACT = ArchSpec(
    id="SRVGGNetCompact",
    build=build,
    detect=detect,
    infer_hparams=infer_hparams,
    receptive_radius=receptive_radius,
    scale=lambda hp: int(hp.get("upscale", 4)),
    size_multiple=lambda hp: 1,
    flops_per_pixel=flops_per_pixel,
    defaults=DEFAULTS,
)
