"""Checkpoint -> ONNX with dynamic batch/height/width and sr-deploy metadata (ModelInfo in metadata_props).

Both torch exporters are supported (``exporter="torchscript"``: the legacy ``torch.onnx.export(dynamo=False)``;
``exporter="dynamo"``: ``torch.export`` + onnxscript). :data:`DEFAULT_EXPORTER` was chosen by measurement
(``benchmarks/exporters.py``; figures in docs/export.md, "Exporter choice").
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from sr_runtime import __version__
from sr_runtime.errors import SrError
from sr_runtime.fileio import atomic_write
from sr_runtime.info import ModelInfo
from sr_train.archs.registry import ArchSpec

Exporter = Literal["torchscript", "dynamo"]

DEFAULT_EXPORTER: Exporter = "torchscript"
"""The exporter used unless told otherwise (see DESIGN.md, "Export decisions")."""
DEFAULT_OPSET = 17
"""Default opset of the torchscript exporter (TensorRT 10/11, TensorRT-RTX and ORT >= 1.14 take it)."""
DYNAMO_DEFAULT_OPSET = 18
"""Default opset of the dynamo exporter (its lowest native opset; older ones go through a version converter)."""
INPUT_DIMS = ("batch", "channels", "height", "width")
OUTPUT_DIMS = ("batch", "channels", "out_height", "out_width")


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


def _name_dims(proto: Any, info: ModelInfo) -> None:
    """Give the dynamic axes stable names (the dynamo exporter writes ``s77``, ``4*((s53//2))``)."""
    for values, names in ((proto.graph.input, INPUT_DIMS), (proto.graph.output, OUTPUT_DIMS)):
        for vi in values:
            for i, dim in enumerate(vi.type.tensor_type.shape.dim):
                if not dim.HasField("dim_value"):
                    dim.dim_param = names[i]


def _export_torchscript(model: nn.Module, dummy: torch.Tensor, tmp: str, info: ModelInfo, opset: int) -> None:
    with warnings.catch_warnings():
        # chosen deliberately (DESIGN.md, "Export decisions"); the deprecation notice is not the user's concern
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*", category=DeprecationWarning)
        _torchscript_call(model, dummy, tmp, info, opset)


def _torchscript_call(model: nn.Module, dummy: torch.Tensor, tmp: str, info: ModelInfo, opset: int) -> None:
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


def _export_dynamo(model: nn.Module, dummy: torch.Tensor, tmp: str, info: ModelInfo, opset: int) -> None:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        from sr_runtime.errors import MissingExtraError

        raise MissingExtraError("onnxscript", "export", "the dynamo ONNX exporter") from None
    dyn = torch.export.Dim.DYNAMIC
    program = torch.onnx.export(
        model,
        (dummy,),
        input_names=[info.input_name],
        output_names=[info.output_name],
        dynamic_shapes=({0: dyn, 2: dyn, 3: dyn},),
        opset_version=opset,
        dynamo=True,
        optimize=True,
        verbose=False,
    )
    program.save(tmp)


def export_onnx(
    model: nn.Module,
    spec: ArchSpec,
    hparams: dict[str, Any],
    path: str | Path,
    opset: int | None = None,
    info_fields: dict[str, Any] | None = None,
    *,
    exporter: Exporter = DEFAULT_EXPORTER,
) -> ModelInfo:
    """Export ``model`` to ONNX: input ``input``, output ``output``, float32 NCHW RGB in [0, 1], dynamic N/H/W.

    The file carries the :class:`ModelInfo` in ``metadata_props`` and passes ``onnx.checker``. It is written
    to a temp file in the target folder and renamed, so a failure leaves nothing behind.

    Args:
        model: the generator (moved to CPU, eval mode).
        spec: its architecture.
        hparams: its hyperparameters (all of them go into the metadata).
        path: the ``.onnx`` to write.
        opset: ONNX opset; None: 17 for torchscript, 18 for dynamo.
        info_fields: extra ModelInfo fields (``source_sha256``, ``dni``, ``name``, ``extra``...).
        exporter: ``torchscript`` (legacy) or ``dynamo``.

    Returns:
        The ModelInfo stored in the file.

    Raises:
        SrError: an unknown exporter name.
        MissingExtraError: the dynamo exporter without onnxscript.
    """
    import onnx

    if exporter not in ("torchscript", "dynamo"):
        raise SrError(f"unknown ONNX exporter {exporter!r}", "Use torchscript or dynamo.")
    if opset is None:
        opset = DYNAMO_DEFAULT_OPSET if exporter == "dynamo" else DEFAULT_OPSET
    model = model.eval().cpu()
    mult = spec.size_multiple(hparams)
    cin = int(hparams.get("num_in_ch", 3))
    # 16*mult keeps the tracer away from size-1 special cases; the batch of 2 stops the dynamo exporter from
    # specialising N to 1 (0/1 specialisation of torch.export).
    dummy = torch.rand(2, cin, 16 * mult, 16 * mult)
    info = make_info(spec, hparams, exporter=exporter, opset=opset, **(info_fields or {}))

    def write(tmp: str) -> None:
        with torch.no_grad():
            if exporter == "dynamo":
                _export_dynamo(model, dummy, tmp, info, opset)
            else:
                _export_torchscript(model, dummy, tmp, info, opset)
        proto = onnx.load(tmp)
        _name_dims(proto, info)
        for k, v in info.to_metadata_props().items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.checker.check_model(proto)
        onnx.save(proto, tmp)

    atomic_write(path, write)
    return info
