"""sr_runtime: the torch-free runtime of sr-deploy (numpy, OpenCV, ONNX Runtime or TensorRT).

Nothing heavy is imported here; backends are imported when a model is opened.
"""

from __future__ import annotations

__version__ = "0.1.0"

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

_LAZY = {"Upscaler": "sr_runtime.api", "open_model": "sr_runtime.api", "upscale": "sr_runtime.api",
         "ModelInfo": "sr_runtime.info", "SrError": "sr_runtime.errors", "ModelFileError": "sr_runtime.errors",
         "MissingExtraError": "sr_runtime.errors", "EngineMismatchError": "sr_runtime.errors"}
"""Public name -> its module, imported on first access: OpenCV for the API; ``import sr_runtime`` (which every
CLI runs before it can install its signal handlers) stays a few stdlib imports."""


def __getattr__(name: str):  # PEP 562: keep `import sr_runtime` light
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sr_runtime' has no attribute {name!r}")
