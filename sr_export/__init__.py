"""sr_export: checkpoints -> ONNX / TensorRT engines, with DNI and a parity check. No side-effect imports."""

from __future__ import annotations

__version__ = "0.1.0"
