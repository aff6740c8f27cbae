"""A stand-in for Triton Inference Server: the KServe v2 HTTP endpoints that ``tritonclient.http`` calls, served on
127.0.0.1 by ``http.server`` over a model repository written by ``sr-export --triton``.

Each entry's ``config.pbtxt`` is parsed with Triton's own ``ModelConfig`` schema (tritonclient's generated
``model_config_pb2``) and served as JSON, as Triton does. Every inference request is checked against that config
(input name, datatype, rank and dims with the batch axis, batch <= ``max_batch_size``, binary payload size,
requested output name); a mismatch is answered with HTTP 400, as Triton answers, and recorded in ``violations``.
Inference runs ONNX Runtime on the entry's ``1/model.onnx``. The real Triton server cannot run here (the PyPI
``tritonserver`` package is a placeholder; docs/scale.md).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

WIRE = {"TYPE_FP32": ("FP32", np.float32), "TYPE_FP16": ("FP16", np.float16)}


def model_config_pb2():
    """tritonclient's generated ``model_config_pb2``, loaded by path (``tritonclient.grpc`` itself needs grpcio)."""
    spec = importlib.util.find_spec("tritonclient")
    path = Path(next(iter(spec.submodule_search_locations))) / "grpc" / "model_config_pb2.py"
    mod_spec = importlib.util.spec_from_file_location("_fake_triton_model_config_pb2", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


@dataclass
class Entry:
    """One model of the repository."""

    config: Any
    """The parsed ``ModelConfig``."""
    as_json: dict
    """What ``GET /v2/models/<name>/config`` answers."""
    session: Any
    """ONNX Runtime on ``1/model.onnx``."""


@dataclass
class FakeTriton:
    """The server; ``requests`` holds ``(model, input name, datatype, shape, output name)`` of every infer call."""

    repo: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    requests: list[tuple] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        import onnxruntime as ort
        from google.protobuf import json_format, text_format

        pb2 = model_config_pb2()
        for entry in sorted(p for p in self.repo.iterdir() if (p / "config.pbtxt").is_file()):
            cfg = text_format.Parse((entry / "config.pbtxt").read_text(), pb2.ModelConfig())
            as_json = json_format.MessageToDict(cfg, preserving_proto_field_name=True)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            session = ort.InferenceSession(str(entry / "1" / "model.onnx"), opts, providers=["CPUExecutionProvider"])
            self.entries[cfg.name] = Entry(cfg, as_json, session)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeTriton:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.get(self)

            def do_POST(self) -> None:  # noqa: N802
                server.post(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # ------------------------------------------------------------------ endpoints
    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, body: bytes, header_len: int | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream" if header_len is not None else "application/json")
        if header_len is not None:
            h.send_header("Inference-Header-Content-Length", str(header_len))
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _model(self, path: str) -> tuple[Entry | None, str]:
        parts = path.strip("/").split("/")  # v2/models/<name>[/versions/<v>]/<what>
        if len(parts) < 4 or parts[:2] != ["v2", "models"]:
            return None, ""
        return self.entries.get(parts[2]), parts[-1]

    def get(self, h: BaseHTTPRequestHandler) -> None:
        entry, what = self._model(h.path.split("?")[0])
        if h.path.startswith("/v2/health/"):
            self._reply(h, 200, b"")
        elif entry is None:
            self._reply(h, 400, json.dumps({"error": "Request for unknown model"}).encode())
        elif what == "ready":
            self._reply(h, 200, b"")
        elif what == "config":
            self._reply(h, 200, json.dumps(entry.as_json).encode())
        else:
            self._reply(h, 404, b"")

    def post(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers["Content-Length"]))
        entry, what = self._model(h.path.split("?")[0])
        if entry is None or what != "infer":
            self._reply(h, 400, json.dumps({"error": "Request for unknown model"}).encode())
            return
        n = int(h.headers.get("Inference-Header-Content-Length", len(body)))
        request, binary = json.loads(body[:n]), body[n:]
        try:
            x, out_name = self._check(entry, request, binary)
        except ValueError as exc:
            self.violations.append(str(exc))
            self._reply(h, 400, json.dumps({"error": str(exc)}).encode())
            return
        y = entry.session.run([out_name], {entry.config.input[0].name: x})[0]
        header = json.dumps({"model_name": entry.config.name, "outputs": [{
            "name": out_name, "datatype": WIRE[entry.as_json["output"][0]["data_type"]][0], "shape": list(y.shape),
            "parameters": {"binary_data_size": y.nbytes}}]}).encode()
        self._reply(h, 200, header + y.tobytes(), len(header))

    def _check(self, entry: Entry, request: dict, binary: bytes) -> tuple[np.ndarray, str]:
        """The request against the config: one input, its name, datatype, shape; the output asked for.

        Raises:
            ValueError: what does not match (Triton's HTTP 400).
        """
        cfg = entry.config
        (tin,) = request["inputs"]
        want_in = cfg.input[0]
        dtype_name, np_dtype = WIRE[entry.as_json["input"][0]["data_type"]]
        shape = [int(s) for s in tin["shape"]]
        self.requests.append((cfg.name, tin["name"], tin["datatype"], tuple(shape),
                              [o["name"] for o in request.get("outputs", [])]))
        if tin["name"] != want_in.name:
            raise ValueError(f"unexpected inference input '{tin['name']}' for model '{cfg.name}'")
        if tin["datatype"] != dtype_name:
            raise ValueError(f"inference input '{tin['name']}' data-type is '{tin['datatype']}', expected {dtype_name}")
        dims = list(want_in.dims)
        if len(shape) != len(dims) + 1 or not 1 <= shape[0] <= cfg.max_batch_size:
            raise ValueError(f"unexpected shape {shape} for input '{tin['name']}' (max batch {cfg.max_batch_size})")
        if any(d != -1 and d != s for d, s in zip(dims, shape[1:])):
            raise ValueError(f"unexpected shape {shape} for input '{tin['name']}', config dims {dims}")
        size = int(np.prod(shape)) * np.dtype(np_dtype).itemsize
        if tin.get("parameters", {}).get("binary_data_size") != size or len(binary) != size:
            raise ValueError(f"binary data of '{tin['name']}' is {len(binary)} bytes, expected {size}")
        outs = [o["name"] for o in request.get("outputs", [])]
        if outs != [cfg.output[0].name]:
            raise ValueError(f"unexpected requested outputs {outs}")
        return np.frombuffer(binary, np_dtype).reshape(shape), outs[0]
