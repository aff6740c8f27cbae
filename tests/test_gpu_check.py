"""benchmarks/gpu.py without a GPU: it records the environment and exits 2, and its real-driver checks run
here against the fake CUDA runtime (tests/runtime/fake_cuda.py), so the script is known to work before a GPU
machine runs it. No timing is asserted."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("cuda.bindings", reason="cuda-python (the [trt-rtx] extra) is not installed")

from benchmarks import gpu, gpu_runpath  # noqa: E402
from sr_runtime.backends.trt import GpuInfo  # noqa: E402
from sr_runtime.backends.trt import cuda as trt_cuda  # noqa: E402
from tests.runtime.fake_cuda import FakeCudart  # noqa: E402


def test_without_cuda_only_the_environment_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "has_cuda", lambda: False)
    assert gpu.main(["--out", str(tmp_path)]) == 2
    data = json.loads((tmp_path / "gpu.json").read_text())
    assert set(data) == {"env", "stamp"} and data["env"]["status"] == "PASS"
    assert "onnxruntime" in data["env"] and "tensorrt" in data["env"]
    assert (tmp_path / "gpu.md").read_text().startswith("# GPU check:")


def test_unknown_part_is_refused(tmp_path):
    assert gpu.main(["--out", str(tmp_path), "--parts", "env,warp"]) == 2


def test_a_failing_part_is_recorded_and_the_rest_run(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu, "has_cuda", lambda: True)
    monkeypatch.setattr(gpu, "check_cuda", lambda: (_ for _ in ()).throw(RuntimeError("driver fell over")))
    assert gpu.main(["--out", str(tmp_path), "--parts", "cuda,env"]) == 1
    data = json.loads((tmp_path / "gpu.json").read_text())
    assert data["cuda"]["status"] == "FAIL" and "driver fell over" in data["cuda"]["note"]
    assert data["env"]["status"] == "PASS"


def test_cuda_check_against_the_fake_driver(monkeypatch):
    fake = FakeCudart()
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: fake)
    r = gpu_runpath.check_cuda(cycles=5)
    assert r["status"] == "PASS", r
    assert r["roundtrip_64mib"] is True and r["other_thread"] is True and r["device_drift_mib"] == 0
    assert str(r["torch_buffers"]).startswith("skipped")
    assert fake.mem == {} and fake.streams == {} and fake.violations == []


def test_standin_engine_is_checked_like_a_real_one(tmp_path, monkeypatch):
    """The stand-in engine's sidecar goes through the real checks: built for an H200, refused on an RTX 4090;
    the backend's module loader is restored either way."""
    from sr_runtime.backends.trt import runner
    from sr_runtime.errors import EngineMismatchError

    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: FakeCudart())
    real = runner._load_module
    engine = gpu_runpath.standin_engine(tmp_path, GpuInfo("NVIDIA H200", "9.0"), (2, 3, 16, 16))
    with pytest.raises(EngineMismatchError, match=r"built for compute capability 9\.0.*RTX 4090\) is 8\.9"):
        gpu_runpath.open_standin(engine)
    assert runner._load_module is real


def test_standin_engine_on_the_matching_gpu(tmp_path, monkeypatch):
    fake = FakeCudart(name="NVIDIA H200", cc=(9, 0))
    monkeypatch.setattr(trt_cuda, "import_cudart", lambda: fake)

    def execute(self, stream_handle):
        n, c, h, w = self.shape
        src, dst, nbytes = self.addr["input"], self.addr["output"], n * c * h * w * 4

        def op():
            x = np.frombuffer(fake.read(src, nbytes), np.float32).reshape(self.shape)
            fake.write(dst, np.repeat(np.repeat(x, 4, 2), 4, 3).tobytes())

        return fake.enqueue(stream_handle, "execute", op, (src, dst))

    monkeypatch.setattr(gpu_runpath._TorchContext, "execute_async_v3", execute)
    engine = gpu_runpath.standin_engine(tmp_path, GpuInfo("NVIDIA H200", "9.0"), (2, 3, 16, 16))
    x = np.random.default_rng(0).random((2, 3, 16, 12), dtype=np.float32)
    with gpu_runpath.open_standin(engine) as be:
        np.testing.assert_array_equal(be.run(x), np.repeat(np.repeat(x, 4, 2), 4, 3))
        assert gpu_runpath._threads(be, x, np.repeat(np.repeat(x, 4, 2), 4, 3), n=2, runs=2)
    assert fake.mem == {} and fake.violations == []


def test_report_renders_skips_and_ratios():
    results = {
        "stamp": "2026-01-01 00:00 UTC",
        "env": {"status": "PASS", "gpu": "NVIDIA H200", "nvidia_smi": "NVIDIA H200, 580.1"},
        "cuda": {"status": "PASS", "copy_gb_s": 20.0},
        "parity": {"status": "PASS", "rows": {"torch-cuda-fp16": {"status": "PASS", "max_abs": 1e-3, "psnr": 70.1},
                                              "trt-fp16": gpu_runpath.skipped("no TensorRT")}},
        "speed": {"status": "PASS", "rows": {"SRVGG-16 720p": {
            "status": "PASS", "input": [1, 3, 720, 1280],
            "torch-fp16": {"fps": 10.0, "best_s": 0.09, "spread": 0.1},
            "trt-fp16": {"fps": 25.0, "best_s": 0.04, "spread": 0.05},
            "ort-cuda": gpu_runpath.skipped("no onnxruntime-gpu")}}},
    }
    text = "\n".join(gpu.render(results))
    assert "# GPU check: NVIDIA H200" in text and "| cuda | PASS |" in text
    assert "trt-fp16: skipped (no TensorRT)" in text and "2.50x torch-fp16" in text
    assert "ort-cuda skipped (no onnxruntime-gpu)" in text


def test_helpers():
    r = gpu.timed(lambda: None, 3, 1)
    assert r["frames"] == 3 and r["fps"] > 0
    x = gpu.image(2, 9, 10)
    assert x.shape == (2, 3, 9, 10) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert gpu._tiles(2, 2, 720, 1280).shape == (4, 3, 380, 660)
    assert "not installed" in gpu.version_of("surely_not_a_module")
