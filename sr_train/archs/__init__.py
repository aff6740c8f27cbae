"""The generator registry: one explicit list. Add an architecture by adding its spec here.

Importing it needs no torch: the specs build their networks (``*_arch.py``) on first use.
"""

from __future__ import annotations

from sr_train.archs.registry import ArchRegistry, ArchSpec
from sr_train.archs.rrdbnet import RRDBNET
from sr_train.archs.srvgg import SRVGG_COMPACT

REGISTRY = ArchRegistry()
REGISTRY.add(RRDBNET, SRVGG_COMPACT)

__all__ = ["REGISTRY", "ArchRegistry", "ArchSpec"]
