"""fp32 ONNX -> fp16 ONNX (weights and compute in fp16), with the metadata updated.

TensorRT 11.x and TensorRT-RTX take precision only from the ONNX (strongly typed networks), so this file is also
what an fp16 engine is built from. The conversion uses onnxconverter-common's ``convert_float_to_float16``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

from sr_runtime.errors import MissingExtraError, ModelFileError
from sr_runtime.fileio import atomic_write
from sr_runtime.info import PREFIX, ModelInfo

IoDtype = Literal["float32", "float16"]


def convert_fp16(src: str | Path, dst: str | Path, *, io_dtype: IoDtype = "float32") -> ModelInfo:
    """Write an fp16 copy of an sr-deploy ONNX.

    Args:
        src: fp32 ONNX written by :func:`sr_export.onnx.export_onnx`.
        dst: the fp16 ONNX to write (atomically).
        io_dtype: ``float32`` keeps float32 input/output (Cast nodes at the ends, so callers need no change);
            ``float16`` makes the input and output tensors fp16 too (half the host<->device traffic).

    Returns:
        The ModelInfo stored in ``dst`` (``precision="float16"``, ``io_dtype`` as given).

    Raises:
        MissingExtraError: onnxconverter-common is not installed.
        ModelFileError: ``src`` carries no sr-deploy metadata.
    """
    import onnx

    try:
        from onnxconverter_common import float16
    except ImportError:
        raise MissingExtraError("onnxconverter_common", "export", "--fp16") from None
    if io_dtype not in ("float32", "float16"):
        raise ModelFileError(f"unknown io dtype {io_dtype!r}", "Use float32 or float16.")
    proto = onnx.load(str(src))
    props = {p.key: p.value for p in proto.metadata_props}
    info = ModelInfo.from_metadata_props(props, src).replace(precision="float16", io_dtype=io_dtype)
    with warnings.catch_warnings():
        # it warns once per weight below fp16's smallest subnormal (flushed to 1e-7): expected, not actionable
        warnings.filterwarnings("ignore", message=".*will be truncated to.*")
        half = float16.convert_float_to_float16(proto, keep_io_types=io_dtype == "float32")
    del half.metadata_props[:]
    for k, v in props.items():
        if not k.startswith(PREFIX):
            entry = half.metadata_props.add()
            entry.key, entry.value = k, v
    for k, v in info.to_metadata_props().items():
        entry = half.metadata_props.add()
        entry.key, entry.value = k, v

    def write(tmp: str) -> None:
        onnx.checker.check_model(half)
        onnx.save(half, tmp)

    atomic_write(dst, write)
    return info
