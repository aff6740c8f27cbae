"""sr_train: PyTorch architectures, checkpoints and Real-ESRGAN training. No side-effect imports."""

from __future__ import annotations

__version__ = "0.1.0"
