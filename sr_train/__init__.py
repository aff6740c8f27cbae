"""sr_train: PyTorch architectures, checkpoints and Real-ESRGAN training. No side-effect imports."""

from __future__ import annotations

from sr_runtime import __version__  # the one version of sr-deploy (setup.cfg reads it there)

__all__ = ["__version__"]
