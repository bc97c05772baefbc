# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP_BASE := $(VENV)/.installed-base
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test lint typecheck pytest pytest-other-blas bench value system-deps clean

# A second BLAS kernel for the numerical tests, so that a bit-identity assumption between
# two code paths fails here and not on a user's machine (OpenBLAS picks kernels by CPU).
OTHER_BLAS ?= $(if $(filter aarch64 arm64,$(shell uname -m)),ARMV8,Prescott)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_BASE): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[cli,plot]'
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP_BASE)

demo: $(STAMP_BASE)
	$(VENV)/bin/steerloop demo

system-deps:
	./scripts/install-system-deps.sh

LINT_PATHS := $(wildcard steerloop tests examples benchmarks)

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

typecheck: $(STAMP_TEST)
	$(VENV)/bin/mypy steerloop

pytest: $(STAMP_TEST) system-deps
	$(PY) -m pytest

pytest-other-blas: $(STAMP_TEST)
	OPENBLAS_CORETYPE=$(OTHER_BLAS) $(PY) -m pytest -q tests/estimators tests/controller

test: lint typecheck pytest pytest-other-blas

bench: $(STAMP_TEST) system-deps
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.stores

value: $(STAMP_TEST)
	$(PY) -m benchmarks.value

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info
