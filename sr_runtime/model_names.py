"""Models found by name (``sr-run -n NAME``, upstream's ``-n/--model_name`` and realesrgan-ncnn-vulkan's ``-n``).

A name is looked up in the models folders, in this order (the first that has it wins):

1. ``--models-dir DIR`` (``models_dir``), or ncnn's ``-m DIR`` (a folder given as the model);
2. every folder of ``$SR_DEPLOY_MODELS`` (``os.pathsep``-separated);
3. ``./weights`` (where upstream's ``inference_realesrgan.py`` keeps its downloads);
4. the user's data folder: ``$XDG_DATA_HOME/sr-deploy/models``, else ``~/.local/share/sr-deploy/models``
   (platformdirs' ``user_data_dir`` on Linux: models a user keeps, unlike the caches under ``~/.cache/sr-deploy``
   that sr-deploy fills and may empty).

In a folder, ``NAME`` matches a file named ``NAME`` itself, else ``NAME`` plus a model suffix (:data:`SUFFIXES`,
exported models before checkpoints), else the same with case and ``-``/``_`` ignored, so that ncnn's
``realesrgan-x4plus`` finds upstream's ``RealESRGAN_x4plus.pth`` (and :data:`NCNN_NAMES` maps the one ncnn name
that differs more). Nothing is ever downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sr_runtime.errors import ModelFileError

ENV = "SR_DEPLOY_MODELS"
"""Environment variable: extra models folders, ``os.pathsep``-separated."""
SUFFIXES = (".onnx", ".engine", ".plan", ".pth", ".safetensors", ".pt")
"""Model suffixes, in the order a bare name tries them (an exported model before a checkpoint)."""
NCNN_NAMES = {"realesrgan-x4plus-anime": "RealESRGAN_x4plus_anime_6B"}
"""realesrgan-ncnn-vulkan's model names that differ from upstream's file names by more than case and -/_."""


def user_models_dir() -> Path:
    """``$XDG_DATA_HOME/sr-deploy/models``, else ``~/.local/share/sr-deploy/models``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sr-deploy" / "models"


def models_folders(models_dir: str | Path | None = None) -> list[Path]:
    """The folders a name is looked up in, in order (see the module docstring); folders that do not exist
    are kept (``--list-models`` shows them as missing)."""
    folders = [Path(models_dir)] if models_dir else []
    folders += [Path(p) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
    folders += [Path("weights"), user_models_dir()]
    seen: list[Path] = []
    for f in folders:
        if f not in seen:
            seen.append(f)
    return seen


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _match(folder: Path, name: str) -> Path | None:
    if not folder.is_dir():
        return None
    exact = folder / name
    if exact.is_file():
        return exact
    for suffix in SUFFIXES:
        if (folder / (name + suffix)).is_file():
            return folder / (name + suffix)
    loose = [p for p in sorted(folder.iterdir()) if _norm(p.stem) == _norm(name) and p.suffix.lower() in SUFFIXES]
    loose.sort(key=lambda p: SUFFIXES.index(p.suffix.lower()))
    return next((p for p in loose if p.is_file()), None)


def find_model(name: str, models_dir: str | Path | None = None) -> Path:
    """The model file called ``name`` in the models folders.

    Raises:
        ModelFileError: no folder has it (names the folders searched and how to add one).
    """
    folders = models_folders(models_dir)
    for folder in folders:
        found = _match(folder, name) or _match(folder, NCNN_NAMES.get(name.lower(), name))
        if found is not None:
            return found
    where = ", ".join(str(f) for f in folders)
    raise ModelFileError(f"no model named '{name}' in the models folders ({where})",
                         f"Put {name}.onnx (or .pth) in one of them, pass --models-dir DIR or ${ENV}, "
                         "or give the file with --model (sr-run --list-models shows what is found).", name)


@dataclass(frozen=True)
class FoundModel:
    """One entry of :func:`list_models`."""

    name: str
    """What ``-n`` takes (the file name without its suffix)."""
    path: Path
    """The file."""


def list_models(models_dir: str | Path | None = None) -> list[tuple[Path, list[FoundModel]]]:
    """Every models folder with the models in it (an empty list for a missing or empty folder)."""
    result = []
    for folder in models_folders(models_dir):
        found = []
        if folder.is_dir():
            found = [FoundModel(p.stem, p) for p in sorted(folder.iterdir())
                     if p.suffix.lower() in SUFFIXES and p.is_file()]
        result.append((folder, found))
    return result
