# Two commands for a fresh machine:  make demo   and   make test
# Each creates and fills the local virtual environment (.venv) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test test-all bench clean help

help:
	@echo "make demo      compile the default model, simulate it in Verilator, print the report"
	@echo "make test      run the test suite (fast profile)"
	@echo "make test-all  run every test, slow ones included"
	@echo "make bench     run the benchmark scripts"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/streamfold demo

test: $(STAMP)
	STREAMFOLD_NO_SKIP=1 $(BIN)/pytest -q -m "not slow"

test-all: $(STAMP)
	STREAMFOLD_NO_SKIP=1 $(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf build demo_build sim_build .pytest_cache
