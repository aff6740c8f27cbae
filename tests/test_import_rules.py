"""Every import rule of the layout, checked in one place (the layers are drawn in DESIGN.md).

::

    sr_train ─────┐        sr_export ──> sr_train, sr_runtime
                  │            │
                  v            v
    sr_runtime (cli, api, batch, tiling, image, memory, backends/...)   torch-free
                  │
                  v
    base: sr_runtime.{errors, signals, fileio, info, compare}    every package may import it

Statically, over the source of every library module (an AST walk, so imports inside functions count too):

- ``sr_runtime`` imports no torch, sr_train or sr_export;
- ``sr_train`` imports no sr_export;
- the base modules import no other module of the project (and ``sr_runtime/__init__`` only base modules), so
  ``from sr_runtime.errors import SrError`` stays cheap for every package;
- no library module imports benchmarks, scripts or tests.

Dynamically, in fresh processes (after Polygraphy's light-install test): every ``sr_runtime`` module (the CLI
and the backends included) imports without loading torch, the training/export packages, ONNX Runtime or
TensorRT; ``sr-run`` answers with torch made unimportable; ``import sr_export`` and its public names load
neither torch nor click.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = ("sr_runtime", "sr_train", "sr_export")
BASE = ("sr_runtime.errors", "sr_runtime.signals", "sr_runtime.fileio", "sr_runtime.info", "sr_runtime.compare")
"""The base layer: every package may import these, and they import nothing else of the project."""
PROJECT = (*LIBRARIES, "benchmarks", "scripts", "tests")
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "sr_runtime": ("torch", "torchvision", "sr_train", "sr_export"),
    "sr_train": ("sr_export",),
}
"""Package -> top-level names it must never import (on top of benchmarks, scripts and tests)."""
LAZY_EXCEPTIONS: dict[str, tuple[str, ...]] = {"sr_runtime.pth_model": ("sr_export.pipeline",)}
"""Module -> what it may import despite :data:`FORBIDDEN`, inside a function only: ``sr-run -m x.pth`` exports the
checkpoint with sr-export's pipeline on first use (which needs torch, the ``export`` extra)."""
NOT_LIBRARY = ("benchmarks", "scripts", "tests")
HEAVY_AT_IMPORT = ("torch", "sr_train", "sr_export", "onnxruntime", "openvino", "tensorrt", "tensorrt_rtx", "cuda", "av",
                   "ray", "pyarrow", "tritonclient", "gevent")
"""What importing any sr_runtime module must not load (backends import their engines when a model is opened, the
video package PyAV when a video is read, ``--ray`` Ray and pyarrow, the Triton backend tritonclient)."""


def module_name(path: Path) -> str:
    """``sr_runtime/backends/ort.py`` -> ``sr_runtime.backends.ort`` (``__init__`` -> the package)."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_files() -> list[Path]:
    return sorted(p for lib in LIBRARIES for p in (ROOT / lib).rglob("*.py"))


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from ... import`` (relative imports resolved against ``module``)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _dynamic_name(node: ast.Call) -> str | None:
    """``__import__("x")`` and ``importlib.import_module("x")`` with a constant name."""
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name in ("__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant):
        return str(node.args[0].value)
    return None


def imports(source: str, module: str, is_package: bool = False, *, top_level_only: bool = False) -> Iterator[
        tuple[int, str]]:
    """``(line, imported module)`` for every import in ``source``, those inside functions included.

    ``from a import b`` yields ``a.b`` as well as ``a`` (``b`` may be a submodule).
    """
    tree = ast.parse(source)
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            yield node.lineno, target
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"
        elif isinstance(node, ast.Call) and (name := _dynamic_name(node)):
            yield node.lineno, name


def _file_imports(path: Path, *, top_level_only: bool = False) -> Iterator[tuple[int, str]]:
    yield from imports(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py",
                       top_level_only=top_level_only)


def _is_under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


# ------------------------------------------------------------------------------------------------- static
def test_the_walker_sees_lazy_relative_and_dynamic_imports():
    src = ("import os\n"
           "def f():\n    import torch.nn\n    from . import sibling\n    from ..errors import SrError\n"
           "    importlib.import_module('sr_export.onnx')\n    return __import__('scripts.demo')\n")
    found = {name for _, name in imports(src, "sr_runtime.backends.ort")}
    assert {"os", "torch.nn", "sr_runtime.backends.sibling", "sr_runtime.errors", "sr_export.onnx",
            "scripts.demo"} <= found
    assert {name for _, name in imports(src, "sr_runtime.backends.ort", top_level_only=True)} == {"os"}


def test_layer_rules_hold_for_every_library_module():
    offenders: dict[tuple[Path, int], str] = {}
    for path in library_files():
        package = module_name(path).split(".")[0]
        forbidden = (*FORBIDDEN.get(package, ()), *NOT_LIBRARY)
        allowed = LAZY_EXCEPTIONS.get(module_name(path), ())
        top = {name for _, name in _file_imports(path, top_level_only=True)}
        for line, name in _file_imports(path):
            if _is_under(name, allowed) and name not in top:
                continue
            if _is_under(name, forbidden):
                offenders.setdefault((path, line), f"{path.relative_to(ROOT)}:{line}: {package} imports {name}")
    assert not offenders, "\n".join(offenders.values())


@pytest.mark.parametrize("module", BASE)
def test_base_modules_import_only_the_base(module):
    path = ROOT / (module.replace(".", "/") + ".py")
    bad = [f"{line}: {name}" for line, name in _file_imports(path)
           if _is_under(name, PROJECT) and not _is_under(name, BASE) and name != "sr_runtime"]
    assert not bad, f"{module} is in the base layer and must not import {bad}"


def test_importing_the_base_pulls_only_the_base():
    """``import sr_runtime.errors`` runs ``sr_runtime/__init__``: its module-level imports stay in the base."""
    path = ROOT / "sr_runtime" / "__init__.py"
    bad = [f"{line}: {name}" for line, name in _file_imports(path, top_level_only=True)
           if _is_under(name, PROJECT) and not _is_under(name, BASE)]
    assert not bad, bad


# ------------------------------------------------------------------------------------------------ dynamic
def _fresh(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          **kw)


def test_every_runtime_module_imports_light_in_a_fresh_process():
    modules = sorted(module_name(p) for p in (ROOT / "sr_runtime").rglob("*.py"))
    assert "sr_runtime.cli" in modules and "sr_runtime.backends.ort" in modules
    r = _fresh(f"import sys, importlib\n"
               f"for m in {modules!r}: importlib.import_module(m)\n"
               f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_AT_IMPORT!r})\n"
               f"assert not bad, bad\n")
    assert r.returncode == 0, r.stderr[-2000:]


def test_sr_run_works_with_torch_unimportable(tmp_path):
    """``sr-run`` answers (here: its one-line error naming the extra for a .pth model) with torch and the
    training/export packages blocked."""
    from tests.torchless import run_blocked, zip_checkpoint

    pth = zip_checkpoint(tmp_path / "net.pth")
    r = run_blocked(tmp_path, "sr_runtime.cli", ["sr-run", "--info", pth], FORBIDDEN["sr_runtime"], cwd=ROOT)
    assert r.returncode == 1 and r.stderr.strip() == (
        f"error: {pth}: a .pth model (exported to ONNX on first use) needs the 'torch' module. Install it with: "
        "pip install 'sr-deploy[export]'")


def test_export_library_imports_neither_torch_nor_click():
    """``import sr_export`` is empty; its public names and the ONNX->ONNX fp16 pass need no torch."""
    r = _fresh("import sys\nimport sr_export\nassert 'sr_export.pipeline' not in sys.modules\n"
               "from sr_export import ExportOptions, ExportResult, ParityError, export, write_metadata\n"
               "import sr_export.fp16\n"
               "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'click', 'sr_train'))\n"
               "assert not bad, bad\n")
    assert r.returncode == 0, r.stderr[-2000:]
