"""The runtime never imports torch, sr_train or sr_export (after Polygraphy's light-install test)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "sr_runtime"
MODULES = ["sr_runtime", "sr_runtime.cli", "sr_runtime.backends", "sr_runtime.backends.ort", "sr_runtime.tiling",
           "sr_runtime.image", "sr_runtime.batch", "sr_runtime.api", "sr_runtime.memory", "sr_runtime.compare"]
FORBIDDEN = ("torch", "sr_train", "sr_export")


def test_runtime_imports_no_torch_in_a_fresh_process():
    code = (
        f"import sys, importlib\n"
        f"for m in {MODULES!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} or m == 'onnxruntime')\n"
        f"assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_sources_never_import_torch_or_training_packages():
    offenders = []
    for path in sorted(RUNTIME.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                names = [str(node.args[0].value)]
            for n in names:
                if n.split(".")[0] in FORBIDDEN:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {n}")
    assert not offenders, offenders


def test_cli_runs_without_torch_importable(tmp_path):
    """`sr-run --help` and an error path work with torch made unimportable."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    for name in FORBIDDEN:
        (blocker / f"{name}.py").write_text("raise ImportError('blocked for the test')\n")
    env_code = (
        f"import sys; sys.path.insert(0, {str(blocker)!r}); sys.argv = ['sr-run', '--info', 'missing.pth']\n"
        f"from sr_runtime.cli import main\n"
        f"main()\n"
    )
    r = subprocess.run([sys.executable, "-c", env_code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.strip() == (
        "error: missing.pth: sr-run runs exported models; run 'sr-export missing.pth' first.")
