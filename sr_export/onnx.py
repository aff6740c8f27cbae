"""Checkpoint -> ONNX with dynamic batch/height/width and sr-deploy metadata (ModelInfo in metadata_props)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from sr_runtime import __version__
from sr_runtime.info import ModelInfo
from sr_train.archs.registry import ArchSpec
from sr_train.checkpoint import atomic_write

DEFAULT_OPSET = 17


def make_info(spec: ArchSpec, hparams: dict[str, Any], **fields: Any) -> ModelInfo:
    """ModelInfo for a model of this spec and hyperparameters (extra fields override)."""
    scale = spec.scale(hparams)
    return ModelInfo(
        arch=spec.id,
        scale=scale,
        in_channels=int(hparams.get("num_in_ch", 3)),
        out_channels=int(hparams.get("num_out_ch", 3)),
        hparams=dict(hparams),
        receptive_radius=spec.receptive_radius(hparams),
        size_multiple=spec.size_multiple(hparams),
        version=__version__,
        **fields,
    )


def export_onnx(
    model: nn.Module,
    spec: ArchSpec,
    hparams: dict[str, Any],
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    info_fields: dict[str, Any] | None = None,
) -> ModelInfo:
    """Export ``model`` to ONNX (input ``input``, output ``output``, NCHW RGB [0, 1], dynamic N/H/W).

    Written to a temp file and renamed. Returns the ModelInfo stored in the file's metadata.
    """
    import onnx

    model = model.eval().cpu()
    mult = spec.size_multiple(hparams)
    cin = int(hparams.get("num_in_ch", 3))
    dummy = torch.rand(1, cin, 16 * mult, 16 * mult)
    info = make_info(spec, hparams, exporter="torchscript", opset=opset, **(info_fields or {}))

    def write(tmp: str) -> None:
        torch.onnx.export(
            model,
            (dummy,),
            tmp,
            input_names=[info.input_name],
            output_names=[info.output_name],
            dynamic_axes={info.input_name: {0: "batch", 2: "height", 3: "width"},
                          info.output_name: {0: "batch", 2: "out_height", 3: "out_width"}},
            opset_version=opset,
            dynamo=False,
        )
        proto = onnx.load(tmp)
        for k, v in info.to_metadata_props().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)

    atomic_write(path, write)
    return info
