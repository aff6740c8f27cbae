"""sr_runtime: the torch-free runtime of sr-deploy (numpy, OpenCV, ONNX Runtime or TensorRT).

Nothing heavy is imported here; backends are imported when a model is opened.
"""

from __future__ import annotations

__version__ = "0.1.0"

from sr_runtime.errors import (  # noqa: E402
    EngineMismatchError,
    MissingExtraError,
    ModelFileError,
    SrError,
)
from sr_runtime.info import ModelInfo  # noqa: E402

__all__ = [
    "__version__",
    "EngineMismatchError",
    "MissingExtraError",
    "ModelFileError",
    "ModelInfo",
    "SrError",
    "Upscaler",
    "open_model",
    "upscale",
]

_LAZY = {"Upscaler", "open_model", "upscale"}
"""Names from sr_runtime.api, imported on first access (it pulls in OpenCV)."""


def __getattr__(name: str):  # PEP 562: keep `import sr_runtime` light
    if name in _LAZY:
        from sr_runtime import api

        return getattr(api, name)
    raise AttributeError(f"module 'sr_runtime' has no attribute {name!r}")
