"""Real-ESRGAN second-order synthetic degradation.

``config`` and ``kernels`` need only numpy; ``ops``, ``pipeline`` and ``pool`` need torch and are loaded on
first use of their names here (``from sr_train.degradation import SecondOrderDegradation``).
"""

from __future__ import annotations

import importlib
from typing import Any

from sr_train.degradation.config import DATASET_KEYS, KERNEL_TYPES, MODEL_KEYS, DegradationConfig
from sr_train.degradation.kernels import KernelSpec, make_kernel, sample_kernel_specs, sample_kernels

_LAZY = {
    "SecondOrderDegradation": "sr_train.degradation.pipeline",
    "DegradationPlan": "sr_train.degradation.pipeline",
    "TrainingPairPool": "sr_train.degradation.pool",
    "usm_sharp": "sr_train.degradation.ops",
}

__all__ = [
    "DATASET_KEYS",
    "KERNEL_TYPES",
    "MODEL_KEYS",
    "DegradationConfig",
    "DegradationPlan",
    "KernelSpec",
    "SecondOrderDegradation",
    "TrainingPairPool",
    "make_kernel",
    "sample_kernel_specs",
    "sample_kernels",
    "usm_sharp",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sr_train.degradation' has no attribute {name!r}")
