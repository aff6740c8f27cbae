"""Load generators from untrusted checkpoint files; save them atomically in the official layout.

Loading never unpickles code: ``.pth``/``.pt`` go through ``torch.load(weights_only=True)``, ``.safetensors``
through safetensors. Official dicts (``params_ema`` preferred over ``params``), bare state dicts, ``module.``
and ``_orig_mod.`` prefixes and the old ESRGAN layouts are accepted.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sr_runtime.errors import MissingExtraError, ModelFileError
from sr_runtime.fileio import atomic_write
from sr_train.archs import REGISTRY
from sr_train.archs.registry import ArchSpec
from sr_train.archs.rrdbnet import convert_old_layout, is_old_layout

PARAM_KEYS = ("params_ema", "params")
"""Official checkpoint keys, in order of preference (upstream RealESRGANer prefers ``params_ema``)."""
STRIP_PREFIXES = ("module.", "_orig_mod.")
"""Prefixes added by DataParallel/DDP and torch.compile."""
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")
BAD_FILE_HINT = "Pass a Real-ESRGAN/ESRGAN generator checkpoint (.pth or .safetensors)."


@dataclass
class LoadedGenerator:
    """A generator loaded from a file."""

    model: nn.Module
    """The network in eval mode on the CPU, weights loaded with ``strict=True``."""
    spec: ArchSpec
    """Its architecture."""
    hparams: dict[str, Any]
    """Constructor hyperparameters inferred from the tensor shapes."""
    state_dict: dict[str, torch.Tensor]
    """The official-key state dict that was loaded."""
    source_key: str
    """Which entry was used: ``params_ema``, ``params`` or ``""`` for a bare state dict."""
    sha256: str
    """sha256 of the file."""
    path: Path
    """The file."""


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_raw(path: Path) -> Any:
    if not path.exists():
        raise ModelFileError("file not found", "Check the path.", path)
    if path.is_dir():
        raise ModelFileError("is a folder, not a checkpoint", BAD_FILE_HINT, path)
    if path.stat().st_size == 0:
        raise ModelFileError("file is empty (0 bytes)", "Download or copy the checkpoint again.", path)
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise MissingExtraError("safetensors", "train", "loading .safetensors") from None
        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a bad header
            raise ModelFileError(f"not a valid safetensors file ({_short(exc)})", BAD_FILE_HINT, path) from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "GLOBAL" in text or "Unsupported global" in text or "Unsupported class" in text:
            raise ModelFileError(
                "refused: the file holds pickled Python objects, not plain tensors (it could run code)",
                "Use a weights-only checkpoint; re-save it from trusted code as a state dict or .safetensors.",
                path,
            ) from None
        raise ModelFileError("not a PyTorch checkpoint", BAD_FILE_HINT, path) from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError, OSError, IndexError) as exc:
        if "truncat" in str(exc).lower() or "central directory" in str(exc).lower() or isinstance(exc, EOFError):
            raise ModelFileError("file is truncated or corrupt", "Download or copy the checkpoint again.", path) from None
        raise ModelFileError(f"not a PyTorch checkpoint ({_short(exc)})", BAD_FILE_HINT, path) from None
    except Exception as exc:  # noqa: BLE001 - the legacy loader raises KeyError etc. on arbitrary bytes
        raise ModelFileError(f"not a PyTorch checkpoint ({type(exc).__name__}: {_short(exc)})", BAD_FILE_HINT,
                             path) from None


def _short(exc: BaseException, limit: int = 120) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def extract_state_dict(
    obj: Any, path: str | Path | None = None, key: str | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """Pick the generator state dict out of a loaded checkpoint object.

    Args:
        obj: what ``torch.load``/safetensors returned.
        path: the file, for error messages.
        key: a preferred entry (BasicSR's ``param_key_g``); falls back to ``params_ema`` > ``params``.

    Returns:
        ``(state_dict, source_key)`` with official keys; ``source_key`` is ``params_ema``, ``params`` or ``""``.

    Raises:
        ModelFileError: no tensors found.
    """
    if not isinstance(obj, Mapping):
        raise ModelFileError(f"holds a {type(obj).__name__}, not a state dict", BAD_FILE_HINT, path)
    order = (key, *PARAM_KEYS, "state_dict") if key else (*PARAM_KEYS, "state_dict")
    key = ""
    for k in order:
        if isinstance(obj.get(k), Mapping):
            obj, key = obj[k], k
            break
    sd: dict[str, torch.Tensor] = {}
    for k, v in obj.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            continue
        for p in STRIP_PREFIXES:
            while k.startswith(p):
                k = k[len(p):]
        sd[k] = v
    if not sd:
        raise ModelFileError("contains no tensors", BAD_FILE_HINT, path)
    if is_old_layout(sd):
        try:
            sd = convert_old_layout(sd)
        except ValueError as exc:
            raise ModelFileError(str(exc), "Only x4 old-layout ESRGAN models are supported.", path) from None
    return sd, key


def read_state_dict(path: str | Path, key: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Read a checkpoint file safely and return ``(official-key state dict, source_key)``.

    ``key`` prefers one entry of an official dict (e.g. ``params``), as BasicSR's ``param_key_g``.
    """
    path = Path(path)
    return extract_state_dict(_read_raw(path), path, key)


def build_from_state_dict(
    sd: Mapping[str, torch.Tensor], path: str | Path | None = None, arch: str | None = None
) -> tuple[nn.Module, ArchSpec, dict[str, Any]]:
    """Detect the architecture, infer hyperparameters, build and load with ``strict=True``.

    Raises:
        ModelFileError: unknown architecture (lists the known ones) or tensors of the wrong size.
    """
    spec = REGISTRY.get(arch) if arch else REGISTRY.detect(sd)
    if spec is None:
        sample = ", ".join(list(sd)[:3])
        raise ModelFileError(
            f"unknown architecture (keys start {sample})",
            f"Supported architectures: {', '.join(REGISTRY.ids())}.",
            path,
        )
    try:
        hparams = spec.infer_hparams(sd)
        model = spec.build(**hparams)
    except (KeyError, ValueError, IndexError, ZeroDivisionError) as exc:
        raise ModelFileError(f"{spec.id} keys are incomplete ({_short(exc)})", BAD_FILE_HINT, path) from None
    expected = model.state_dict()
    for k, v in expected.items():
        if k not in sd:
            raise ModelFileError(f"{spec.id} key '{k}' is missing", BAD_FILE_HINT, path)
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ModelFileError(
                f"{spec.id} key '{k}' has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}",
                "The file mixes tensors of different models; use an unmodified checkpoint.",
                path,
            )
    unexpected = [k for k in sd if k not in expected]
    if unexpected:
        raise ModelFileError(
            f"{spec.id} has unexpected key '{unexpected[0]}'", "Use an unmodified checkpoint.", path
        )
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model, spec, hparams


def load_generator(path: str | Path, arch: str | None = None) -> LoadedGenerator:
    """Load a generator checkpoint from an untrusted file.

    Args:
        path: ``.pth``/``.pt`` (weights-only pickle) or ``.safetensors``.
        arch: force an architecture id instead of detecting it.

    Returns:
        A :class:`LoadedGenerator` (model in eval mode on the CPU).

    Raises:
        ModelFileError: the file is missing, not a checkpoint, refused, or of an unknown architecture.
    """
    path = Path(path)
    sd, key = read_state_dict(path)
    model, spec, hparams = build_from_state_dict(sd, path, arch)
    return LoadedGenerator(model, spec, hparams, dict(sd), key, file_sha256(path), path)


def _cpu_state(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sd.items():
        for p in STRIP_PREFIXES:
            while k.startswith(p):
                k = k[len(p):]
        out[k] = v.detach().cpu().contiguous()
    return out


def save_checkpoint(
    path: str | Path,
    params: Mapping[str, torch.Tensor] | None = None,
    params_ema: Mapping[str, torch.Tensor] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a generator checkpoint in the official layout, atomically.

    ``.pth``/``.pt``: ``{"params": ..., "params_ema": ...}`` (either may be omitted, not both), loadable by
    upstream ``RealESRGANer``, plus the ``extra`` entries (QAT's ``int8``; plain data, ``weights_only``-safe). ``.safetensors``: one flat state dict (``params_ema`` if given, else ``params``)
    with ``{"sr_deploy_key": ...}`` in the header metadata.
    """
    if params is None and params_ema is None:
        raise ValueError("save_checkpoint needs params or params_ema")
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import save_file

        key = "params_ema" if params_ema is not None else "params"
        sd = _cpu_state(params_ema if params_ema is not None else params)  # type: ignore[arg-type]
        return atomic_write(path, lambda tmp: save_file(sd, tmp, metadata={"format": "pt", "sr_deploy_key": key}))
    obj: dict[str, Any] = {}
    if params is not None:
        obj["params"] = _cpu_state(params)
    if params_ema is not None:
        obj["params_ema"] = _cpu_state(params_ema)
    obj.update(extra or {})
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
