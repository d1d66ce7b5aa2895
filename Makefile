# Two entry points: `make repro` runs the pipeline, `make test` the test suite.
# Both create .venv on first use (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Matches the triton that the CUDA build of torch 2.13 pins; the CPU build uses it only for the interpreter.
TRITON_PIN := triton==3.7.1

.PHONY: layout repro test bench gpu-check bench-train bench-infer bench-data bench-precision bench-bounded bench-peers compare \
	plots-check plots-template venv clean-venv lineage

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

# CPU benchmarks of the pipeline (scripts, not tests; srcore/bench/): tables on stdout, JSON under metrics/.
# BENCH_ARGS=--quick for a short run (a minute or two each); see docs/performance.md.
bench-train: venv
	$(PY) -m srcore.bench.train --params params.yaml --out metrics/bench_train.json $(BENCH_ARGS)

bench-infer: venv
	$(PY) -m srcore.bench.infer --out metrics/bench_infer.json $(BENCH_ARGS)

# srcore's pixel and ESRGAN steps against BasicSR 1.4.2's on the same networks (srcore/bench/peers.py). BasicSR is
# not a dependency: `.venv/bin/pip install basicsr==1.4.2 torchvision` first.
bench-peers: venv
	$(PY) -m srcore.bench.peers --params params.yaml --out metrics/bench_peers.json $(BENCH_ARGS)

# Needs data/prepared/{train,val}.h5 (the prepare stage's outputs): fp32 vs bf16 validation PSNR, tiny EDSR.
bench-precision: venv
	$(PY) -m srcore.bench.precision --params params.yaml --train data/prepared/train.h5 --val data/prepared/val.h5 \
		--out metrics/bench_precision.json $(BENCH_ARGS)

# Needs data/prepared/train.h5 (the prepare stage's output).
bench-data: venv
	$(PY) -m srcore.bench.data --params params.yaml --train data/prepared/train.h5 \
		--images data/raw/train/T91 data/raw/train/BSDS200 --out metrics/bench_data.json $(BENCH_ARGS)

# Needs data/prepared/train.h5. Training from a file >= 4x a 2 GB address-space cap (built in a temporary folder
# by repeating train.h5's images, ~10 GB of disk, removed at the end): peak RSS and steps/s (docs/data.md).
bench-bounded: venv
	$(PY) -m srcore.bench.bounded --params params.yaml --train data/prepared/train.h5 --out metrics/bench_bounded.json \
		$(BENCH_ARGS)

# The lineage table (docs/lineage.md): each README preset trained by `dvc exp run` at its CPU step budget
# (srcore/bench/lineage.py; ~1 hour on 2 cores), scored on Set5/Set14 at each of its scales. Needs a checkout
# with params.yaml and dvc.lock committed; restores both and the outputs at the end. LINEAGE_ARGS=--rates: only
# each preset's steps/s; LINEAGE_ARGS='--presets srcnn vdsr': some presets.
lineage: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m srcore.bench.lineage --readme README.md --params params.yaml \
		--benchmark data/benchmark --model models/psnr.pt --out metrics/lineage.json $(LINEAGE_ARGS)

# Key scores of every experiment, one line per benchmark set, within 120 columns (docs/dvc.md).
# COMPARE_ARGS go to `dvc exp show`: e.g. COMPARE_ARGS=-A for the experiments of every commit.
compare: venv
	$(PY) -m srcore.compare $(COMPARE_ARGS)

# `dvc plots $(PLOTS)` rendered in headless Chromium with no network: every chart must draw its curve.
# Needs Chromium (Debian: apt-get install chromium) and unshare; CI does not run it. Screenshot under dvc_plots/.
# PLOTS='diff EXP_A EXP_B' checks the page that compares two experiments.
PLOTS ?= show
plots-check: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc plots $(PLOTS) -o dvc_plots
	$(PY) -m srcore.plots_browser dvc_plots/index.html --screenshot dvc_plots/offline.png

# Rebuilds .dvc/plots.html, the committed template that inlines vega, vega-lite and vega-embed for
# `dvc plots`, from the pinned vl-convert-python (the plots-template extra, ~85 MB installed).
plots-template: venv
	$(PY) -m pip install -e '.[plots-template]'
	$(PY) -m srcore.plots_template --out .dvc/plots.html

# Every module with its first docstring line and its length (tests/test_layout.py keeps them short).
layout: venv
	$(PY) tests/test_layout.py

clean-venv:
	rm -rf $(VENV)

# On a CUDA GPU (<= 8 min on one H100): every check of kernels/gpu_check.py into one JSON; elsewhere it says
# there is no CUDA device and exits 0.
gpu-check: venv
	$(PY) -m kernels.gpu_check --params params.yaml --out metrics/gpu_check.json
