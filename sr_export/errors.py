"""Errors of the export package (the toolkit-wide hierarchy is :mod:`sr_runtime.errors`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sr_runtime.errors import SrError

if TYPE_CHECKING:
    from sr_runtime.compare import ParityReport


class ParityError(SrError):
    """An exported artifact does not match the PyTorch reference within tolerance.

    Args:
        message: what went wrong (names the artifact and the worst figures).
        hint: what to do.
        path: the artifact concerned, if any.
        reports: every parity report of the failed check (passed ones included).
    """

    def __init__(self, message: str, hint: str = "", path: str | Path | None = None,
                 reports: Sequence[ParityReport] = ()) -> None:
        super().__init__(message, hint, path)
        self.reports = tuple(reports)
