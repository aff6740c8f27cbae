"""sr_export: checkpoints -> ONNX / TensorRT engines, with DNI and a parity check.

The library call is :func:`sr_export.export` (see :mod:`sr_export.pipeline`)::

    from sr_export import ExportOptions, export

    result = export("model.pth", ExportOptions(fp16=True))

``import sr_export`` imports only the light ``sr_runtime`` package (for ``__version__``); the names below are loaded on first access, and torch and onnx only
when :func:`export` runs.
"""

from __future__ import annotations

from sr_runtime import __version__  # the one version of sr-deploy (setup.cfg reads it there)

__all__ = ["ExportOptions", "ExportResult", "ParityError", "__version__", "export", "write_metadata"]

_LAZY = {"ExportOptions": "sr_export.pipeline", "ExportResult": "sr_export.pipeline", "export": "sr_export.pipeline",
         "ParityError": "sr_export.errors", "write_metadata": "sr_export.metadata"}
"""Public name -> the module that defines it, imported on first access (PEP 562)."""


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sr_export' has no attribute {name!r}")
