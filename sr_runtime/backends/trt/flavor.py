"""The two TensorRT flavours behind one adapter: ``tensorrt`` (10.x/11.x) and ``tensorrt_rtx`` (TensorRT-RTX).

- ``tensorrt`` (data-centre and workstation GPUs): the builder autotunes on the GPU it runs on, so an engine is
  tied to that GPU's compute capability and to the exact TensorRT version.
- ``rtx`` (``tensorrt_rtx``, consumer RTX GPUs): ahead-of-time build that needs no GPU (it runs on a CPU-only
  machine) for a list of compute-capability targets; kernels are JIT-compiled at first run and kept in a
  runtime cache. Networks are always strongly typed; the timing cache is a no-op.

Both modules are imported by :func:`load_flavor` only, never at module import.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Literal

from sr_runtime.errors import MissingExtraError, SrError

Flavor = Literal["auto", "tensorrt", "rtx"]

LOG = logging.getLogger("sr_runtime.trt")
"""TensorRT's own messages (warnings and errors) and the backend's warnings go here."""

RTX_PORTABLE_TARGETS = ("SM86", "SM89", "SM120", "SM121")
"""The compute capabilities of a portable TensorRT-RTX engine: the support matrix's Ampere (8.6), Ada (8.9) and
Blackwell (12.0; 12.1 since 1.5) rows, which is also TensorRT-RTX's own portable default (8.6, 8.9, 12.0).
Turing (7.5) needs an engine of its own (support-matrix note); 8.0 (A100) is a member of the module's
``ComputeCapability`` but appears in no support matrix, and there is no 9.0 (H100/H200) at all."""


class TrtMissingError(MissingExtraError):
    """Neither ``tensorrt`` nor ``tensorrt_rtx`` (or not the requested one) can be imported.

    Prints as exactly ``--trt needs the [trt] or [trt-rtx] extra`` (the extras are the fix).
    """

    def __init__(self, flavor: Flavor = "auto", detail: str = "") -> None:
        extra = {"auto": "[trt] or [trt-rtx]", "tensorrt": "[trt]", "rtx": "[trt-rtx]"}[flavor]
        module = {"auto": "tensorrt", "tensorrt": "tensorrt", "rtx": "tensorrt_rtx"}[flavor]
        super().__init__(module, "trt" if flavor != "rtx" else "trt-rtx")
        self.message = f"--trt needs the {extra} extra"
        self.hint = ""
        self.detail = detail

    def one_line(self) -> str:
        """Return the fixed one-line message (no file, no trailing period)."""
        return self.message


def flavor_label(name: str, version: str) -> str:
    """``TensorRT 10.13.0.35`` / ``TensorRT-RTX 1.7.1.116``."""
    return f"{'TensorRT-RTX' if name == 'rtx' else 'TensorRT'} {version}"


@dataclass(frozen=True)
class TrtFlavor:
    """The adapter over ``tensorrt`` and ``tensorrt_rtx``: the same build and run code serves both."""

    name: Literal["tensorrt", "rtx"]
    """``tensorrt`` or ``rtx``."""
    trt: Any
    """The imported module."""

    @property
    def version(self) -> str:
        """Module version, e.g. ``10.13.0.35`` or ``1.7.1.116``."""
        return str(self.trt.__version__)

    @property
    def major(self) -> int:
        """Major version number."""
        return int(self.version.split(".")[0])

    @property
    def label(self) -> str:
        """Human-readable ``TensorRT 10.13.0.35`` / ``TensorRT-RTX 1.7.1.116``."""
        return flavor_label(self.name, self.version)

    def logger(self, verbose: bool = False) -> Any:
        """The logger for builders and runtimes.

        With ``verbose`` TensorRT's own logger printing everything; otherwise an ``ILogger`` that passes
        warnings and errors to the ``sr_runtime.trt`` logging logger, so that TensorRT's warnings (such as
        "using an engine plan file across different models of devices") reach the user and the tests.
        """
        if verbose:
            lg = self.trt.Logger
            return lg(lg.VERBOSE)
        return _python_logger(self.trt, self.label)

    def network_flags(self) -> int:
        """Creation flags for a strongly typed network.

        TensorRT-RTX and TensorRT 10.x take ``STRONGLY_TYPED``; in TensorRT 11.x strong typing is always on
        and the flag is deprecated (ignored), so it is not passed. ``EXPLICIT_BATCH`` is never needed (10+).
        """
        flag = getattr(self.trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is None or (self.name == "tensorrt" and self.major >= 11):
            return 0
        return 1 << int(flag)


def load_flavor(flavor: Flavor = "auto") -> TrtFlavor:
    """Import the TensorRT flavour to use.

    ``auto`` prefers ``tensorrt`` and falls back to ``tensorrt_rtx``.

    Raises:
        TrtMissingError: the requested module (or, for ``auto``, both) cannot be imported.
        SrError: an unknown flavour name.
    """
    if flavor not in ("auto", "tensorrt", "rtx"):
        raise SrError(f"unknown TensorRT flavour {flavor!r}", "Use auto, tensorrt or rtx.")
    order: list[Literal["tensorrt", "rtx"]] = ["tensorrt", "rtx"] if flavor == "auto" else [flavor]  # type: ignore[list-item]
    errors = []
    for name in order:
        module = "tensorrt" if name == "tensorrt" else "tensorrt_rtx"
        try:
            return TrtFlavor(name, importlib.import_module(module))
        except Exception as exc:  # noqa: BLE001 - ImportError, or OSError from a missing libnvinfer
            errors.append(f"{module}: {type(exc).__name__}: {exc}")
    raise TrtMissingError(flavor, "; ".join(errors))


def _python_logger(trt: Any, label: str) -> Any:
    """An ``ILogger`` subclass instance forwarding WARNING and worse to :data:`LOG`."""
    sev = trt.ILogger.Severity
    levels = {sev.INTERNAL_ERROR: logging.ERROR, sev.ERROR: logging.ERROR, sev.WARNING: logging.WARNING}

    class _Logger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            level = levels.get(severity)
            if level is not None:
                LOG.log(level, "%s: %s", label, msg)

    return _Logger()


# --------------------------------------------------------------------------------------------- RTX targets
def rtx_default_targets(trt: Any) -> list[str]:
    """Compute-capability targets of a portable TensorRT-RTX engine: those of :data:`RTX_PORTABLE_TARGETS` the
    module knows, in its order."""
    return [n for n in trt.ComputeCapability.__members__ if n in RTX_PORTABLE_TARGETS]


def rtx_supports(trt: Any, compute_capability: str) -> bool:
    """True when TensorRT-RTX can target this GPU (its ``ComputeCapability`` has the ``SMxy`` member)."""
    return cc_to_sm(compute_capability) in trt.ComputeCapability.__members__


def sm_to_cc(sm: str) -> str:
    """``SM86`` -> ``8.6``."""
    digits = sm[2:]
    return f"{digits[:-1]}.{digits[-1]}"


def cc_to_sm(cc: str) -> str:
    """``8.6`` -> ``SM86``."""
    major, _, minor = cc.partition(".")
    return f"SM{major}{minor or '0'}"
