# Fresh machine: `make demo` runs the example experiment, `make test` the whole test suite.
# Both create .venv with the base python3 first (once; again when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Trials run with the shell's environment, as if .venv were activated: `python` in a trial command is .venv's.
export PATH := $(abspath $(BIN)):$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))

.PHONY: install demo test lint bench bench-multifidelity bench-ray clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e '.[dev,examples,ray]' --config-settings editable_mode=compat
	touch $(STAMP)

# In a terminal: the experiment goes to the daemon and the dashboard opens on it (q quits; the experiment
# goes on). Without one (CI, a pipe): it runs in the foreground with a progress line.
demo: install
	@if [ -t 0 ] && [ -t 1 ]; then \
		id=$$($(BIN)/automl submit trials/digits_mlp.yml) && $(BIN)/automl tui $$id && \
		status=$$($(BIN)/automl show $$id --json | $(BIN)/python -c 'import json, sys; print(json.load(sys.stdin)["status"])') && \
		if [ "$$status" = running ] || [ "$$status" = paused ]; then \
			echo "experiment $$id goes on in the background daemon ($$status): follow it with 'automl tui $$id' or 'automl show $$id'"; \
			echo "best so far (the experiment has not ended):"; \
		fi; \
		$(BIN)/automl export $$id --best || echo "no trial has succeeded yet"; \
	else \
		$(BIN)/automl run trials/digits_mlp.yml && $(BIN)/automl export digits-mlp --best; \
	fi

test: install
	$(BIN)/python -m pytest -q -ra

lint: install
	$(BIN)/ruff format --check automl tui tests bench trials
	$(BIN)/ruff check automl tui tests bench trials

bench: install
	$(BIN)/python bench/launch_overhead.py
	$(BIN)/python bench/tpe_suggest.py
	$(BIN)/python bench/digits_demo.py
	$(BIN)/python bench/daemon_footprint.py
	$(BIN)/python bench/gpu_scheduling.py
	$(BIN)/python bench/reliability.py

# mf-prior-bench pins numpy<2 but runs on numpy 2: installed without its pins. DEHB needs numpy<2 (it uses it):
# it gets a venv of its own (inside .venv), and its traces join the others' through --add-traces (docs/benchmarks.md).
DEHB_VENV := $(VENV)/dehb
HARTMANN := mfh3_good mfh3_bad mfh6_good mfh6_bad
bench-multifidelity: install
	$(BIN)/pip install -q -e '.[bench]' --config-settings editable_mode=compat
	$(BIN)/pip install -q --no-deps mf-prior-bench
	test -x $(DEHB_VENV)/bin/python || $(PYTHON) -m venv $(DEHB_VENV)
	$(DEHB_VENV)/bin/pip install -q dehb==0.1.2 && $(DEHB_VENV)/bin/pip install -q --no-deps mf-prior-bench
	$(BIN)/python bench/multifidelity.py
	$(BIN)/python bench/multifidelity.py --problems $(HARTMANN) --methods "automl default" \
		--traces bench/results/multifidelity_default.json --plot /tmp/default.png
	$(BIN)/python bench/multifidelity.py --problems $(HARTMANN) --methods "Optuna TPE + Hyperband pruner" \
		--traces bench/results/multifidelity_hyperband.json --plot /tmp/hyperband.png
	$(DEHB_VENV)/bin/python bench/multifidelity.py --problems $(HARTMANN) --methods DEHB \
		--traces bench/results/multifidelity_dehb.json --plot /tmp/dehb.png
	$(BIN)/python bench/multifidelity.py --replot --problems $(HARTMANN) --traces bench/results/multifidelity_default.json \
		--add-traces bench/results/multifidelity.json bench/results/multifidelity_hyperband.json \
		bench/results/multifidelity_dehb.json --plot docs/multifidelity_peers.png --methods Random "TPE + ASHA" \
		"automl default" "Optuna TPE + SHA pruner" "Optuna TPE + Hyperband pruner" DEHB
	$(BIN)/python bench/digits_real.py

# a real two-node Ray cluster in a network namespace (needs root), against the local launcher and Ray Tune
bench-ray: install
	$(BIN)/pip install -q -e '.[bench]' --config-settings editable_mode=compat
	$(BIN)/python bench/ray_launch.py

clean:
	rm -rf $(VENV) .pytest_cache
