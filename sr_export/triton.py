"""A Triton Inference Server model-repository entry for an exported model.

Layout (Triton's model repository convention)::

    REPO_DIR/<name>/config.pbtxt
    REPO_DIR/<name>/1/model.onnx     platform onnxruntime_onnx
    REPO_DIR/<name>/1/model.plan     platform tensorrt_plan (a TensorRT engine, never a TensorRT-RTX one)

Input/output names and dtypes come from the model's metadata; H and W are dynamic (-1) and the batch axis is
Triton's (``max_batch_size``). The sr-deploy metadata (scale, padding, size multiple...) goes into
``parameters`` so that a client can tile without guessing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sr_runtime.errors import SrError
from sr_runtime.info import ModelInfo

TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16"}
"""ModelInfo io dtypes -> Triton ``DataType`` names."""
PLATFORMS = {".onnx": ("onnxruntime_onnx", "model.onnx"), ".plan": ("tensorrt_plan", "model.plan"),
             ".engine": ("tensorrt_plan", "model.plan")}
"""Artifact suffix -> (Triton platform, file name in the version folder)."""


def triton_name(name: str) -> str:
    """A model name safe as a folder name and Triton model name (letters, digits, ``_ - .``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    if not cleaned:
        raise SrError(f"model name {name!r} has no usable characters", "Pass an output name with letters or digits.")
    return cleaned


def _dir_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def _q(s: str) -> str:
    return json.dumps(s)  # a protobuf text-format string literal for plain ASCII names


def make_config(name: str, info: ModelInfo, platform: str, max_batch_size: int) -> str:
    """Return the ``config.pbtxt`` text (protobuf text format of Triton's ``ModelConfig``).

    Args:
        name: Triton model name (the folder name).
        info: metadata of the exported model.
        platform: ``onnxruntime_onnx`` or ``tensorrt_plan``.
        max_batch_size: largest batch Triton may form (>= 1; for a plan at most the profile's max N).
    """
    dtype = TRITON_DTYPES[info.io_dtype]
    params = {
        "sr.arch": info.arch,
        "sr.scale": str(info.scale),
        "sr.receptive_radius": str(info.receptive_radius),
        "sr.size_multiple": str(info.size_multiple),
        "sr.value_range": f"{info.value_range[0]:g},{info.value_range[1]:g}",
        "sr.precision": info.precision,
        "sr.channel_order": "RGB",
        "sr.layout": "NCHW",
    }
    lines = [
        f"name: {_q(name)}",
        f"platform: {_q(platform)}",
        f"max_batch_size: {int(max_batch_size)}",
        "input [",
        "  {",
        f"    name: {_q(info.input_name)}",
        f"    data_type: {dtype}",
        f"    dims: [ {info.in_channels}, -1, -1 ]",
        "  }",
        "]",
        "output [",
        "  {",
        f"    name: {_q(info.output_name)}",
        f"    data_type: {dtype}",
        f"    dims: [ {info.out_channels}, -1, -1 ]",
        "  }",
        "]",
        "dynamic_batching { }",
    ]
    for k, v in params.items():
        lines += ["parameters {", f"  key: {_q(k)}", f"  value {{ string_value: {_q(v)} }}", "}"]
    return "\n".join(lines) + "\n"


def write_triton_entry(
    repo_dir: str | Path,
    name: str,
    artifact: str | Path,
    info: ModelInfo,
    *,
    max_batch_size: int,
    sidecar: dict[str, Any] | None = None,
) -> Path:
    """Write (or replace) ``repo_dir/<name>/`` with ``config.pbtxt`` and ``1/model.onnx|model.plan``.

    The entry is assembled in a temp folder inside ``repo_dir`` and renamed into place, so a failure never
    leaves a half-written entry.

    Args:
        repo_dir: the model repository (created if its parent exists).
        name: model name (sanitised with :func:`triton_name`).
        artifact: the ``.onnx`` or TensorRT ``.engine``/``.plan`` to serve.
        info: its metadata.
        max_batch_size: Triton's max batch size.
        sidecar: the engine sidecar (engines only): a TensorRT-RTX engine is refused, and ``max_batch_size``
            is capped at the profile's max N.

    Returns:
        The entry folder.

    Raises:
        SrError: an unknown artifact type, a TensorRT-RTX engine, a bad batch size or a missing parent folder.
    """
    repo = Path(repo_dir)
    artifact = Path(artifact)
    suffix = artifact.suffix.lower()
    if suffix not in PLATFORMS:
        raise SrError(f"Triton cannot serve a '{suffix}' file", "Serve the .onnx or a TensorRT .plan.", artifact)
    platform, filename = PLATFORMS[suffix]
    if platform == "tensorrt_plan" and sidecar is not None:
        if sidecar.get("flavor") == "rtx":
            raise SrError("Triton's tensorrt_plan platform loads TensorRT engines, not TensorRT-RTX ones",
                          "Use --trt-flavor tensorrt for Triton, or drop --trt to serve the ONNX.", artifact)
        max_batch_size = min(max_batch_size, int(sidecar["profile"]["max"][0]))
    if max_batch_size < 1:
        raise SrError(f"max batch size {max_batch_size} is below 1", "Pass --max-batch 1 or more.")
    if not repo.parent.is_dir():
        raise SrError("the parent folder of the Triton repository does not exist", "Create it first.", repo)
    repo.mkdir(exist_ok=True)
    name = triton_name(name)
    final = repo / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repo))
    try:
        os.chmod(tmp, _dir_mode())  # mkdtemp makes it 0o700; Triton often runs as another user
        (tmp / "1").mkdir()
        shutil.copyfile(artifact, tmp / "1" / filename)
        (tmp / "config.pbtxt").write_text(make_config(name, info, platform, max_batch_size))
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=repo))
            os.replace(final, old / name)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
