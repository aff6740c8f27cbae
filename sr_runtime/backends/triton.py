"""TritonBackend: the windows are cut here and inferred by a Triton Inference Server (tritonclient, HTTP).

``sr-run IN OUT --backend triton --triton-url HOST:8000 -m NAME`` tiles locally, exactly as for a local
backend, and sends each batch of windows to the model ``NAME`` of a server that serves the repository written
by ``sr-export --triton`` (docs/scale.md). What the model is comes from the server, not from a local file:
its model configuration (``GET /v2/models/NAME/config``) holds the tensor names, dtypes and dims, the largest
batch, and the sr-deploy metadata that sr-export writes into ``parameters`` (scale, receptive radius, size
multiple, value range, precision). So the client always matches what the server runs.

Requests carry one input (``(N, C, h, w)``, the config's dtype, binary data) and ask for the one output in
binary; a batch larger than ``max_batch_size`` goes as several requests. ``tritonclient`` (extra ``triton``)
is imported when a backend is opened.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from sr_runtime.backends.base import BackendBase, Shape, check_batch, run_error
from sr_runtime.errors import MissingExtraError, ModelFileError, SrError
from sr_runtime.info import ModelInfo
from sr_runtime.tiling import WindowShapes

DEFAULT_URL = "localhost:8000"
"""Triton's default HTTP endpoint."""
TIMEOUT_S = 600.0
"""Network timeout of one request (a large window batch on a busy server takes a while)."""
TRITON_DTYPES = {"TYPE_FP32": "float32", "TYPE_FP16": "float16"}
"""Triton config ``data_type`` -> ModelInfo io dtype (what sr-export writes)."""
WIRE_DTYPES = {"float32": "FP32", "float16": "FP16"}
"""ModelInfo io dtype -> the KServe v2 protocol's tensor datatype."""


def split_url(url: str | None) -> tuple[str, bool]:
    """``HOST:PORT`` and whether to use TLS, from ``host:port``, ``http://host:port`` or ``https://host:port``.

    Raises:
        SrError: another scheme (gRPC is not what this client speaks) or no host.
    """
    text = (url or DEFAULT_URL).strip()
    parts = urlsplit(text if "://" in text else "http://" + text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SrError(f"bad --triton-url '{text}'",
                      "Give Triton's HTTP endpoint as HOST:PORT or http(s)://HOST:PORT (default localhost:8000).")
    return parts.netloc, parts.scheme == "https"


def _param(cfg: dict[str, Any], key: str) -> str | None:
    value = (cfg.get("parameters") or {}).get(key)
    return value.get("string_value") if isinstance(value, dict) else None


def info_from_config(cfg: dict[str, Any], source: str) -> ModelInfo:
    """The :class:`ModelInfo` of a served model from its configuration (the JSON form of ``config.pbtxt``).

    Raises:
        ModelFileError: not one input and one output of 3 dims (C, H, W) with a batch axis, an unsupported
            dtype, or no sr-deploy ``parameters`` (a repository not written by ``sr-export --triton``).
    """
    hint = "Serve the repository that 'sr-export --triton' writes (docs/scale.md)."
    inputs, outputs = cfg.get("input") or [], cfg.get("output") or []
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(f"the Triton model has {len(inputs)} inputs and {len(outputs)} outputs, "
                             "sr-run needs one of each", hint, source)
    tin, tout = inputs[0], outputs[0]
    if int(cfg.get("max_batch_size") or 0) < 1 or len(tin.get("dims", [])) != 3 or len(tout.get("dims", [])) != 3:
        raise ModelFileError("the Triton model needs a batch axis (max_batch_size >= 1) and (C, H, W) dims",
                             hint, source)
    dtype = TRITON_DTYPES.get(tin.get("data_type", ""))
    if dtype is None or tout.get("data_type") != tin.get("data_type"):
        raise ModelFileError(f"unsupported tensor types {tin.get('data_type')} -> {tout.get('data_type')}",
                             "sr-run sends TYPE_FP32 or TYPE_FP16 (the same for input and output).", source)
    if _param(cfg, "sr.scale") is None:
        raise ModelFileError("the Triton model carries no sr-deploy parameters (sr.scale, ...)", hint, source)
    low, high = (float(v) for v in (_param(cfg, "sr.value_range") or "0,1").split(","))
    return ModelInfo.from_dict({
        "arch": _param(cfg, "sr.arch") or "unknown", "scale": _param(cfg, "sr.scale"),
        "receptive_radius": _param(cfg, "sr.receptive_radius") or 0,
        "size_multiple": _param(cfg, "sr.size_multiple") or 1, "value_range": (low, high),
        "precision": _param(cfg, "sr.precision") or dtype, "io_dtype": dtype,
        "in_channels": int(tin["dims"][0]), "out_channels": int(tout["dims"][0]),
        "input_name": tin["name"], "output_name": tout["name"], "name": cfg.get("name", ""),
    }, source)


def _client_module() -> Any:
    try:
        import tritonclient.http as http
        from tritonclient.utils import InferenceServerException
    except ImportError:
        raise MissingExtraError("tritonclient", "triton", "--backend triton") from None
    return http, InferenceServerException


class TritonBackend(BackendBase):
    """A model served by Triton Inference Server, behind the :class:`~sr_runtime.backends.base.Backend`
    protocol (windows of any shape when the config's H and W are ``-1``, one fixed shape otherwise).

    Args:
        url: Triton's HTTP endpoint, ``HOST:PORT`` or ``http(s)://HOST:PORT`` (None: ``localhost:8000``).
        model: the model's name in the repository (``sr-export --triton`` names it after the checkpoint).
        version: a model version; ``""``: the server's policy (the latest).
        client: an ``InferenceServerClient`` to use instead of opening one (tests, custom TLS).

    Raises:
        MissingExtraError: tritonclient is not installed.
        SrError: the server cannot be reached or the model is not ready. ModelFileError: see
            :func:`info_from_config`.
    """

    def __init__(self, url: str | None, model: str, version: str = "", *, client: Any = None) -> None:
        http, self._error = _client_module()
        self._http = http
        host, ssl = split_url(url)
        self.url, self.model, self.version = host, model, version
        self.provider = f"Triton at {host} (model {model})"
        self._lock = threading.Lock()
        try:
            self.client = client or http.InferenceServerClient(host, ssl=ssl, connection_timeout=TIMEOUT_S,
                                                               network_timeout=TIMEOUT_S)
            ready = self.client.is_model_ready(model, version)
            cfg = self.client.get_model_config(model, version) if ready else None
        except (self._error, OSError) as exc:
            raise SrError(f"cannot reach Triton at {host} ({' '.join(str(exc).split())[:200]})",
                          "Start the server (docs/scale.md) or check --triton-url.") from None
        if cfg is None:
            raise SrError(f"model '{model}' is not ready on the Triton server at {host}",
                          "Check the model name (-m) and the server's log for why it did not load.")
        self.config = cfg
        self.info = info_from_config(cfg, f"{host}/{model}")
        self.max_batch = int(cfg["max_batch_size"])
        dims = [int(d) for d in cfg["input"][0]["dims"]]
        self._fixed = (dims[1], dims[2]) if dims[1] > 0 and dims[2] > 0 else None

    @property
    def window_shapes(self) -> WindowShapes:
        """``fixed`` for a config with fixed dims; else ``same`` for a TensorRT plan (an engine is tuned for one
        window shape) and ``any`` for ONNX Runtime (clipped border windows compute less)."""
        if self._fixed is not None:
            return "fixed"
        return "same" if self.config.get("platform") == "tensorrt_plan" else "any"

    @property
    def max_shape(self) -> Shape | None:
        """The fixed window of such a config; None with dynamic H and W (a larger batch is split)."""
        if self._fixed is None:
            return None
        return (self.max_batch, self.info.in_channels, *self._fixed)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Infer ``batch`` on the server, ``max_batch_size`` windows per request.

        Raises:
            OutOfMemory: the server reported an allocation failure. SrError: any other server error.
        """
        x = check_batch(batch, self.info, self.provider)
        wire = x.astype(self.info.io_dtype, copy=False)
        parts = [self._infer(wire[i:i + self.max_batch]) for i in range(0, len(wire), self.max_batch)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        tin = self._http.InferInput(self.info.input_name, list(x.shape), WIRE_DTYPES[self.info.io_dtype])
        tin.set_data_from_numpy(np.ascontiguousarray(x), binary_data=True)
        tout = self._http.InferRequestedOutput(self.info.output_name, binary_data=True)
        try:
            with self._lock:
                res = self.client.infer(self.model, [tin], model_version=self.version, outputs=[tout])
            y = res.as_numpy(self.info.output_name)
        except (self._error, OSError) as exc:
            raise run_error(exc, "Triton", x.shape, f"{self.url}/{self.model}") from None
        if y is None:
            raise SrError(f"the Triton response has no output '{self.info.output_name}'", "Re-run with --debug.",
                          f"{self.url}/{self.model}")
        return y.astype(np.float32)

    def close(self) -> None:
        """Close the connection."""
        self.client.close()

    def __repr__(self) -> str:
        return f"TritonBackend({self.url!r}, model={self.model!r}, arch={self.info.arch}, x{self.info.scale})"
