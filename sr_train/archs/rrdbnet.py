"""RRDBNet (ESRGAN / Real-ESRGAN x4plus generator): its registry spec, official BasicSR state-dict keys.

Torch-free (a config is validated without torch): detection, hyperparameters, sizes and key layouts work on
state-dict keys and shapes; the network itself is :class:`sr_train.archs.rrdbnet_arch.RRDBNet`.

Also converts the old ESRGAN key layouts (``model.0.weight`` ... and ``RRDB_trunk.*``) used by most community
ESRGAN models to the official keys.
"""

from __future__ import annotations

import re
from typing import Any

from sr_train.archs.registry import ArchSpec, StateDict

UNSHUFFLE = {1: 4, 2: 2, 4: 1}
"""Pixel-unshuffle factor applied to the input for each supported scale."""


_BODY = re.compile(r"^body\.(\d+)\.rdb1\.conv1\.weight$")


def detect(sd: StateDict) -> bool:
    """Official RRDBNet keys (after old-layout conversion)."""
    return all(k in sd for k in ("conv_first.weight", "conv_body.weight", "conv_up1.weight", "conv_last.weight"))


def infer_hparams(sd: StateDict) -> dict[str, Any]:
    """Recover num_in/out_ch, scale (from the pixel-unshuffle width), num_feat, num_block, num_grow_ch."""
    first = sd["conv_first.weight"]
    num_feat, in_raw = int(first.shape[0]), int(first.shape[1])
    num_out_ch = int(sd["conv_last.weight"].shape[0])
    num_block = 1 + max((int(m.group(1)) for k in sd if (m := _BODY.match(k))), default=-1)
    num_grow_ch = int(sd["body.0.rdb1.conv1.weight"].shape[0]) if num_block else 32
    scale, num_in_ch = 4, in_raw
    for s, f in ((1, 4), (2, 2)):
        if in_raw == num_out_ch * f * f:
            scale, num_in_ch = s, in_raw // (f * f)
            break
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_out_ch,
        "scale": scale,
        "num_feat": num_feat,
        "num_block": num_block,
        "num_grow_ch": num_grow_ch,
    }


def receptive_radius(hp: dict[str, Any]) -> int:
    """Chained 3x3 convs: 2 + 15 per RRDB at (unshuffled) input resolution, ~1.25 more from the upsampling
    convs; times the unshuffle factor, rounded up."""
    factor = UNSHUFFLE[int(hp.get("scale", 4))]
    return factor * (15 * int(hp.get("num_block", 23)) + 4)


def flops_per_pixel(hp: dict[str, Any]) -> float:
    """Conv FLOPs (2 x MACs) per input pixel."""
    f, g, n = hp.get("num_feat", 64), hp.get("num_grow_ch", 32), hp.get("num_block", 23)
    cin, cout = hp.get("num_in_ch", 3), hp.get("num_out_ch", 3)
    u = UNSHUFFLE[int(hp.get("scale", 4))]
    rdb = sum((f + i * g) * g for i in range(4)) + (f + 4 * g) * f
    low = cin * u * u * f + 3 * n * rdb + f * f  # per unshuffled pixel
    high = 4 * f * f + 16 * (f * f + f * f + f * cout)
    return 2.0 * 9 * (low + high) / (u * u)


# --------------------------------------------------------------------------- old ESRGAN layouts
_OLD_RDB = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_TRUNK = re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\.conv(\d)\.(weight|bias)$")


def is_old_layout(sd: StateDict) -> bool:
    """True for the original ESRGAN layouts (``model.0.weight`` or ``RRDB_trunk.*``)."""
    return "model.0.weight" in sd or any(k.startswith("RRDB_trunk.") for k in sd)


def convert_old_layout(sd: StateDict) -> dict[str, Any]:
    """Rename old ESRGAN keys to the official RRDBNet keys (tensors are shared, not copied).

    Raises:
        ValueError: a layout that does not map onto RRDBNet (e.g. a x2/x8 old model with 1 or 3 upconvs).
    """
    out: dict[str, Any] = {}
    if any(k.startswith("RRDB_trunk.") for k in sd):
        names = {"trunk_conv": "conv_body", "upconv1": "conv_up1", "upconv2": "conv_up2", "HRconv": "conv_hr"}
        for k, v in sd.items():
            if m := _TRUNK.match(k):
                out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = v
            else:
                head, _, tail = k.partition(".")
                out[f"{names.get(head, head)}.{tail}"] = v
        return out
    top = sorted({int(k.split(".")[1]) for k in sd if re.match(r"^model\.\d+\.weight$", k)})
    # top-level convs: 0 = conv_first, then upconvs, then HR conv and last conv
    if len(top) != 5 or top[0] != 0:
        raise ValueError(f"old ESRGAN layout with {max(len(top) - 3, 0)} upsampling convs: only x4 maps to RRDBNet")
    sub = [int(m[1]) for k in sd if (m := re.match(r"^model\.1\.sub\.(\d+)\.weight$", k))]
    trunk = max(sub) if sub else None
    names = {top[0]: "conv_first", top[1]: "conv_up1", top[2]: "conv_up2", top[3]: "conv_hr", top[4]: "conv_last"}
    for k, v in sd.items():
        if m := _OLD_RDB.match(k):
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = v
        elif trunk is not None and (m := re.match(rf"^model\.1\.sub\.{trunk}\.(weight|bias)$", k)):
            out[f"conv_body.{m[1]}"] = v
        elif (m := re.match(r"^model\.(\d+)\.(weight|bias)$", k)) and int(m[1]) in names:
            out[f"{names[int(m[1])]}.{m[2]}"] = v
        else:
            out[k] = v
    return out


def to_old_layout(sd: StateDict) -> dict[str, Any]:
    """Official keys -> the ``model.N`` ESRGAN layout (x4 only); used by tests and for old tools."""
    n_block = 1 + max(int(m.group(1)) for k in sd if (m := _BODY.match(k)))
    names = {"conv_first": "model.0", "conv_body": f"model.1.sub.{n_block}", "conv_up1": "model.3",
             "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"}
    out: dict[str, Any] = {}
    for k, v in sd.items():
        if m := re.match(r"^body\.(\d+)\.rdb(\d)\.conv(\d)\.(weight|bias)$", k):
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = v
        else:
            head, _, tail = k.partition(".")
            out[f"{names[head]}.{tail}"] = v
    return out


DEFAULTS = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32}


def build(**hparams: Any) -> Any:
    """Build the network (this imports torch) with official defaults for any hyperparameter not given."""
    from sr_train.archs.rrdbnet_arch import RRDBNet

    return RRDBNet(**{**DEFAULTS, **hparams})


RRDBNET = ArchSpec(
    id="RRDBNet",
    build=build,
    detect=detect,
    infer_hparams=infer_hparams,
    receptive_radius=receptive_radius,
    scale=lambda hp: int(hp.get("scale", 4)),
    size_multiple=lambda hp: UNSHUFFLE[int(hp.get("scale", 4))],
    flops_per_pixel=flops_per_pixel,
    defaults=DEFAULTS,
)

__all__ = ["RRDBNET", "UNSHUFFLE", "convert_old_layout", "is_old_layout", "to_old_layout"]
