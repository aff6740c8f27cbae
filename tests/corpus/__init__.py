"""The bad-input corpus (issue 15): every file is built here, deterministically; nothing is downloaded.

``build_corpus(root)`` writes the cases under ``root`` and returns them as :class:`Case` values;
``python -m tests.corpus DIR`` does the same from the command line and prints the table. The kinds:

- ``images/``: what ``sr-run`` reads in one folder run (broken, odd and fine images side by side, so the test
  also proves that the other files are still processed);
- ``big/``: images whose header claims gigapixels (a decompression bomb, a 30000x30000 PNG);
- ``models/``: what ``sr-run --model`` and ``--info`` are given (truncated, forged, foreign ONNX, external
  data pointing out of the folder, engines without sidecar, checkpoints);
- ``checkpoints/``: what ``sr-export`` and ``sr-train`` load (pickles with a payload, lying safetensors);
- ``configs/``: training configs (YAML bombs, python tags, non-YAML).

Each case says what the contract expects of it: ``ok`` (and the output's shape) or ``error`` (a regular
expression for the one line). tests/test_corpus.py runs the commands over it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["image", "big", "model", "checkpoint", "config"]


@dataclass(frozen=True)
class Case:
    """One corpus file and what the contract expects of it."""

    name: str
    """Short id (test ids, the docs table)."""
    kind: Kind
    """Which command reads it (see the module docstring)."""
    path: Path
    """The file (or folder, link, FIFO)."""
    expect: Literal["ok", "error"]
    """The command succeeds on it, or reports it in one line."""
    message: str = ""
    """For ``error``: a regular expression the text after ``error: <path>: `` must match."""
    shape: tuple[int, ...] = ()
    """For ``ok`` images: the x4 output's shape (OpenCV layout)."""
    dtype: str = "uint8"
    """For ``ok`` images: the output's dtype."""
    what: str = ""
    """What the case is about (one line)."""
    extra: dict = field(default_factory=dict)
    """Anything a test needs besides (e.g. the marker file a hostile pickle would write)."""


def build_corpus(root: str | Path) -> list[Case]:
    """Write every case under ``root`` (created) and return them."""
    from tests.corpus import checkpoints, configs, images, models

    root = Path(root)
    cases: list[Case] = []
    cases += images.build(root / "images", root / "big")
    cases += models.build(root / "models")
    cases += checkpoints.build(root / "checkpoints")
    cases += configs.build(root / "configs")
    return cases


def by_kind(cases: list[Case], kind: Kind) -> list[Case]:
    """The cases of one kind."""
    return [c for c in cases if c.kind == kind]
