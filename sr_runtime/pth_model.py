"""A training checkpoint as sr-run's model (``sr-run -m RealESRGAN_x4plus.pth``, ``Upscaler(model_path="x.pth")``).

The checkpoint is exported once with sr-export's pipeline (:func:`sr_export.pipeline.export`: the same ONNX and
the same parity check against PyTorch as ``sr-export x.pth``) into the engine cache folder, under a name keyed
by the checkpoint's SHA-256, and that ONNX runs; later runs find it there. This needs torch (the ``export``
extra); without it the error says so in one line.

This is the one place where the torch-free runtime calls the export layer, and only lazily, inside
:func:`exported_onnx` (``tests/test_import_rules.py`` allows exactly this import).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

from sr_runtime.errors import MissingExtraError, ModelFileError

LOG = logging.getLogger("sr_runtime")
SUBFOLDER = "checkpoints"
"""Where the exported ONNX files go inside the engine cache folder."""


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_onnx_path(path: Path, digest: str, cache_dir: str | Path | None = None) -> Path:
    """``<cache>/checkpoints/<stem>_<first 16 hex digits of the hash>.onnx``."""
    from sr_runtime.backends.trt.cache import default_cache_dir

    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem)
    return Path(cache_dir or default_cache_dir()) / SUBFOLDER / f"{stem}_{digest[:16]}.onnx"


def check_container(path: Path) -> None:
    """Refuse, before torch is imported (seconds), a file that cannot be a checkpoint: a ``.pth``/``.pt`` is a
    zip archive (torch >= 1.6) or a pickle (older torch: protocol 2 starts with ``0x80``); ``.safetensors`` and
    anything else are left to sr-export's loader.

    Raises:
        ModelFileError: neither a zip archive nor a pickle.
    """
    if path.suffix.lower() not in (".pth", ".pt", ".ckpt"):
        return
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and not (len(head) == 2 and head[0] == 0x80 and head[1] >= 2):
        raise ModelFileError("not a PyTorch checkpoint (neither a zip archive nor a pickle)",
                             "Pass a Real-ESRGAN/ESRGAN generator checkpoint (.pth or .safetensors).", path)


def _missing_extra(path: Path, module: str = "torch") -> MissingExtraError:
    err = MissingExtraError(module.split(".")[0], "export", f"a {path.suffix} model (exported to ONNX on first use)")
    err.path = str(path)
    return err


def exported_onnx(path: str | Path, notify: Callable[[str], None] | None = None,
                  cache_dir: str | Path | None = None) -> Path:
    """The checked ONNX of checkpoint ``path``, exported on first use and cached.

    Args:
        path: a ``.pth``/``.pt``/``.safetensors`` checkpoint of a supported architecture.
        notify: receives one line when an export starts and each parity line (default: the logger).
        cache_dir: the engine cache folder (default: ``$SR_DEPLOY_CACHE`` or ``~/.cache/sr-deploy/engines``).

    Raises:
        ModelFileError: no such file, not a checkpoint (:func:`check_container`), or one sr-export cannot load.
        MissingExtraError: torch (the ``export`` extra) is not installed.
        ParityError: the ONNX does not match PyTorch (nothing is cached).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError("model file not found", "Check the path given to --model.", p)
    say = notify or LOG.info
    onnx = cached_onnx_path(p, file_sha256(p), cache_dir)
    if onnx.is_file():
        return onnx
    check_container(p)
    if importlib.util.find_spec("torch") is None:
        raise _missing_extra(p)
    try:
        from sr_export.pipeline import ExportOptions, export, require_torch

        require_torch()
    except (ImportError, MissingExtraError) as exc:  # torch or another module of the extra missing (or blocked)
        raise _missing_extra(p, getattr(exc, "name", None) or "torch") from None
    say(f"{p.name}: exporting to ONNX once, checked against PyTorch, into {onnx.parent}")
    export(p, ExportOptions(output=onnx), say=lambda line: say(f"{p.name}: {line.strip()}") if "parity" in line
           else None)
    return onnx
