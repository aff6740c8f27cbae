# sr-deploy: the two commands are `make demo` and `make check` (see README.md).
PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
TORCH_CPU := torch==2.13.0

.PHONY: check test lint venv demo bench bench-gpu clean train-demo

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	# The CPU torch wheel first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(VPY) -m pip install -q $(TORCH_CPU)
	$(VPY) -m pip install -q -e '.[train,export,ort,openvino,trt-rtx,video,ray,triton,tiff,dev]'
	touch $@

venv: $(VENV)/.installed

# `make check`: what CI runs (.ci/run): lint, then the whole test suite.
check: lint test

test: $(VENV)/.installed
	$(VPY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# `make bench`: our paths against the upstream algorithm (benchmarks/run.py, ~30 min on 2 cores with the peers) into
# benchmarks/results/; `make bench QUICK=1` is a ~1 minute smoke run (results/quick/). The plot needs the
# [bench] extra (matplotlib); without it the Markdown table is still written. Report: docs/benchmarks.md.
# Then benchmarks/bigimage.py (memory and time against image size, docs/big-images.md): BIG=0 skips it, SLOW=1
# adds the 20000x20000 -> x4 TIFF case (about 20 GB of output pixels, 15+ minutes).
bench: $(VENV)/.installed
	$(VPY) -m benchmarks.run $(if $(QUICK),--quick) $(BENCH_ARGS)
	$(if $(filter 0,$(BIG)),,$(VPY) -m benchmarks.bigimage $(if $(QUICK),--quick) $(if $(SLOW),--slow))

# `make bench-gpu`: the GPU check on a CUDA machine (docs/gpu.md): versions, gpu tests, our CUDA code on the real
# driver, parity and frames/s against torch fp16 -> benchmarks/results/gpu/gpu.{json,md}. Without a venv:
# `python -m benchmarks.gpu --out DIR` from a checkout with numpy, onnx, onnxruntime and torch.
bench-gpu: $(VENV)/.installed
	$(VPY) -m benchmarks.gpu $(BENCH_ARGS)

# `make demo`: its own runtime-only environment (numpy, OpenCV, onnxruntime; no torch), then the shipped model
# upscales the bundled held-out photo into demo/. build/ is git-ignored and removed by `make clean`.
DEMO_VENV ?= build/venv-demo
$(DEMO_VENV)/.installed: setup.cfg pyproject.toml
	$(PY) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/python -m pip install -q --upgrade pip
	$(DEMO_VENV)/bin/python -m pip install -q -e '.[ort]'
	touch $@

demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/python scripts/demo.py --out demo

# `make train-demo`: the whole path on the CPU in under a minute: sr-train's tiny_cpu config (100 iterations on the
# four crops shipped with it), sr-export of its checkpoint, sr-run of the bundled photo -> build/train-demo/.
TRAIN_DEMO ?= build/train-demo
train-demo: $(VENV)/.installed
	rm -rf $(TRAIN_DEMO)
	$(VENV)/bin/sr-train --config tiny_cpu --output $(TRAIN_DEMO) --no-progress --set train.total_iter=100 \
		--set logger.save_checkpoint_freq=100 --set logger.print_freq=50
	$(VENV)/bin/sr-export $(TRAIN_DEMO)/models/net_g_latest.pth -o $(TRAIN_DEMO)/tiny_cpu.onnx
	$(VENV)/bin/sr-run sr_runtime/models/sample.png $(TRAIN_DEMO)/sample_x4.png -m $(TRAIN_DEMO)/tiny_cpu.onnx
