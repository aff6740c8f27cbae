"""ONNX Runtime's CUDA provider setup, checked on the CPU build: provider options (cuDNN algorithm search),
the CUDA/cuDNN preload, and the hint when the GPU build is there but its libraries did not load."""

from __future__ import annotations

import pytest

ort = pytest.importorskip("onnxruntime")

from sr_runtime.backends import ort as ort_backend  # noqa: E402
from sr_runtime.backends.ort import OrtBackend, cuda_provider_options  # noqa: E402
from sr_runtime.errors import SrError  # noqa: E402


@pytest.fixture
def fake_cuda_build(monkeypatch):
    """onnxruntime claiming a CUDA provider; sessions record what they were asked for and run on the CPU."""
    asked = {"providers": [], "preloads": 0}
    real = ort.InferenceSession

    def session(path, sess_options=None, providers=None):
        asked["providers"].append(providers)
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    def preload(*a, **k):
        asked["preloads"] += 1

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setattr(ort, "preload_dlls", preload, raising=False)
    monkeypatch.setattr(ort_backend, "_preloaded", False)
    return asked


def test_cuda_provider_gets_heuristic_search_and_preloads_once(onnx_model, fake_cuda_build):
    path = onnx_model("SRVGGNetCompact")
    for _ in range(2):
        with pytest.raises(SrError) as e:
            OrtBackend(path, device="cuda")
    first = fake_cuda_build["providers"][0]
    assert first[0] == ("CUDAExecutionProvider", {"device_id": "0", "cudnn_conv_algo_search": "HEURISTIC"})
    assert first[1:] == ["CPUExecutionProvider"]
    assert fake_cuda_build["preloads"] == 1
    line = e.value.one_line()
    assert "asked for CUDAExecutionProvider but ONNX Runtime runs CPUExecutionProvider" in line
    assert "CUDA/cuDNN libraries did not load" in line and "pip uninstall onnxruntime" not in line


def test_provider_options_choices(onnx_model, fake_cuda_build):
    with pytest.raises(SrError):
        OrtBackend(onnx_model("SRVGGNetCompact"), device="cuda", device_id=1, conv_algo_search="EXHAUSTIVE")
    assert fake_cuda_build["providers"][-1][0][1] == {"device_id": "1", "cudnn_conv_algo_search": "EXHAUSTIVE"}
    with pytest.raises(SrError, match="unknown cuDNN algorithm search 'FAST'"):
        cuda_provider_options(0, "FAST")  # type: ignore[arg-type]


def test_preload_failure_or_absence_is_harmless(monkeypatch):
    calls = []

    def broken():
        calls.append(1)
        raise OSError("libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(ort_backend, "_preloaded", False)
    ort_backend.preload_cuda_libs(type("M", (), {"preload_dlls": staticmethod(broken)}))
    ort_backend.preload_cuda_libs(type("M", (), {"preload_dlls": staticmethod(broken)}))
    assert calls == [1]
    monkeypatch.setattr(ort_backend, "_preloaded", False)
    ort_backend.preload_cuda_libs(object())  # onnxruntime < 1.21: no preload_dlls
    assert ort_backend._preloaded is False


def test_tensorrt_execution_provider_is_not_offered(onnx_model):
    """sr-deploy runs TensorRT through its own backend; ORT's TensorRT EP is not a device here."""
    with pytest.raises(SrError, match="unknown ONNX Runtime device 'tensorrt'. Use cpu or cuda"):
        OrtBackend(onnx_model("SRVGGNetCompact"), device="tensorrt")  # type: ignore[arg-type]
