# Two entry points: `make repro` runs the pipeline, `make test` the test suite.
# Both create .venv on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Matches the triton that the CUDA build of torch 2.13 pins; the CPU build uses it only for the interpreter.
TRITON_PIN := triton==3.7.1

.PHONY: repro test bench gpu-check bench-train bench-infer bench-data bench-precision venv clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]' '$(TRITON_PIN)'
	touch $@

# Stage commands say `python`: the venv's bin goes first on PATH so they run in it.
repro: venv
	test -d .dvc || $(VENV)/bin/dvc init
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# Kernel benchmark: on CUDA, Triton vs cuDNN/eager vs torch.compile; without CUDA, the compile report for
# sm_80/sm_90 (Triton compiling on this CPU) and a roofline model.
bench: venv
	$(PY) stages/bench.py --out metrics/kernels.json

# CPU benchmarks of the pipeline (scripts, not tests): tables on stdout, JSON under metrics/.
# BENCH_ARGS=--quick for a short run (a minute or two each); see README, "CPU performance".
bench-train: venv
	$(PY) stages/bench_train.py --out metrics/bench_train.json $(BENCH_ARGS)

bench-infer: venv
	$(PY) stages/bench_infer.py --out metrics/bench_infer.json $(BENCH_ARGS)

# Needs data/prepared/{train,val}.h5 (the prepare stage's outputs): fp32 vs bf16 validation PSNR, tiny EDSR.
bench-precision: venv
	$(PY) stages/bench_train.py --psnr-check data/prepared/train.h5 data/prepared/val.h5 \
		--out metrics/bench_precision.json $(BENCH_ARGS)

# Needs data/prepared/train.h5 (the prepare stage's output).
bench-data: venv
	$(PY) stages/bench_data.py --train data/prepared/train.h5 --images data/raw/train/T91 data/raw/train/BSDS200 \
		--out metrics/bench_data.json $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)

# On a CUDA GPU (<= 8 min on one H100): every check of kernels/gpu_check.py into one JSON; elsewhere it says
# there is no CUDA device and exits 0.
gpu-check: venv
	$(PY) -m kernels.gpu_check --out metrics/gpu_check.json
