"""The generator registry: one explicit list. Add an architecture by adding its spec here."""

from __future__ import annotations

from sr_train.archs.registry import ArchRegistry, ArchSpec
from sr_train.archs.rrdbnet import RRDBNET, RRDBNet
from sr_train.archs.srvgg import SRVGG_COMPACT, SRVGGNetCompact

REGISTRY = ArchRegistry()
REGISTRY.add(RRDBNET, SRVGG_COMPACT)

__all__ = ["REGISTRY", "ArchRegistry", "ArchSpec", "RRDBNet", "SRVGGNetCompact"]
