"""ArchSpec and ArchRegistry: one explicit registry of generator architectures (after spandrel and timm)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sr_runtime.errors import ModelFileError

StateDict = Mapping[str, Any]


@dataclass(frozen=True)
class ArchSpec:
    """How to build, recognise and size one generator architecture."""

    id: str
    """Equals the official class name (``RRDBNet``, ``SRVGGNetCompact``)."""
    build: Callable[..., Any]
    """``build(**hparams) -> nn.Module``; keyword-only hyperparameters."""
    detect: Callable[[StateDict], bool]
    """True when a state dict has this architecture's keys (no false negatives, as in spandrel)."""
    infer_hparams: Callable[[StateDict], dict[str, Any]]
    """Every hyperparameter that the keys and tensor shapes determine."""
    receptive_radius: Callable[[dict[str, Any]], int]
    """Input pixels of context at which tiled output equals whole-image output."""
    scale: Callable[[dict[str, Any]], int]
    """Upscaling factor for given hyperparameters."""
    size_multiple: Callable[[dict[str, Any]], int]
    """Input H and W must be multiples of this (pixel-unshuffle variants)."""
    flops_per_pixel: Callable[[dict[str, Any]], float]
    """Multiply-accumulate x2 per *input* pixel (analytic conv FLOPs), for benchmarks."""
    defaults: Mapping[str, Any]
    """Official default hyperparameters."""


class ArchRegistry:
    """An explicit, ordered collection of :class:`ArchSpec` (no file scanning, no import side effects)."""

    def __init__(self) -> None:
        self._specs: dict[str, ArchSpec] = {}

    def add(self, *specs: ArchSpec) -> None:
        """Register specs.

        Raises:
            ValueError: an id is registered twice.
        """
        for spec in specs:
            if spec.id in self._specs:
                raise ValueError(f"architecture id {spec.id!r} is registered twice")
            self._specs[spec.id] = spec

    def ids(self) -> list[str]:
        """Return the registered ids in registration order."""
        return list(self._specs)

    def __iter__(self) -> Iterable[ArchSpec]:
        return iter(self._specs.values())

    def __contains__(self, arch_id: object) -> bool:
        return arch_id in self._specs

    def get(self, arch_id: str) -> ArchSpec:
        """Return the spec with this id.

        Raises:
            ModelFileError: unknown id (the message lists the known ones).
        """
        try:
            return self._specs[arch_id]
        except KeyError:
            raise ModelFileError(
                f"unknown architecture '{arch_id}'", f"Known architectures: {', '.join(self.ids())}."
            ) from None

    def detect(self, state_dict: StateDict) -> ArchSpec | None:
        """Return the first spec whose ``detect`` accepts the state dict, or None."""
        for spec in self._specs.values():
            if spec.detect(state_dict):
                return spec
        return None
