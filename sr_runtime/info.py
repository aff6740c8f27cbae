"""ModelInfo: what a deployed model file says about itself, readable without torch.

sr-export writes it into the ONNX ``metadata_props`` (one key per field, values JSON-encoded, keys prefixed
``sr.``) and into the JSON sidecar of a TensorRT engine; sr-run reads it back so that the scale, channels and
safe tile padding never have to be guessed. :func:`read_onnx_info` reads it from an ONNX file with the ``onnx``
package (no onnxruntime, no external weight files); every backend and the TensorRT build use it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sr_runtime.errors import ModelFileError

PREFIX = "sr."
"""Prefix of our keys in ONNX ``metadata_props``."""
MODEL_SUFFIXES_TORCH = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")
"""Checkpoint suffixes that sr-run does not run (they must be exported first)."""

Dtype = Literal["float32", "float16"]
Precision = Literal["float32", "float16", "int8"]


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of an exported super-resolution model.

    The network maps ``(N, in_channels, H, W)`` in ``value_range`` to ``(N, out_channels, H*scale, W*scale)``,
    RGB channel order.
    """

    arch: str
    """Architecture id, equal to the official class name (``RRDBNet``, ``SRVGGNetCompact``)."""
    scale: int
    """Upscaling factor of the network."""
    in_channels: int = 3
    """Input channels (3 = RGB)."""
    out_channels: int = 3
    """Output channels."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """Every constructor hyperparameter of the architecture."""
    receptive_radius: int = 0
    """Input pixels of context needed so that tiled output equals whole-image output."""
    size_multiple: int = 1
    """Input height and width must be multiples of this (4 for RRDBNet scale 1, 2 for scale 2)."""
    value_range: tuple[float, float] = (0.0, 1.0)
    """Range of input and output values."""
    io_dtype: Dtype = "float32"
    """Element type of the input and output tensors."""
    precision: Precision = "float32"
    """Element type of the weights and compute (``int8``: a QDQ graph, float32 input/output; sr-export --int8)."""
    input_name: str = "input"
    """Name of the input tensor."""
    output_name: str = "output"
    """Name of the output tensor."""
    source_sha256: str = ""
    """sha256 of the source checkpoint."""
    dni: dict[str, Any] | None = None
    """DNI blend: ``{"sources": [sha_a, sha_b], "names": [...], "weight": w}`` or None."""
    version: str = ""
    """sr-deploy version that exported the file."""
    exporter: str = ""
    """Which torch exporter made the ONNX (``dynamo`` or ``torchscript``)."""
    opset: int = 0
    """ONNX opset."""
    name: str = ""
    """A short model name (defaults to the checkpoint's stem)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else (profile, built_for, notes); kept as-is."""

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict of every field."""
        d = dataclasses.asdict(self)
        d["value_range"] = list(self.value_range)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str | Path | None = None) -> ModelInfo:
        """Build from :meth:`to_dict` output; unknown keys go to ``extra``.

        Raises:
            ModelFileError: required fields are missing or of the wrong type.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        extra = dict(known.pop("extra", {}) or {})
        extra.update({k: v for k, v in d.items() if k not in names})
        for required in ("arch", "scale"):
            if required not in known:
                raise ModelFileError(
                    f"model metadata lacks '{required}'",
                    "Re-export the model with sr-export so that it carries sr-deploy metadata.",
                    source,
                )
        try:
            if "value_range" in known:
                known["value_range"] = tuple(float(x) for x in known["value_range"])
            for k in ("scale", "in_channels", "out_channels", "receptive_radius", "size_multiple", "opset"):
                if k in known:
                    known[k] = int(known[k])
            return cls(**known, extra=extra)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"bad model metadata ({exc})", "Re-export the model with sr-export.", source) from None

    def to_metadata_props(self) -> dict[str, str]:
        """Return ``{"sr.<field>": json}`` for ONNX ``metadata_props``."""
        return {PREFIX + k: json.dumps(v, sort_keys=True) for k, v in self.to_dict().items()}

    @classmethod
    def from_metadata_props(cls, props: dict[str, str], source: str | Path | None = None) -> ModelInfo:
        """Inverse of :meth:`to_metadata_props`; keys without our prefix are ignored.

        Raises:
            ModelFileError: the file carries no sr-deploy metadata or it is malformed.
        """
        d: dict[str, Any] = {}
        for k, v in props.items():
            if not k.startswith(PREFIX):
                continue
            try:
                d[k[len(PREFIX):]] = json.loads(v)
            except json.JSONDecodeError:
                raise ModelFileError(
                    f"metadata key '{k}' is not valid JSON", "Re-export the model with sr-export.", source
                ) from None
        if not d:
            raise ModelFileError(
                "the model carries no sr-deploy metadata (scale, channels, padding)",
                "sr-run probes such an ONNX with ONNX Runtime; for TensorRT, write a copy with metadata first: "
                "sr-export --metadata MODEL.onnx.",
                source,
            )
        return cls.from_dict(d, source)

    def to_json(self) -> str:
        """Return the info as indented JSON (the TensorRT sidecar's ``model`` entry)."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def replace(self, **changes: Any) -> ModelInfo:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------- reading an ONNX file
def export_first_error(path: str | Path) -> ModelFileError:
    """The error for a training checkpoint given where an exported model is expected."""
    p = Path(path)
    return ModelFileError(f"sr-run runs exported models; run 'sr-export {p.name}' first", "", p)


def check_model_path(path: Path) -> None:
    """Refuse a training checkpoint (with the export hint) and a missing file before any parsing.

    Raises:
        ModelFileError: a checkpoint suffix, or no such file.
    """
    if path.suffix.lower() in MODEL_SUFFIXES_TORCH:
        raise export_first_error(path)
    if not path.is_file():
        raise ModelFileError("model file not found", "Check the path given to --model.", path)


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """Read ``ModelProto.metadata_props`` of an ONNX file with the ``onnx`` package.

    The model is parsed without its external data files (``load_external_data=False``); weights stored inside
    the file are parsed too (protobuf has no partial parse): about 0.1 s and a transient twice the file's size
    for a 64 MB model, plus ~40 ms and ~13 MB for ``import onnx`` (docs/runtime.md). sr-run's ONNX Runtime
    backend therefore takes the metadata from its own session instead; this reader serves ``--info``, the
    TensorRT build and tools.

    Raises:
        ModelFileError: missing file, a training checkpoint, or bytes that are not an ONNX model (truncated,
            corrupt, no graph).
        MissingExtraError: the ``onnx`` package is not installed.
    """
    p = Path(path)
    check_model_path(p)
    try:
        import onnx
    except ImportError:
        from sr_runtime.errors import MissingExtraError

        raise MissingExtraError("onnx", "ort", "reading ONNX model metadata") from None
    try:
        if p.stat().st_size == 0:
            raise ValueError("empty file")
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError, OSError, or anything else from a bad file
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ModelFileError(
            f"not a readable ONNX model ({text})",
            "Re-export it with sr-export; a training checkpoint must be exported first.",
            p,
        ) from None
    if not proto.HasField("graph"):
        raise ModelFileError("not an ONNX model (no graph)", "Re-export it with sr-export.", p)
    check_external_data(proto, p)
    return {prop.key: prop.value for prop in proto.metadata_props}


def _tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of a graph: initializers and node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for g in attr.graphs:
                yield from _tensors(g)


def check_external_data(proto: Any, path: Path) -> None:
    """Refuse external weight files outside the model's folder before any reader opens them.

    ONNX Runtime checks this itself (1.32: absolute paths, ``..`` and symlinks that leave the folder); the
    TensorRT parser follows a symlink out of the folder, so every ONNX read through this module is checked here:
    a location must be relative, without ``..``, and resolve (symlinks followed) inside the model's folder.

    Raises:
        ModelFileError: naming the tensor and the location.
    """
    folder = os.path.realpath(path.parent)
    for t in _tensors(proto.graph):
        if t.data_location != 1:  # TensorProto.EXTERNAL
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        target = os.path.realpath(os.path.join(folder, loc))
        if (not loc or os.path.isabs(loc) or ".." in Path(loc).parts
                or os.path.commonpath([folder, target]) != folder):
            raise ModelFileError(f"the weights of tensor '{t.name[:80]}' point outside the model's folder "
                                 f"({loc[:120]!r})", "Refusing to read them: keep external data files next to "
                                 "the model (sr-export writes self-contained files).", path)


def read_onnx_info(path: str | Path) -> ModelInfo:
    """The :class:`ModelInfo` stored in an ONNX file by sr-export (see :func:`read_onnx_metadata`).

    Raises:
        ModelFileError: see :func:`read_onnx_metadata`, or the file carries no (valid) sr-deploy metadata.
    """
    return ModelInfo.from_metadata_props(read_onnx_metadata(path), path)
