"""Run a command as on a runtime-only install: a fresh process whose imports of torch (or other names) fail."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path


def run_blocked(tmp_path: Path, module: str, argv: list[str], blocked: tuple[str, ...] = ("torch",),
                **kw) -> subprocess.CompletedProcess:
    """``module.main()`` with ``sys.argv = argv`` in a fresh Python where importing any of ``blocked`` raises
    ImportError (a module of that name first on ``sys.path``)."""
    blocker = tmp_path / "block"
    blocker.mkdir(exist_ok=True)
    for name in blocked:
        (blocker / f"{name}.py").write_text("raise ImportError('blocked for the test')\n")
    code = (f"import sys; sys.path.insert(0, {str(blocker)!r}); sys.argv = {[str(a) for a in argv]!r}\n"
            f"from {module} import main\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, **kw)


def zip_checkpoint(path: Path) -> Path:
    """A zip archive named like a checkpoint (it passes sr-run's container check, torch would refuse it)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"")
    return path
