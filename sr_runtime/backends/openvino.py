"""OpenVINO backend: the same ONNX file and metadata, run by OpenVINO's CPU plugin.

``openvino`` is imported when an :class:`OpenVinoBackend` is created, never at module import (extra
``openvino``). The ONNX is checked and its metadata read with the ``onnx`` package first
(:func:`~sr_runtime.info.read_onnx_metadata`: OpenVINO's reader is not trusted with external-data paths), then
read by OpenVINO, compiled with its dynamic height and width (measured as fast as a model reshaped and compiled
per window shape, and compiled once), and run with one infer request at a time.

Precision: fp32 by default (``INFERENCE_PRECISION_HINT`` ``f32``; OpenVINO's own default on a CPU with BF16 is
bf16, which changes outputs by several levels). ``reduced=True`` (sr-run ``--fp16``) runs bf16 where the CPU
reports BF16 (``OPTIMIZATION_CAPABILITIES``), else f16 where it reports FP16, else fp32. An int8 (QDQ) ONNX runs
its quantized convolutions in int8 whatever the hint; its precision comes from the metadata.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sr_runtime import signals
from sr_runtime.backends.base import BackendBase, Shape, is_oom_message, resolve_info, run_error
from sr_runtime.errors import MissingExtraError, ModelFileError, OutOfMemory, SrError
from sr_runtime.info import ModelInfo, read_onnx_metadata
from sr_runtime.probe import TensorSpec
from sr_runtime.tiling import WindowShapes

Hint = Literal["latency", "throughput"]
HINTS: tuple[str, ...] = ("latency", "throughput")
_ELEMENT_TYPES = {"f32": "float32", "f16": "float16"}
_CONVERTER = "openvino.tools.ovc"


class NotLoadable(ModelFileError):
    """OpenVINO cannot read or compile the model (``--backend auto`` then runs it on ONNX Runtime)."""


def import_openvino() -> Any:
    """``import openvino``, without its model converter and with signals held back.

    ``import openvino`` imports ``openvino.tools.ovc`` (``convert_model``), whose import sends a telemetry event
    from a forked process in a background thread; sr-run needs neither, and a fork next to our threads crashed
    an interrupted run (measured), so the converter is kept out of that first import (0.11 s saved) and can
    still be imported explicitly afterwards. A signal inside the import left OpenVINO half-initialised and the
    process hanging at exit (measured): it is raised once the import is done.

    Raises:
        MissingExtraError: openvino is not installed.
    """
    first = "openvino" not in sys.modules
    if first:
        sys.modules[_CONVERTER] = None  # type: ignore[assignment]  # its `from ... import` then fails quietly
    try:
        with signals.deferred():
            import openvino as ov
    except ImportError:
        signals.check()  # Ctrl-C during the import surfaces as ImportError (pybind11): not "not installed"
        raise MissingExtraError("openvino", "openvino", "running ONNX models on OpenVINO") from None
    finally:
        if first and sys.modules.get(_CONVERTER, 0) is None:
            del sys.modules[_CONVERTER]
    return ov


def available() -> bool:
    """True when the ``openvino`` package imports."""
    try:
        import_openvino()
    except MissingExtraError:
        return False
    return True


def cpu_report() -> dict[str, Any]:
    """What OpenVINO's CPU plugin reports here: version, device name, optimisation capabilities ({} when
    openvino is not installed)."""
    try:
        ov = import_openvino()
    except MissingExtraError:
        return {}
    core = ov.Core()
    return {"version": ov.get_version().split("-")[0], "device": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
            "capabilities": [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]}


def reduced_precision_for(capabilities: list[str]) -> str:
    """The precision hint ``reduced=True`` asks for: ``bf16`` on a CPU that reports BF16, else ``f16`` where it
    reports FP16, else ``f32``."""
    for cap, hint in (("BF16", "bf16"), ("FP16", "f16")):
        if cap in capabilities:
            return hint
    return "f32"


def _spec(port: Any) -> TensorSpec:
    """A graph input/output of an ``openvino.Model`` as a :class:`TensorSpec`."""
    dims = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    kind = port.get_element_type().get_type_name()
    return TensorSpec(port.get_any_name(), dims, _ELEMENT_TYPES.get(kind, kind))


class OpenVinoBackend(BackendBase):
    """An ONNX model run by OpenVINO on the CPU (a :class:`~sr_runtime.backends.base.Backend`).

    It accepts any input shape (``window_shapes`` ``any``) unless the graph's input is fixed. A batch of N
    windows is one inference of an ``N x C x h x w`` input.

    Args:
        path: the ``.onnx`` file (sr-deploy metadata, or probed as ONNX Runtime does).
        threads: inference threads (None: all cores).
        reduced: compute in bf16/f16 where the CPU reports it (see :func:`reduced_precision_for`).
        hint: ``latency`` (one stream, every thread on one request: what one tile at a time wants) or
            ``throughput`` (OpenVINO's streams).
        scale: the scale the caller expects (``--scale``), checked as :class:`~sr_runtime.backends.ort.OrtBackend`
            does.

    Raises:
        ModelFileError: missing, corrupt or non-ONNX file, a training checkpoint, or no image SR model
            (:class:`NotLoadable`: OpenVINO cannot read or compile it).
        MissingExtraError: openvino is not installed.
        SrError: an unknown hint.
    """

    def __init__(self, path: str | Path, threads: int | None = None, reduced: bool = False, *,
                 hint: Hint = "latency", scale: int | None = None) -> None:
        self.path: Path = Path(path)
        if hint not in HINTS:
            raise SrError(f"unknown OpenVINO performance hint '{hint}'", f"Use one of: {', '.join(HINTS)}.")
        # refuses checkpoints, corrupt files, external data out of the folder; signals are held back because a
        # signal's exception inside the import of onnx's nanobind extension aborts the process (measured)
        with signals.deferred():
            props = read_onnx_metadata(self.path)
        ov = import_openvino()
        core = ov.Core()
        caps = [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
        self.precision_hint: str = reduced_precision_for(caps) if reduced else "f32"
        """What OpenVINO computes in: ``f32``, ``bf16`` or ``f16``."""
        config = {"PERFORMANCE_HINT": hint.upper(), "INFERENCE_PRECISION_HINT": self.precision_hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self._compiled = self._compile(core, config)
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()
        self.info: ModelInfo = self._model_info(props, scale)
        inp = next(_spec(i) for i in self._model.inputs if _spec(i).name == self.info.input_name)
        self._in, self._out = self.info.input_name, self.info.output_name
        self._io_dtype = np.float16 if inp.dtype == "float16" else np.float32
        fixed = self.info.extra.get("fixed_input") if self.info.extra else None
        if fixed is None and inp.fixed_hw is not None:
            fixed = [d or 1 for d in inp.shape]
        self._fixed: Shape | None = tuple(int(d) for d in fixed) if fixed else None  # type: ignore[assignment]
        threads_used = int(self._compiled.get_property("INFERENCE_NUM_THREADS"))
        self.provider: str = (f"OpenVINO {ov.get_version().split('-')[0]} CPU ({self.precision_hint}, {hint}, "
                              f"{threads_used} threads)")

    def _compile(self, core: Any, config: dict[str, Any]) -> Any:
        """Read and compile the model (the errors as :class:`ModelFileError`/:class:`OutOfMemory`)."""
        try:
            self._model = core.read_model(str(self.path))
            return core.compile_model(self._model, "CPU", config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError with its own text
            text = " ".join(str(exc).split())
            if is_oom_message(text):
                raise OutOfMemory("out of memory while loading the model", "Free memory.", self.path) from None
            raise NotLoadable(f"OpenVINO cannot load the model ({text[:300]})",
                              "Re-export it with sr-export, or run it with --backend ort.", self.path) from None

    def _model_info(self, props: dict[str, str], scale: int | None) -> ModelInfo:
        """The file's metadata checked against the graph; without metadata, the probed info."""
        request = self._compiled.create_infer_request()

        def run_on(inp: TensorSpec, out: TensorSpec):
            def run(x: np.ndarray) -> np.ndarray:
                request.infer({inp.name: x})
                return np.array(request.get_tensor(out.name).data, copy=True)

            return run

        return resolve_info(props, [_spec(i) for i in self._model.inputs], [_spec(o) for o in self._model.outputs],
                            run_on, self.path, scale)

    @property
    def reduced_precision(self) -> bool:
        """bf16/f16 compute, or an fp16 file."""
        return self.precision_hint != "f32" or super().reduced_precision

    @property
    def window_shapes(self) -> WindowShapes:
        """``fixed`` for a graph with a fixed input shape, else ``any``."""
        return "fixed" if self._fixed is not None else "any"

    @property
    def max_shape(self) -> Shape | None:
        """The fixed input shape of a static graph, else no limit."""
        return self._fixed

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a float32 ``(N, C, h, w)`` RGB batch in [0, 1]; returns a new float32
        ``(N, C_out, h*scale, w*scale)`` array.

        Raises:
            OutOfMemory: OpenVINO failed to allocate memory.
            SrError: the backend is closed, the batch has a bad shape, or inference failed.
        """
        x = self._engine_input(batch, self._request is not None, self._io_dtype)
        try:
            with self._lock:
                self._request.infer({self._in: x})
                y = np.array(self._request.get_tensor(self._out).data, dtype=np.float32, copy=True)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError (and MemoryError)
            raise run_error(exc, "OpenVINO", x.shape, self.path) from None
        return y

    def close(self) -> None:
        """Release the compiled model."""
        self._request = None
        self._compiled = None
