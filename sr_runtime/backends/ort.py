"""ONNX Runtime backend: CPU or CUDA execution provider, with an honest provider check.

``onnxruntime`` is imported when an :class:`OrtBackend` is created, never at module import. TensorRT runs
through sr-deploy's own TensorRT backend (:mod:`sr_runtime.backends.trt`: engine cache keyed by GPU and
workspace, sidecar checks, runtime cache), not through ONNX Runtime's TensorRT execution provider.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

from sr_runtime import signals
from sr_runtime.backends.base import BackendBase, Shape, is_oom_message, resolve_info, run_error
from sr_runtime.errors import MissingExtraError, ModelFileError, OutOfMemory, SrError
from sr_runtime.info import ModelInfo, check_model_path
from sr_runtime.probe import TensorSpec
from sr_runtime.tiling import WindowShapes

Device = Literal["cpu", "cuda"]
ConvAlgoSearch = Literal["HEURISTIC", "EXHAUSTIVE", "DEFAULT"]

_PROVIDERS: dict[str, list[str]] = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}
_GPU_HINT = (
    "Install the GPU build with CUDA: pip uninstall onnxruntime; pip install 'sr-deploy[ort-gpu]' "
    "(never together with [ort]), or use --backend ort for the CPU."
)
_LIBS_HINT = (
    "The GPU build is installed but its CUDA/cuDNN libraries did not load: pip install "
    "'sr-deploy[ort-gpu]' brings them as nvidia-* wheels (or install the CUDA and cuDNN its build needs); "
    "python -c 'import onnxruntime as o; o.preload_dlls(); o.print_debug_info()' shows what is missing. "
    "Or use --backend ort for the CPU."
)
_preloaded = False


def preload_cuda_libs(ort: Any) -> None:
    """Load CUDA and cuDNN before the first CUDA session (``onnxruntime.preload_dlls``, onnxruntime-gpu >= 1.21).

    It finds the libraries of the nvidia-* wheels that ``onnxruntime-gpu[cuda,cudnn]`` installs (or those of
    an imported CUDA torch), so a torch-free install needs no system CUDA. Once per process; an older
    onnxruntime without the function, or a failure, leaves loading to the system paths.
    """
    global _preloaded
    if _preloaded or not hasattr(ort, "preload_dlls"):
        return
    _preloaded = True
    try:
        ort.preload_dlls()
    except Exception:  # noqa: BLE001 - the provider check below reports what did not load
        pass


def _import_ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingExtraError("onnxruntime", "ort", "running ONNX models") from None
    return ort


def available_providers() -> list[str]:
    """ONNX Runtime's available execution providers ([] when onnxruntime is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        signals.check()  # Ctrl-C during the import surfaces as ImportError (pybind11): not "not installed"
        return []
    return list(ort.get_available_providers())


def cuda_provider_options(device_id: int = 0, conv_algo_search: ConvAlgoSearch = "HEURISTIC") -> dict[str, str]:
    """The CUDA execution provider's options (ONNX Runtime takes them as strings).

    Raises:
        SrError: an unknown ``conv_algo_search``.
    """
    if conv_algo_search not in ("HEURISTIC", "EXHAUSTIVE", "DEFAULT"):
        raise SrError(f"unknown cuDNN algorithm search '{conv_algo_search}'", "Use HEURISTIC, EXHAUSTIVE or DEFAULT.")
    return {"device_id": str(int(device_id)), "cudnn_conv_algo_search": conv_algo_search}


class OrtBackend(BackendBase):
    """An ONNX model run by ONNX Runtime (a :class:`~sr_runtime.backends.base.Backend`).

    It accepts any input shape (``window_shapes`` ``any``).

    Args:
        path: the ``.onnx`` file written by sr-export (carries :class:`ModelInfo` in its metadata).
        device: ``cpu`` or ``cuda`` (CUDA EP). A GPU device that ONNX Runtime cannot use is an error, never a
            silent CPU run.
        threads: intra-op threads (None: ONNX Runtime's default, all cores).
        fp16: ignored (the file's own precision, ``info.precision``, decides); kept for the call signature.
        device_id: CUDA device index (``cuda`` only).
        conv_algo_search: cuDNN convolution algorithm search of the CUDA EP. ``HEURISTIC`` (default): cuDNN's
            heuristics pick per shape at no cost; ONNX Runtime's own default ``EXHAUSTIVE`` benchmarks every
            algorithm for every new convolution shape, which a tiled run with edge windows of other sizes
            pays again and again; ``DEFAULT`` always takes implicit-precomp GEMM (least memory, slowest).
        scale: the scale the caller expects (``--scale``): a model without sr-deploy metadata is probed
            (:mod:`sr_runtime.probe`) and must upscale by this; with metadata it must say this.

    Raises:
        ModelFileError: missing, corrupt or non-ONNX file, a training checkpoint, or no image SR model
            (:class:`~sr_runtime.probe.NotSuperResolution`: a classifier, forged metadata).
        MissingExtraError: onnxruntime is not installed.
        SrError: the requested GPU execution provider is unavailable.
    """

    def __init__(self, path: str | Path, device: Device = "cpu", threads: int | None = None,
                 fp16: bool = False, *, device_id: int = 0, conv_algo_search: ConvAlgoSearch = "HEURISTIC",
                 scale: int | None = None) -> None:
        self.path: Path = Path(path)
        self.device = device
        if device not in _PROVIDERS:
            raise SrError(f"unknown ONNX Runtime device '{device}'", "Use cpu or cuda.")
        check_model_path(self.path)
        ort = _import_ort()
        wanted = _PROVIDERS[device]
        avail = ort.get_available_providers()
        if device != "cpu" and wanted[0] not in avail:
            raise SrError(
                f"{wanted[0]} is not available in this onnxruntime (available: {', '.join(avail)})",
                _GPU_HINT, self.path)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        providers: list[Any] = [p for p in wanted if p in avail]
        if device == "cuda":
            preload_cuda_libs(ort)
            providers[0] = ("CUDAExecutionProvider", cuda_provider_options(device_id, conv_algo_search))
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind classes
            text = " ".join(str(exc).split())
            if is_oom_message(text):
                raise OutOfMemory("out of memory while loading the model", "Free memory or use --backend ort.",
                                  self.path) from None
            raise ModelFileError(f"ONNX Runtime cannot load the model ({text[:300]})",
                                 "Re-export it with sr-export.", self.path) from None
        got = self._session.get_providers()
        if device != "cpu" and (not got or got[0] != wanted[0]):
            self._session = None
            raise SrError(  # the GPU build is there (checked above): its CUDA/cuDNN libraries did not load
                f"asked for {wanted[0]} but ONNX Runtime runs {', '.join(got) or 'nothing'}",
                _LIBS_HINT, self.path)
        self.provider: str = got[0]
        self._lock = threading.Lock()
        self.info: ModelInfo = self._model_info(scale)
        self._in, self._out = self.info.input_name, self.info.output_name
        in_type = next(i.type for i in self._session.get_inputs() if i.name == self._in)
        self._io_dtype = np.float16 if "float16" in in_type else np.float32
        fixed = self.info.extra.get("fixed_input") if self.info.extra else None
        self._fixed: Shape | None = tuple(int(d) for d in fixed) if fixed else None  # type: ignore[assignment]

    def _model_info(self, scale: int | None) -> ModelInfo:
        """The metadata ORT has just parsed (no second read of the file, no onnx import), checked against the
        graph; without metadata, the probed info (:func:`~sr_runtime.backends.base.resolve_info`)."""
        props = dict(self._session.get_modelmeta().custom_metadata_map)

        def run_on(inp: TensorSpec, out: TensorSpec):
            return lambda x: self._session.run([out.name], {inp.name: x})[0]

        return resolve_info(props, [TensorSpec.from_ort(i) for i in self._session.get_inputs()],
                            [TensorSpec.from_ort(o) for o in self._session.get_outputs()], run_on, self.path, scale)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Run a float32 ``(N, C, h, w)`` RGB batch in [0, 1]; returns a new float32
        ``(N, C_out, h*scale, w*scale)`` array.

        Raises:
            OutOfMemory: ONNX Runtime failed to allocate memory.
            SrError: the backend is closed, the batch has a bad shape, or inference failed.
        """
        x = self._engine_input(batch, self._session is not None, self._io_dtype)
        try:
            # InferenceSession.run is thread-safe, but one run at a time keeps peak memory at one batch.
            with self._lock:
                (y,) = self._session.run([self._out], {self._in: x})
        except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind classes (and MemoryError)
            raise run_error(exc, "ONNX Runtime", x.shape, self.path) from None
        return np.asarray(y, dtype=np.float32) if y.dtype != np.float32 else y

    @property
    def window_shapes(self) -> WindowShapes:
        """``fixed`` for a graph with a fixed input shape (a plain static export), else ``any``: the CPU and
        CUDA providers take every shape."""
        return "fixed" if self._fixed is not None else "any"

    @property
    def max_shape(self) -> Shape | None:
        """The fixed input shape of a static graph, else no limit."""
        return self._fixed

    def close(self) -> None:
        """Release the session."""
        self._session = None
