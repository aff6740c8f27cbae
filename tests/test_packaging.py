"""Packaging: the runtime core and the [ort] extra never pull torch; console scripts exist."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _reqs(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_runtime_install_has_no_torch():
    cfg = _cfg()
    core = _reqs(cfg["options"]["install_requires"])
    ort = _reqs(cfg["options.extras_require"]["ort"])
    assert not [r for r in core + ort if r.lower().startswith("torch")]
    names = {r.split(">")[0].split("=")[0] for r in core}
    assert names == {"numpy", "opencv-python-headless", "click", "tqdm", "onnx", "pypng", "tifffile"}


def test_ort_and_ort_gpu_are_separate_extras():
    extras = _cfg()["options.extras_require"]
    for name in ("ort", "ort-gpu", "trt", "trt-rtx", "train", "export", "dev"):
        assert name in extras
    assert not any("onnxruntime-gpu" in r for r in _reqs(extras["ort"]))
    assert not any(r.startswith("onnxruntime>") for r in _reqs(extras["ort-gpu"]))


def test_console_scripts():
    scripts = _cfg()["options.entry_points"]["console_scripts"]
    for name in ("sr-train = sr_train.cli:main", "sr-export = sr_export.cli:main", "sr-run = sr_runtime.cli:main"):
        assert name in scripts


def test_pyproject_holds_only_build_system_and_tools():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert set(data) <= {"build-system", "tool"}


def test_one_version():
    """sr_runtime.__version__ is the one version literal; setup.cfg, sr_train and sr_export read it."""
    import re

    import sr_export
    import sr_runtime
    import sr_train

    assert sr_train.__version__ == sr_export.__version__ == sr_runtime.__version__
    literals = [p for pkg in ("sr_runtime", "sr_train", "sr_export") for p in (ROOT / pkg).rglob("*.py")
                if re.search(r"^__version__\s*=", p.read_text(), re.M)]
    assert literals == [ROOT / "sr_runtime" / "__init__.py"]
    assert _cfg()["metadata"]["version"].strip() == "attr: sr_runtime.__version__"


def test_package_data_folders_are_packages():
    """Every folder with package data is in `packages` (else setuptools warns at every install), no caches are,
    and no deprecated licence classifier is left (the licence is an SPDX expression)."""
    from setuptools import find_namespace_packages

    cfg = _cfg()
    find = cfg["options.packages.find"]
    assert cfg["options"]["packages"].strip() == "find_namespace:"
    packages = set(find_namespace_packages(where=str(ROOT), include=_reqs(find["include"]),
                                           exclude=_reqs(find["exclude"])))
    data = {k.strip() for k in cfg["options.package_data"]}
    assert data <= packages, data - packages
    assert {"sr_runtime.models", "sr_train.configs"} <= packages
    assert not [p for p in packages if "__pycache__" in p]
    assert not [c for c in _reqs(cfg["metadata"]["classifiers"]) if c.startswith("License ::")]
    assert cfg["metadata"]["license"].strip() == "BSD-3-Clause"
