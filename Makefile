# `make demo` runs the main job (`klr compare` on the bundled digits), `make test` the test suite. Both create (or reuse)
# the virtual environment .venv and install the package into it.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch 2.13.0 lies on the project's machines; elsewhere the peer
# comparison tests (torch, label-relaxation) skip instead of pulling CUDA wheels.
TORCH_WHEELS ?= /opt/wheels
COMMA := ,
PEERS := $(if $(wildcard $(TORCH_WHEELS)/torch-2.13.0+cpu-*.whl),$(COMMA)peers,)

.PHONY: demo test lint benchmark clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --find-links $(TORCH_WHEELS) -e ".[test$(PEERS)]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/klr compare

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest

benchmark: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --find-links $(TORCH_WHEELS) -e ".[bench]"
	$(BIN)/python benchmarks/bench_losses.py
	$(BIN)/python benchmarks/bench_calibration.py
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV)
