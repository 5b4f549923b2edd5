# `make demo` runs the main job (`klr compare` on the bundled digits), `make test` the test suite. Both create (or reuse)
# the virtual environment .venv and install the package into it.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch 2.13.0 lies on the project's machines; elsewhere the peer
# comparison tests (torch, label-relaxation) skip instead of pulling CUDA wheels.
TORCH_WHEELS ?= /opt/wheels
COMMA := ,
HAVE_TORCH_CPU := $(wildcard $(TORCH_WHEELS)/torch-2.13.0+cpu-*.whl)
PEERS := $(if $(HAVE_TORCH_CPU),$(COMMA)peers,)
# The core (losses, metrics, calibration and their docstrings) runs under every backend; the
# unit oracle's tests check keras-tuner's internals it uses under the floor's keras-tuner too.
CORE_TESTS := tests/losses tests/metrics tests/calibration tests/semi_supervised \
	tests/experiments/test_workers.py \
	keras_label_relaxation/losses keras_label_relaxation/metrics keras_label_relaxation/calibration \
	keras_label_relaxation/semi_supervised

.PHONY: demo test test-backends test-floor lint benchmark clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --find-links $(TORCH_WHEELS) -e ".[test,jax$(PEERS)]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/klr compare

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest
	$(MAKE) test-backends
	$(MAKE) test-floor

# JAX with 64-bit types, so that the float64 oracles compare at float64 precision.
test-backends: $(BIN)/.installed
	JAX_ENABLE_X64=1 KERAS_BACKEND=jax $(BIN)/python -m pytest -p no:cacheprovider $(CORE_TESTS)
ifneq ($(HAVE_TORCH_CPU),)
	KERAS_BACKEND=torch $(BIN)/python -m pytest -p no:cacheprovider $(CORE_TESTS)
else
	@echo "torch backend tests skipped: no CPU build of torch 2.13.0 in $(TORCH_WHEELS)"
endif

# The declared floors (setup.cfg: keras>=3.12, keras-tuner>=1.4): the core tests under
# KERAS_BACKEND=torch in a second environment with exactly those versions. Without TensorFlow
# (which pins keras>=3.12 itself); the two tf.data tests skip there.
FLOOR_VENV ?= .venv-floor
FLOOR_PINS := keras==3.12.0 keras-tuner==1.4.0
test-floor:
ifneq ($(HAVE_TORCH_CPU),)
	test -x $(FLOOR_VENV)/bin/python || $(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --find-links $(TORCH_WHEELS) torch==2.13.0 \
		$(FLOOR_PINS) numpy scipy scikit-learn matplotlib pytest grpcio protobuf six
	$(FLOOR_VENV)/bin/python -m pip install --quiet --no-deps -e .
	KERAS_BACKEND=torch $(FLOOR_VENV)/bin/python -m pytest -p no:cacheprovider $(CORE_TESTS)
else
	@echo "floor tests skipped: no CPU build of torch 2.13.0 in $(TORCH_WHEELS)"
endif

benchmark: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --find-links $(TORCH_WHEELS) -e ".[bench]"
	$(BIN)/python benchmarks/bench_losses.py
	$(BIN)/python benchmarks/bench_calibration.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_statistics.py
	$(BIN)/python benchmarks/bench_label_noise.py

clean:
	rm -rf $(VENV) $(FLOOR_VENV)
