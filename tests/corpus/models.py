"""Model-file cases for ``sr-run --model`` and ``sr-run --info``: broken, forged, foreign and hostile ONNX.

Graphs are built with ``onnx.helper`` (a core dependency), so no torch is needed. The external-data cases point
a tensor at ``secret.bin`` beside the ``models`` folder; the test watches that file and asserts nobody opens it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sr_runtime.info import ModelInfo
from tests.corpus import Case

TINY_ONNX = Path(__file__).resolve().parents[1] / "data" / "SRVGGNetCompact.onnx"
"""A real x4 model (sr-export metadata): the source of the truncated copy."""
SECRET_NAME = "secret.bin"
READ_FAILS = r"(not a readable ONNX model|not an ONNX model|ONNX Runtime cannot load the model)"
"""--info reads the file with the onnx package, --model with ONNX Runtime: each says so in one line."""
OUTSIDE = r"(outside the model's folder|External data path escapes model directory|Absolute path not allowed)"
"""Our check (--info, TensorRT builds) and ONNX Runtime's own (--model)."""
"""The file outside the models folder that external data points at."""


def _with_metadata(m: onnx.ModelProto, info: ModelInfo | None) -> onnx.ModelProto:
    if info is not None:
        for k, v in info.to_metadata_props().items():
            prop = m.metadata_props.add()
            prop.key, prop.value = k, v
    return m


def _model(nodes: list, inits: list, out_shape: list, info: ModelInfo | None) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, None, None])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return _with_metadata(m, info)


def x2_model(info: ModelInfo | None) -> onnx.ModelProto:
    """A real x2 upscaler (Conv 3 -> 12 channels, DepthToSpace 2), with the given metadata (or none)."""
    w = np.zeros((12, 3, 1, 1), np.float32)
    for c in range(12):
        w[c, c // 4, 0, 0] = 1.0
    conv = helper.make_node("Conv", ["input", "w"], ["c"])
    d2s = helper.make_node("DepthToSpace", ["c"], ["output"], blocksize=2, mode="CRD")
    return _model([conv, d2s], [numpy_helper.from_array(w, "w")], [1, 3, None, None], info)


def classifier(info: ModelInfo | None) -> onnx.ModelProto:
    """A global-pool + Gemm classifier (``1 x 10`` output)."""
    pool = helper.make_node("GlobalAveragePool", ["input"], ["p"])
    flat = helper.make_node("Flatten", ["p"], ["f"])
    gemm = helper.make_node("Gemm", ["f", "w", "b"], ["output"])
    inits = [numpy_helper.from_array(np.ones((3, 10), np.float32), "w"),
             numpy_helper.from_array(np.zeros(10, np.float32), "b")]
    return _model([pool, flat, gemm], inits, [1, 10], info)


def external(location: str) -> onnx.ModelProto:
    """An x1 model whose only weight is stored externally at ``location``."""
    w = numpy_helper.from_array(np.zeros((3, 3, 3, 3), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(3 * 3 * 3 * 3 * 4))):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    conv = helper.make_node("Conv", ["input", "w"], ["output"], pads=[1, 1, 1, 1])
    return _model([conv], [w], [1, 3, None, None], ModelInfo(arch="SRVGGNetCompact", scale=1, size_multiple=1))


def _case(name: str, path: Path, message: str, what: str, **extra) -> Case:
    return Case(name, "model", path, "error", message=message, what=what, extra=extra)


def build(d: Path) -> list[Case]:
    """Write the model cases into ``d``; ``d.parent / SECRET_NAME`` is the file nobody may read."""
    d.mkdir(parents=True, exist_ok=True)
    good = TINY_ONNX.read_bytes()
    cases = []
    (d / "truncated.onnx").write_bytes(good[: len(good) // 2])
    cases.append(_case("truncated ONNX", d / "truncated.onnx", READ_FAILS, "first half of a model"))
    (d / "empty.onnx").write_bytes(b"")
    cases.append(_case("zero-byte ONNX", d / "empty.onnx", READ_FAILS, "empty file"))
    (d / "text.onnx").write_text("not a model\n")
    cases.append(_case("text as .onnx", d / "text.onnx", READ_FAILS,
                       "a text file named .onnx"))
    x4 = ModelInfo(arch="SRVGGNetCompact", scale=4)
    onnx.save(classifier(x4), d / "classifier_forged_x4.onnx")
    cases.append(_case("classifier, forged x4", d / "classifier_forged_x4.onnx",
                       r"(super-resolution|classifier|shape)", "1x10 classifier carrying sr-deploy x4 metadata",
                       info_may_succeed=True))
    onnx.save(x2_model(x4), d / "x2_forged_x4.onnx")
    cases.append(_case("x2 graph, forged x4", d / "x2_forged_x4.onnx", r"(x4|x2|scale)",
                       "an x2 upscaler whose metadata says x4",
                       info_may_succeed=True))
    onnx.save(x2_model(None), d / "foreign_x2.onnx")
    cases.append(Case("foreign ONNX", "model", d / "foreign_x2.onnx", "ok", what="an x2 upscaler without "
                      "sr-deploy metadata: probed and run (issue 18)", extra={"runs": True}))
    secret = d.parent / SECRET_NAME
    np.zeros(81, np.float32).tofile(secret)
    onnx.save(external(f"../{SECRET_NAME}"), d / "ext_relative.onnx")
    onnx.save(external(str(secret)), d / "ext_absolute.onnx")
    os.symlink(secret, d / "link.bin")
    onnx.save(external("link.bin"), d / "ext_symlink.onnx")
    for name, what in (("relative", "'../secret.bin'"), ("absolute", "an absolute path"),
                       ("symlink", "a symlink in the folder to a file outside it")):
        cases.append(_case(f"external data, {name}", d / f"ext_{name}.onnx", OUTSIDE,
                           f"external weights at {what}", secret=secret))
    (d / "model.engine").write_bytes(os.urandom(256))
    cases.append(_case("engine without sidecar", d / "model.engine", r"sidecar", "random bytes named .engine"))
    (d / "net.pth").write_bytes(b"PK\x03\x04")
    cases.append(_case("checkpoint as model", d / "net.pth", r"(not a PyTorch checkpoint|sr-deploy\[export\])",
                       "a .pth given to sr-run that is no checkpoint (exported on first use when it is one)"))
    cases.append(_case("missing model", d / "missing.onnx", r"not found", "no such file"))
    (d / "model.txt").write_text("x")
    cases.append(_case("unknown suffix", d / "model.txt", r"(unknown model file type|not a readable ONNX)",
                       "a .txt given as the model"))
    return cases
